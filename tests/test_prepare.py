"""Sampling, splits and ``unveil prepare`` on a small synthetic benchmark whose ground truth is known."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from unveil.data.datasets import (IGNORE, Augment, LabelledDataset, PairedDataset, UnpairedDataset, load_samples,
                                  make_loader, select)
from unveil.data.manifest import Recording, load_manifest, save_manifest
from unveil.data.prepare import PrepareConfig, prepare
from unveil.data.sampling import sample_frames, split_train_val
from unveil.errors import UnveilError
from unveil.synth import generate

from conftest import tiny_config
from test_cli import unveil


def test_random_sampling_is_seeded_and_sized() -> None:
    a = sample_frames(18_000, 0.02, "random", seed=4)
    assert len(a) == 360 and len(set(a)) == 360 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, sample_frames(18_000, 0.02, "random", seed=4))
    assert not np.array_equal(a, sample_frames(18_000, 0.02, "random", seed=5))
    assert len(sample_frames(10, 0.02)) == 1  # at least one frame


def test_equidistant_sampling_is_even() -> None:
    frames = sample_frames(1000, 0.1, "equidistant")
    assert len(frames) == 100 and set(np.diff(frames)) == {10} and frames[0] == 5


def test_split_is_ninety_ten() -> None:
    labels = split_train_val(360, 0.1, seed=0)
    assert (labels == "val").sum() == 36 and (labels == "train").sum() == 324


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    generate(tiny_config(size=96, sessions=2, format="mp4", tasks=["sentence", "emotion"], emotion_repetitions=1),
             root, workers=2, progress=False)
    return root


@pytest.fixture(scope="module")
def prepared(tiny_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare(load_manifest(tiny_bench / "manifest.yaml"), out, PrepareConfig(fraction=0.25, load_size=72), workers=2,
            progress=False)
    return out


def test_prepare_samples_every_recording(tiny_bench: Path, prepared: Path) -> None:
    manifest = load_manifest(tiny_bench / "manifest.yaml")
    samples = pd.read_parquet(prepared / "samples.parquet")
    for rec in manifest.recordings:
        rows = samples[samples["recording"] == rec.id]
        assert len(rows) == round(0.25 * rec.n_frames)
        assert rows["frame"].is_unique and rows["frame"].max() < rec.n_frames
        assert (rows["split"] == "val").sum() == round(0.1 * len(rows))
        crop = cv2.imread(str(prepared / rows.iloc[0]["image"]))
        assert crop.shape == (72, 72, 3)
        if rec.condition == "occluded":
            assert rows["clean"].notna().all() and rows["mask"].notna().all()


def test_labels_are_the_ground_truth_of_the_sampled_frames(tiny_bench: Path, prepared: Path) -> None:
    manifest = load_manifest(tiny_bench / "manifest.yaml")
    samples = pd.read_parquet(prepared / "samples.parquet")
    rec = manifest.select(condition="normal", task="emotion", session="1")[0]
    truth = pd.read_parquet(manifest.resolve(rec.frames)).set_index("frame")
    rows = samples[samples["recording"] == rec.id].set_index("frame")
    np.testing.assert_allclose(rows["AU12"], truth.loc[rows.index, "AU12"])
    assert (rows["event"] == truth.loc[rows.index, "event"]).all()


def test_occluded_recordings_use_their_sessions_box(prepared: Path) -> None:
    """sEMG hides the face from the detector; the fixed box comes from the same session's normal recording."""
    samples = pd.read_parquet(prepared / "samples.parquet")
    boxes = samples.groupby(["session", "condition"])[["box_x", "box_y", "box_size"]].first()
    for session in ("1", "2"):
        np.testing.assert_allclose(boxes.loc[(session, "normal")], boxes.loc[(session, "occluded")])
    assert not np.allclose(boxes.loc[("1", "normal")], boxes.loc[("2", "normal")])


def test_mask_crops_mark_where_occluded_and_clean_differ(tiny_bench: Path, tmp_path: Path) -> None:
    manifest = generate(tiny_config(size=96, format="png", normal_takes=0), tmp_path / "png", workers=1,
                        progress=False)
    out = tmp_path / "prepared"
    prepare(manifest, out, PrepareConfig(crop="none", fraction=0.3, load_size=96), workers=1, progress=False)
    samples = pd.read_parquet(out / "samples.parquet")
    for _, row in samples.iterrows():
        occluded, clean = (cv2.imread(str(out / row[k])).astype(int) for k in ("image", "clean"))
        mask = cv2.imread(str(out / row["mask"]), cv2.IMREAD_GRAYSCALE) > 0
        assert np.array_equal(occluded[~mask], clean[~mask])
        assert np.any(occluded[mask] != clean[mask], axis=-1).mean() > 0.98


