"""Aggregation of run directories into tables and figures (run as `python -m scripts.<module>`)."""
