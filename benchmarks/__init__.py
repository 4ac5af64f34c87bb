"""Micro-benchmarks of connscale's building blocks: ``python -m benchmarks.run_micro``."""
