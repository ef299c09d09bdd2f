"""Measuring: the meta-device pass, hooks, statistics, tracer and monitor."""
