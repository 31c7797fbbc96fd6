"""Detection scores for AU presence and emotion labels: accuracy, F1 and the false discovery rate (seed 002)."""

from __future__ import annotations

import numpy as np

from unveil.errors import UnveilError


def _pair(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth), np.asarray(predicted)
    if t.shape != p.shape:
        raise UnveilError(f"Labels and predictions differ in shape: {t.shape} and {p.shape}.")
    return t, p


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of equal labels (all columns of a multi-label array count)."""
    t, p = _pair(truth, predicted)
    return float(np.mean(t == p)) if t.size else float("nan")


def _counts(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, p = _pair(np.asarray(truth).astype(bool), np.asarray(predicted).astype(bool))
    t, p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    return (t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0)


def f1(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-label F1 = 2TP / (2TP + FP + FN) of binary labels ``(n,)`` or ``(n, labels)``; NaN where undefined."""
    tp, fp, fn = _counts(truth, predicted)
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)


def fdr(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-label false discovery rate FP / (TP + FP): the share of detections that are wrong; NaN without any."""
    tp, fp, _ = _counts(truth, predicted)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fp > 0, fp / np.maximum(tp + fp, 1), np.nan)
