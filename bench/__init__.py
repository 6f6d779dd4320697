"""Benchmarks; results go to docs/benchmarks.md."""
