"""Learned latency, energy and quality predictors (not built yet)."""