def test_track_mode_writes_per_frame_flags(tiny_bench: Path, tmp_path: Path) -> None:
    manifest = load_manifest(tiny_bench / "manifest.yaml")
    prepare(manifest, tmp_path, PrepareConfig(crop="track", fraction=0.1, no_face="mark", subjects=["S01"]),
            workers=2, progress=False)
    for rec in manifest.recordings:
        track = pd.read_parquet(tmp_path / "tracks" / f"{rec.id}.parquet")
        assert len(track) == rec.n_frames
        found = track["face_found"].mean()
        # The clean faces are always found; under 62 electrodes and their cables, almost never.
        assert found > 0.95 if rec.condition == "normal" else found < 0.2


def test_a_broken_video_is_reported_and_the_rest_goes_on(tiny_bench: Path, tmp_path: Path) -> None:
    manifest = load_manifest(tiny_bench / "manifest.yaml")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(manifest.resolve(manifest.recordings[0].media).read_bytes()[:3000])
    bad = Recording(id="broken", subject="S01", session="1", condition="normal", task="sentence",
                    media=str(broken))
    manifest.recordings.append(bad)
    result = prepare(manifest, tmp_path / "out", PrepareConfig(crop="none", fraction=0.1), workers=2,
                     progress=False)
    assert list(result.failures) == ["broken"] and "broken.mp4" in result.failures["broken"]
    assert set(result.samples["recording"]) == {r.id for r in manifest.recordings} - {"broken"}


def test_cli_reports_failures_with_exit_code(tiny_bench: Path, tmp_path: Path) -> None:
    manifest = load_manifest(tiny_bench / "manifest.yaml")
    manifest.recordings.append(Recording(id="gone", subject="S01", session="1", condition="normal",
                                         task="sentence", media="/nonexistent/video.mp4"))
    path = save_manifest(manifest, tiny_bench / "with-missing.yaml")
    result = unveil("prepare", str(path), "--out", str(tmp_path), "--crop", "none", "--quiet")
    assert result.returncode == 1 and "gone: The video /nonexistent/video.mp4 does not exist." in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "samples.parquet").is_file()


def test_datasets_over_prepared_samples(prepared: Path) -> None:
    samples, root = load_samples(prepared)
    augment = Augment(load_size=72, crop_size=64)
    unpaired = UnpairedDataset(root, select(samples, {"condition": "occluded"}, "train"),
                               select(samples, {"condition": "normal"}, "train"), augment, seed=1)
    batch = next(iter(make_loader(unpaired, 4, seed=0)))
    assert batch["A"].shape == (4, 3, 64, 64) and -1 <= batch["A"].min() and batch["A"].max() <= 1
    paired = PairedDataset(root, select(samples, {"condition": "occluded"}), augment)
    item = paired[0]
    assert item["mask"].shape == (1, 64, 64) and 0.2 < item["mask"].mean() < 0.9
    normal = select(samples, {"condition": "normal"})
    labelled = LabelledDataset(root, normal, ["AU12", "AU25"], augment)
    item = labelled[1]
    assert np.allclose(item["aus"].numpy(), normal.loc[1, ["AU12", "AU25"]].to_numpy(np.float32))
    assert int(item["emotion"]) == IGNORE and item["path"] == normal.loc[1, "image"]
    with_emotion = LabelledDataset(root, normal, [], augment, emotion=np.arange(len(normal)))
    assert int(with_emotion[3]["emotion"]) == 3 and with_emotion[3]["aus"].shape == (0,)
    with pytest.raises(UnveilError, match="no label column"):
        LabelledDataset(root, samples, ["AU99"], augment)


def test_loader_repeats_with_any_worker_count(prepared: Path) -> None:
    samples, root = load_samples(prepared)
    dataset = UnpairedDataset(root, select(samples, {"condition": "occluded"}),
                              select(samples, {"condition": "normal"}), Augment(72, 64), seed=2)

    def first_batches(workers: int, epoch: int) -> list:
        dataset.set_epoch(epoch)
        return [b["A"] for _, b in zip(range(3), make_loader(dataset, 4, seed=7, num_workers=workers))]

    serial, parallel = first_batches(0, 0), first_batches(2, 0)
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(serial, first_batches(0, 1), strict=True))


def test_condition_keeps_only_those_recordings_and_an_unmatched_one_is_a_sentence(tiny_bench: Path,
                                                                                   tmp_path: Path) -> None:
    manifest = load_manifest(tiny_bench / "manifest.yaml")
    result = unveil("prepare", str(tiny_bench / "manifest.yaml"), "-o", str(tmp_path / "normal"), "--crop", "none",
                    "--fraction", "0.05", "--condition", "normal", "--quiet")
    assert result.returncode == 0, result.stderr
    samples = pd.read_parquet(tmp_path / "normal" / "samples.parquet")
    assert set(samples["recording"]) == {r.id for r in manifest.recordings if r.condition == "normal"}
    result = unveil("prepare", str(tiny_bench / "manifest.yaml"), "-o", str(tmp_path / "none"), "--condition",
                    "outdoors", "--quiet")
    assert result.returncode == 2 and "--condition" in result.stderr and "Traceback" not in result.stderr
