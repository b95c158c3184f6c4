"""Evaluation: confusion-matrix metrics, reports and inference."""
