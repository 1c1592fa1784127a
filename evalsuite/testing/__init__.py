"""Tiny local models and checkpoints for tests, benchmarks and the demo (no downloads)."""
