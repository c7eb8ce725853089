"""Experiments built on the project CLIs (compute-matched comparisons)."""
