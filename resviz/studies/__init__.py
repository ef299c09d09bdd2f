"""Studies: comparisons, training runs, paper tables and counter reconciliation."""
