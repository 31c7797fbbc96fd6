"""Pixel metrics between images, optionally restricted to a mask (e.g. the occluded region)."""

from __future__ import annotations

import numpy as np

from unveil.errors import UnveilError


def _mask_of(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
    """Check that two images (and the mask, if any) match in size; the mask as booleans."""
    if a.shape != b.shape:
        raise UnveilError(f"Images of different shapes cannot be compared: {a.shape} and {b.shape}.")
    if mask is None:
        return None
    inside = np.asarray(mask) > 0
    if inside.shape != a.shape[:2]:
        raise UnveilError(f"The mask is {inside.shape}, the images are {a.shape[:2]}.")
    return inside


def _region(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    inside = _mask_of(a, b, mask)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if inside is None:
        return a.ravel(), b.ravel()
    return a[inside].ravel(), b[inside].ravel()


def l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 255.0) -> float:
    """Mean absolute difference as a share of ``data_range`` (0 = equal), over ``mask`` pixels if given."""
    x, y = _region(a, b, mask)
    return float(np.abs(x - y).mean() / data_range) if x.size else float("nan")


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for equal images), over ``mask`` pixels if given."""
    x, y = _region(a, b, mask)
    if not x.size:
        return float("nan")
    mse = np.mean((x - y) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004, scikit-image's Gaussian-free 7x7 version; 1 = equal), averaged
    over ``mask`` pixels of the SSIM map if given."""
    from skimage.metrics import structural_similarity

    inside = _mask_of(a, b, mask)
    channel_axis = 2 if a.ndim == 3 else None
    score, full = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=data_range,
                                        channel_axis=channel_axis, full=True)
    if inside is None:
        return float(score)
    values = full[inside]
    return float(values.mean()) if values.size else float("nan")
