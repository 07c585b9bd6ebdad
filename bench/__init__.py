"""Benchmarks and dataset generators, run by hand: `python -m bench NAME` (see bench/RESULTS.md)."""
