"""Evaluation protocols: scores of restored media against ground truth or against normal recordings."""
