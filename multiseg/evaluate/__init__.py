"""Scoring a checkpoint on its datasets with the benchmarks' rules: reports, submissions, unified map."""
