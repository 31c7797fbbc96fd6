"""Occlusion synthesis on the real talking-head clips: the overlays follow the face in every frame."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.data.occlusion import fit_pose, head_turn, load_mask_templates, occlude_media
from unveil.data.video import read_frames
from unveil.errors import UnveilError
from unveil.synth.face import TEMPLATE
from unveil.synth.render import Pose

from test_cli import unveil

NOSE_AND_MOUTH = list(range(31, 36)) + list(range(48, 68))


def _points(table: pd.DataFrame, row: int) -> np.ndarray:
    return np.stack([table.loc[row, [f"x_{i}" for i in range(68)]].to_numpy(float),
                     table.loc[row, [f"y_{i}" for i in range(68)]].to_numpy(float)], axis=1)


@pytest.mark.parametrize("clip", ["talking_1.mp4", "talking_2.mp4", "talking_3.mp4", "talking_4.mp4"])
def test_face_mask_covers_nose_and_mouth_in_every_frame(shared_data: Path, tmp_path: Path, clip: str) -> None:
    result = occlude_media(shared_data / "videos" / clip, tmp_path, ["mask"], templates=shared_data / "masks",
                           fmt="mp4", progress=False)
    table = result.table
    assert table["face_found"].all()
    masks = read_frames(result.outputs["mask"], gray=True)
    for (row, mask) in zip(range(len(table)), masks, strict=True):
        points = np.round(_points(table, row)).astype(int)
        inside = mask.image[points[NOSE_AND_MOUTH, 1], points[NOSE_AND_MOUTH, 0]] > 0
        assert inside.all(), f"{clip} frame {row}: landmarks {np.array(NOSE_AND_MOUTH)[~inside]} uncovered"
        upper = [17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 37, 38, 43, 44]  # brows and upper lids stay visible
        assert not (mask.image[points[upper, 1], points[upper, 0]] > 0).any(), f"{clip} frame {row}: too high"


def test_triplets_are_exact(shared_data: Path, tmp_path: Path) -> None:
    result = occlude_media(shared_data / "videos" / "single_face.mp4", tmp_path, ["semg", "glasses"], fmt="png",
                           progress=False)
    frames = zip(read_frames(result.outputs["occluded"]), read_frames(result.outputs["clean"]),
                 read_frames(result.outputs["mask"], gray=True), strict=True)
    for occluded, clean, mask in frames:
        hidden = mask.image > 0
        assert np.array_equal(occluded.image[~hidden], clean.image[~hidden])
        assert np.any(occluded.image[hidden] != clean.image[hidden], axis=-1).mean() > 0.98
        assert hidden.mean() > 0.02


def test_triplets_become_paired_training_crops(shared_data: Path, tmp_path: Path) -> None:
    """occlude's manifest -> prepare -> pix2pix trains on the exact pairs (one step here)."""
    from unveil.data.datasets import load_samples
    from unveil.data.manifest import load_manifest
    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.train.loop import TrainConfig, train

    result = occlude_media(shared_data / "videos" / "single_face.mp4", tmp_path / "occ", ["semg"], fmt="png",
                           progress=False)
    manifest = load_manifest(result.outputs["manifest"])
    assert [r.condition for r in manifest.recordings] == ["normal", "occluded"]
    prepare(manifest, tmp_path / "prepared", PrepareConfig(fraction=0.2, load_size=72), workers=1, progress=False)
    table, _ = load_samples(tmp_path / "prepared")
    occluded = table[table["condition"] == "occluded"]
    assert len(occluded) >= 5 and occluded["clean"].notna().all() and occluded["mask"].notna().all()
    config = TrainConfig(method="pix2pix", model={"ngf": 4, "ndf": 4, "netG": "resnet_6blocks"}, n_epochs=1,
                         n_epochs_decay=0, load_size=72, crop_size=64, time_limit=1e-9)
    trained = train(tmp_path / "prepared", tmp_path / "run", config, progress=False)
    assert not trained.complete and (tmp_path / "run" / "checkpoints" / "latest.safetensors").is_file()


def test_occluded_video_keeps_frames_fps_and_audio(shared_data: Path, tmp_path: Path) -> None:
    from unveil.data.video import probe

    source = shared_data / "videos" / "talking_2.mp4"
    result = occlude_media(source, tmp_path, ["hand"], fmt="mp4", progress=False)
    a, b = probe(source), probe(result.outputs["occluded"])
    assert (b.n_frames, b.fps, b.duration, b.has_audio) == (a.n_frames, a.fps, a.duration, True)


def test_pose_fit_recovers_a_known_similarity() -> None:
    pose = Pose(scale=123.0, tx=300.0, ty=210.0, roll=np.radians(7))
    fitted = fit_pose(pose.apply(TEMPLATE))
    assert (fitted.scale, fitted.tx, fitted.ty, fitted.roll) == pytest.approx(
        (pose.scale, pose.tx, pose.ty, pose.roll), rel=1e-9, abs=1e-9)


def test_templates_and_views(shared_data: Path) -> None:
    templates = load_mask_templates(shared_data / "masks")
    assert {"surgical", "surgical_left", "surgical_right", "N95", "cloth", "gas", "KN95"} <= set(templates)
    assert head_turn(Pose(100, 0, 0, 0).apply(TEMPLATE)) == pytest.approx(0.5)


def test_missing_templates_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNVEIL_MASK_TEMPLATES", raising=False)
    with pytest.raises(UnveilError, match="pass --templates"):
        load_mask_templates(tmp_path)


def test_cli_occlude_errors(tmp_path: Path) -> None:
    result = unveil("occlude", str(tmp_path / "none.mp4"), "--out", str(tmp_path), "--occluder", "mask")
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    result = unveil("occlude", str(image), "--out", str(tmp_path / "o"), "--occluder", "scarf")
    assert result.returncode == 2 and "Unknown occluder 'scarf'" in result.stderr
