"""Experiments that reproduce a seed's table end to end (data, training of every arm, scoring, figures):
``unveil experiment deocclusion`` (seed 001)."""
