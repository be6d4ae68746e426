"""Benchmarks the repo keeps: ratios measured side by side in one run (these machines are noisy)."""
