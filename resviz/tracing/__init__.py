"""Measuring models: the meta-device static pass, the hook tracer, on-device statistics, the monitor.

The package is ``resviz.tracing`` so that ``resviz.trace`` stays free for the public function
:func:`resviz.tracing.tracer.trace`.
"""
