"""Metrics: typed functions (and, where state helps, small classes), each tested against an independent
reference implementation."""

from unveil.metrics.images import l1, psnr

__all__ = ["l1", "psnr"]
