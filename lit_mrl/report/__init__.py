"""The report: a tasks x models table of probe results with intervals, and its chart."""
