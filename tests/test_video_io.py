from pathlib import Path

import numpy as np
import pytest

from unveil.data.video import VideoWriter, open_writer, read_frames
from unveil.errors import UnveilError
from unveil.files import atomic_path


def _frames(n: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_h264_keeps_count_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=12.5) as writer:
        for frame in _frames(25):
            writer.write(frame)
    decoded = list(read_frames(path))
    assert len(decoded) == 25
    assert [f.index for f in decoded] == list(range(25))
    np.testing.assert_allclose([f.time for f in decoded], np.arange(25) / 12.5, atol=1e-6)
    assert decoded[0].image.shape == (32, 32, 3)


def test_ffv1_masks_are_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    masks = [(rng.random((48, 64)) > 0.5).astype(np.uint8) * 255 for _ in range(5)]
    with VideoWriter(tmp_path / "m.mkv", fps=10, lossless=True, gray=True) as writer:
        for m in masks:
            writer.write(m)
    decoded = [f.image for f in read_frames(tmp_path / "m.mkv", gray=True)]
    assert len(decoded) == 5 and all(np.array_equal(a, b) for a, b in zip(decoded, masks, strict=True))


def test_png_folder_round_trip(tmp_path: Path) -> None:
    frames = _frames(3)
    with open_writer(tmp_path / "frames", fps=10) as writer:
        for frame in frames:
            writer.write(frame)
    decoded = list(read_frames(tmp_path / "frames", fps=10))
    assert [f.time for f in decoded] == [0.0, 0.1, 0.2]
    assert all(np.array_equal(d.image, f) for d, f in zip(decoded, frames, strict=True))


@pytest.mark.parametrize("target", ["clip.mp4", "frames"])
def test_interrupted_writer_leaves_nothing(tmp_path: Path, target: str) -> None:
    with pytest.raises(RuntimeError):
        with open_writer(tmp_path / target, fps=10) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_empty_video_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UnveilError, match="No frames"):
        with VideoWriter(tmp_path / "empty.mp4", fps=10):
            pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ValueError
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_unreadable_video_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(UnveilError, match="bad.mp4"):
        list(read_frames(bad))
