"""The acceptance command of the foundation issue, end to end: the paper's full layout for two subjects."""

from pathlib import Path

import pandas as pd
import pytest

from unveil.data.manifest import load_manifest
from unveil.synth.protocols import SCHAEDE_MOVEMENTS

from test_cli import unveil


@pytest.mark.slow
def test_default_two_subject_layout(tmp_path: Path) -> None:
    result = unveil("synth", str(tmp_path), "--subjects", "2", "--size", "128", "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(tmp_path / "manifest.yaml")
    assert len(manifest.recordings) == 2 * 2 * 3 * 3  # subjects x sessions x (1 normal + 2 sEMG) x tasks
    assert manifest.subjects() == ["S01", "S02"]
    for rec in manifest.recordings:
        paths = [rec.media, rec.frames] + ([rec.ground_truth, rec.mask] if rec.condition == "occluded" else [])
        assert all(manifest.resolve(p).stat().st_size > 0 for p in paths)
        table = pd.read_parquet(manifest.resolve(rec.frames), columns=["frame", "event", "coverage"])
        assert len(table) == rec.n_frames and table["frame"].tolist() == list(range(rec.n_frames))
        if rec.task == "schaede":
            assert set(SCHAEDE_MOVEMENTS) <= set(table["event"])
    leftovers = [p for p in tmp_path.rglob(".tmp-*")]
    assert leftovers == []
