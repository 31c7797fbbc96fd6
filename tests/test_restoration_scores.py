"""Pixel scores against the hidden truth are taken on the frame's own pixels of the face box, so that restorers
working at different crop sizes are judged on the same pixels."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import tiny_prepared


class IdentityRestorer:
    """Returns its crop unchanged: whatever its size, it restores nothing."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        return [c.copy() for c in crops]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_prepared(tmp_path_factory.mktemp("scores"), fraction=0.3)


def scores_at(size: int, prepared: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    from unveil.data.manifest import load_manifest
    from unveil.evaluate import restoration

    monkeypatch.setattr(restoration, "load_restorer", lambda _, **options: IdentityRestorer(size))
    manifest = load_manifest(prepared.parent / "bench" / "manifest.yaml")
    return restoration.restoration_scores("unused", manifest, prepared, "S01", every=2)


def test_the_input_scores_the_same_whatever_the_restorers_crop_size(prepared: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    small, large = scores_at(16, prepared, monkeypatch), scores_at(128, prepared, monkeypatch)
    assert len(small) == len(large) > 0
    for column in ("psnr_mask_input", "l1_mask_input", "psnr_input", "coverage"):
        np.testing.assert_allclose(small[column], large[column], rtol=1e-6)
    # the input's own PSNR inside the occluder, from the frames directly: the native box is the whole 64 px frame
    assert np.isfinite(large["psnr_mask_input"]).all() and (large["psnr_mask_input"] < 30).all()
    # an identity at the native size gives back the input (up to the resampling of the crop)
    assert np.allclose(scores_at(64, prepared, monkeypatch)["l1_mask_restored"], large["l1_mask_input"], atol=2e-3)


def test_a_found_mask_is_scored_at_the_native_size(prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restorer that reports the occluder it found as a crop-sized mask: the IoU is taken after resizing it to
    the box, so a perfect mask at a coarse size still scores close to 1."""
    from unveil.data.manifest import load_manifest
    from unveil.data.video import read_frames
    from unveil.evaluate import restoration

    manifest = load_manifest(prepared.parent / "bench" / "manifest.yaml")
    rec = manifest.select(subject="S01", condition="occluded")[0]
    masks = {f.index: f.image for f in read_frames(manifest.resolve(rec.mask), gray=True)}

    class Finder(IdentityRestorer):
        last_masks: list[np.ndarray] = []

        def __call__(self, crops: list[np.ndarray]) -> list[np.ndarray]:
            frame = Finder.frame
            self.last_masks = [cv2.resize((masks[frame] > 127).astype(np.float32), (self.size, self.size),
                                          interpolation=cv2.INTER_AREA)]
            return super().__call__(crops)

    original = restoration.read_frames

    def tracking(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - remember which frame is scored
        for frame in original(*args, **kwargs):
            Finder.frame = frame.index
            yield frame

    monkeypatch.setattr(restoration, "read_frames", tracking)
    monkeypatch.setattr(restoration, "load_restorer", lambda _, **options: Finder(48))
    scores = restoration.restoration_scores("unused", manifest, prepared, "S01", every=2)
    assert scores["mask_iou"].mean() > 0.8
