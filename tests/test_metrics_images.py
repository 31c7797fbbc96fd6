import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from unveil.errors import UnveilError
from unveil.metrics import l1, psnr


def test_psnr_matches_scikit_image() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    assert psnr(a, a) == float("inf")


def test_masked_metrics_only_see_the_mask() -> None:
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[:5] = 51  # differs only in the top half
    top = np.zeros((10, 10), bool)
    top[:5] = True
    assert l1(a, b, top) == pytest.approx(0.2) and l1(a, b, ~top) == 0.0
    assert l1(a, b) == pytest.approx(0.1)
    assert psnr(a, b, top) == pytest.approx(10 * np.log10(255**2 / 51**2))


def test_shape_mismatch() -> None:
    with pytest.raises(UnveilError, match="different shapes"):
        l1(np.zeros((2, 2)), np.zeros((3, 3)))
