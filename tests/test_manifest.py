from pathlib import Path

import pytest
import yaml

from unveil.data.manifest import Manifest, Recording, load_manifest, save_manifest
from unveil.errors import UnveilError


def _recording(**overrides: object) -> Recording:
    fields: dict[str, object] = dict(id="S01-ses1-occluded1-emotion", subject="S01", session="1", take=1,
                                     condition="occluded", occluder="semg", task="emotion",
                                     media="S01/emotion.mp4", ground_truth="S01/emotion.clean.mp4",
                                     mask="S01/emotion.mask.mkv", frames="S01/emotion.frames.parquet",
                                     fps=15.0, n_frames=10)
    fields.update(overrides)
    return Recording(**fields)


def test_round_trip(tmp_path: Path) -> None:
    manifest = Manifest(name="x", recordings=[_recording(), _recording(id="b", condition="normal", occluder=None,
                                                                       ground_truth=None, mask=None)])
    path = save_manifest(manifest, tmp_path / "sub" / "manifest.yaml")
    loaded = load_manifest(path)
    assert loaded.recordings == manifest.recordings and loaded.name == "x"
    assert loaded.root == path.parent.resolve()
    assert loaded.resolve("S01/emotion.mp4") == path.parent.resolve() / "S01/emotion.mp4"
    assert "ground_truth" not in yaml.safe_load(path.read_text())["recordings"][1]  # unset fields left out


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    manifest = Manifest(recordings=[_recording(media="/data/videos/a.mp4")])
    manifest.root = tmp_path
    assert manifest.resolve(manifest.recordings[0].media) == Path("/data/videos/a.mp4")


def _write(tmp_path: Path, recordings: list[dict]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "recordings": recordings}))
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"condition": "blurry"}, "'recordings.0.condition' is invalid"),
        ({"occluder": None}, "is occluded but names no occluder"),
        ({"media": "../elsewhere/a.mp4"}, "climbs out of the manifest's folder"),
        ({"colour": "red"}, "'recordings.0.colour' is not a known option"),
    ],
)
def test_invalid_manifest_gives_one_sentence(tmp_path: Path, change: dict, expected: str) -> None:
    entry = _recording().model_dump()
    entry.update(change)
    with pytest.raises(UnveilError) as info:
        load_manifest(_write(tmp_path, [entry]))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    entry = _recording().model_dump()
    with pytest.raises(UnveilError, match="appears twice"):
        load_manifest(_write(tmp_path, [entry, entry]))


def test_wrong_version(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text("version: 7\nrecordings: []\n")
    with pytest.raises(UnveilError, match="version 7"):
        load_manifest(path)


def test_csv_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "list.csv").write_text(
        "id,subject,session,condition,occluder,task,media,fps\n"
        "r1,P01,1,normal,,emotion,a.mp4,30\n"
        "r2,P01,1,occluded,semg,emotion,b.mp4,\n")
    manifest = load_manifest(tmp_path / "list.csv")
    assert [r.id for r in manifest.recordings] == ["r1", "r2"]
    assert manifest.recordings[0].fps == 30.0 and manifest.recordings[1].occluder == "semg"
    assert manifest.missing_files() == [f"r2: {tmp_path.resolve() / 'b.mp4'}"]
    with pytest.raises(UnveilError, match="A file of the manifest is missing: r2: .*b.mp4"):
        manifest.check_files()


def test_csv_with_a_bad_condition(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("id,subject,session,condition,task,media\nr1,P01,1,sleepy,emotion,a.mp4\n")
    with pytest.raises(UnveilError, match="'recordings.0.condition' is invalid"):
        load_manifest(tmp_path / "list.csv")
