"""Housekeeping and migration tools behind the `zkpy` command (see cli.py)."""
