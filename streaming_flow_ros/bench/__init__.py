"""Benchmarks: print measured numbers (and JSON); never timing assertions in unit tests."""
