from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.data.manifest import load_manifest
from unveil.data.video import read_frames
from unveil.errors import UnveilError
from unveil.facs import au_column, landmark_columns
from unveil.synth import SYNTH_AUS, generate

from conftest import tiny_config


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["png", "mp4"])
def test_same_seed_same_bytes(tmp_path: Path, fmt: str) -> None:
    config = tiny_config(format=fmt, subjects=2)
    generate(config, tmp_path / "a", workers=1, progress=False)
    generate(config, tmp_path / "b", workers=2, progress=False)  # other processes, other order
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 10
    different = [name for name in a if a[name] != b[name]]
    assert different == []


def test_other_seed_other_faces(tmp_path: Path) -> None:
    m0 = generate(tiny_config(seed=0), tmp_path / "a", workers=1, progress=False)
    m1 = generate(tiny_config(seed=1), tmp_path / "b", workers=1, progress=False)
    f0 = next(read_frames(m0.resolve(m0.recordings[0].media))).image.astype(int)
    f1 = next(read_frames(m1.resolve(m1.recordings[0].media))).image.astype(int)
    assert np.abs(f0 - f1).mean() > 10


def test_layout_of_the_paper(tmp_path: Path) -> None:
    """Per subject two sessions, each one normal and two occluded takes, each with every task."""
    config = tiny_config(subjects=2, sessions=2, occluded_takes=2, tasks=["sentence", "emotion"],
                         emotion_repetitions=1, format="mp4", size=64)
    manifest = generate(config, tmp_path, workers=2, progress=False)
    assert load_manifest(tmp_path / "manifest.yaml").recordings == manifest.recordings
    assert len(manifest.recordings) == 2 * 2 * 3 * 2
    for subject in ("S01", "S02"):
        for session in ("1", "2"):
            recs = manifest.select(subject=subject, session=session)
            assert sorted((r.condition, r.take, r.task) for r in recs) == sorted(
                (c, t, task) for c, t in (("normal", 1), ("occluded", 1), ("occluded", 2))
                for task in ("sentence", "emotion"))
    for rec in manifest.recordings:
        media = list(read_frames(manifest.resolve(rec.media)))
        assert len(media) == rec.n_frames and media[0].image.shape == (64, 64, 3)
        np.testing.assert_allclose(media[-1].time, (rec.n_frames - 1) / rec.fps, atol=1e-6)
        table = pd.read_parquet(manifest.resolve(rec.frames))
        assert len(table) == rec.n_frames
        assert {au_column(a) for a in SYNTH_AUS} | set(landmark_columns()) <= set(table.columns)
        if rec.condition == "occluded":
            assert rec.occluder == "semg" and manifest.resolve(rec.ground_truth).is_file()
            assert len(list(read_frames(manifest.resolve(rec.mask), gray=True))) == rec.n_frames
            assert table["coverage"].min() > 0.2
        else:
            assert rec.ground_truth is None and rec.mask is None and table["coverage"].max() == 0


def test_sessions_differ_in_light_and_pose(tmp_path: Path) -> None:
    manifest = generate(tiny_config(sessions=2, occluded_takes=0), tmp_path, workers=1, progress=False)
    tables = [pd.read_parquet(manifest.resolve(r.frames)) for r in manifest.recordings]
    frames = [next(read_frames(manifest.resolve(r.media))).image.astype(float) for r in manifest.recordings]
    assert abs(tables[0]["head_x"].mean() - tables[1]["head_x"].mean()) > 0.1
    assert np.abs(frames[0] - frames[1]).mean() > 5


def test_rerun_replaces_the_previous_benchmark(tmp_path: Path) -> None:
    generate(tiny_config(subjects=2), tmp_path, workers=1, progress=False)
    generate(tiny_config(subjects=1), tmp_path, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S01", "manifest.yaml", "synth.yaml"]


def test_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(UnveilError, match="not empty"):
        generate(tiny_config(), tmp_path, workers=1, progress=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"
