"""Pairs synthesised on the fly: exact masks for every occluder, held-out sensor looks that never show the
benchmark's colours, per-(seed, epoch, index) determinism, and the labelled photo folder split by identity."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from unveil.data.datasets import IGNORE, Augment, load_samples
from unveil.data.labelled import identity_splits, prepare_labelled_folder
from unveil.data.pairs import PAIR_OCCLUDERS, SynthesizedPairs, crop_landmarks, jpeg_round_trip, synthesize_occlusion
from unveil.errors import UnveilError
from unveil.synth.face import TEMPLATE
from unveil.synth.occluders import BENCHMARK_SENSOR_COLOURS, held_out_colour
from unveil.synth.render import Pose

from test_cli import unveil


def noise_face(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noise image (so that any drawn colour differs from what was there) and a face's 68 landmarks on it."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    points = Pose(scale=size * 0.3, tx=size / 2, ty=size * 0.42, roll=0.05).apply(TEMPLATE)
    return image, points


@pytest.mark.parametrize("kind", PAIR_OCCLUDERS)
def test_every_pair_occluder_draws_an_exact_mask(kind: str) -> None:
    image, points = noise_face()
    occluded, mask = synthesize_occlusion(image, points, kind, np.random.default_rng(1), patch_level=2)
    hidden = mask > 0
    assert 0.005 < hidden.mean() < 0.9
    assert np.array_equal(occluded[~hidden], image[~hidden])  # outside the mask: the clean image bit for bit
    assert (occluded[hidden] != image[hidden]).any(axis=1).mean() > 0.95  # inside: changed (noise rarely matches)


def test_held_out_sensor_looks_never_show_the_benchmarks_colours() -> None:
    image = np.full((128, 128, 3), 0, np.uint8)
    _, points = noise_face()
    for seed in range(25):
        occluded, mask = synthesize_occlusion(image, points, "sensors", np.random.default_rng(seed))
        colours = occluded[mask > 0].astype(float)
        distance = np.linalg.norm(colours[:, None, :] - BENCHMARK_SENSOR_COLOURS[None], axis=2).min(axis=1)
        assert distance.min() >= 80, seed
    # the benchmark's own renderer does draw them (so the check above could fail)
    occluded, mask = synthesize_occlusion(image, points, "semg", np.random.default_rng(0))
    colours = occluded[mask > 0].astype(float)
    assert np.linalg.norm(colours[:, None, :] - BENCHMARK_SENSOR_COLOURS[None], axis=2).min(axis=1).min() < 1


def test_held_out_colours_keep_their_distance() -> None:
    rng = np.random.default_rng(0)
    colours = np.array([held_out_colour(rng) for _ in range(500)])
    assert np.linalg.norm(colours[:, None] - BENCHMARK_SENSOR_COLOURS[None], axis=2).min() >= 80
    assert not ((colours.min(axis=1) > 160) & (np.ptp(colours, axis=1) < 60)).any()  # no light greys or whites


def test_the_copy_index_sets_the_patch_level() -> None:
    image, points = noise_face()
    shares = {level: [] for level in (1, 4)}
    for seed in range(12):
        for level in shares:
            _, mask = synthesize_occlusion(image, points, "patch", np.random.default_rng(seed), patch_level=level)
            shares[level].append((mask > 0).mean())
    assert np.mean(shares[4]) > 2.5 * np.mean(shares[1])


def test_jpeg_round_trip_smears_an_occluders_colour_past_its_mask() -> None:
    image = np.full((64, 64, 3), 128, np.uint8)
    image[20:40, 20:40] = (220, 20, 30)  # a red patch
    smeared = jpeg_round_trip(image, 60)
    ring = np.zeros((64, 64), bool)
    ring[18:42, 18:42] = True
    ring[20:40, 20:40] = False
    assert np.abs(smeared[ring].astype(int) - 128).max() > 5  # colour outside the exact outline


def _face_folder(root: Path, n: int) -> tuple[Path, pd.DataFrame, np.ndarray]:
    rows, points = [], []
    for i in range(n):
        image, face = noise_face(64, seed=i)
        cv2.imwrite(str(root / f"{i}.png"), cv2.GaussianBlur(image, (0, 0), 3))  # smooth: JPEG keeps it
        rows.append({"image": f"{i}.png", "emotion": ["happiness", None][i % 2], "AU12": i / n})
        points.append(face)
    return root, pd.DataFrame(rows), np.stack(points)


def test_synthesized_pairs_repeat_for_the_same_seed_epoch_and_index(tmp_path: Path) -> None:
    from unveil.data.datasets import row_labels

    root, rows, points = _face_folder(tmp_path, 3)
    labels = row_labels(rows, ["happiness"], ["AU12"])
    make = lambda: SynthesizedPairs(root, rows, points, Augment(72, 64), ["patch", "sensors"], per_image=4,  # noqa: E731
                                    labels=labels, seed=5)
    first, second = make(), make()
    assert len(first) == 12
    item = first[6]
    assert {"A", "B", "mask", "emotion", "aus"} <= set(item)
    assert all(np.array_equal(item[k], second[6][k]) for k in ("A", "B", "mask"))
    assert int(item["emotion"]) == IGNORE and float(item["aus"][0]) == pytest.approx(1 / 3)  # image 6 // 4 = 1
    assert int(first[9]["emotion"]) == 0 and float(first[9]["aus"][0]) == pytest.approx(2 / 3)  # image 2: happy
    second.set_epoch(1)
    assert not np.array_equal(item["A"], second[6]["A"])  # a new epoch draws new occluders
    hidden = item["mask"][0] > 0.5
    assert hidden.any()
    # outside the mask A and B differ only by the JPEG round trip
    assert float((item["A"] - item["B"]).abs().mean(0)[~hidden].mean()) < 0.1


def test_crop_landmarks_are_cached_beside_the_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      shared_data: Path) -> None:
    faces = sorted((shared_data / "faces" / "images").iterdir())[:3]
    for face in faces:
        cv2.imwrite(str(tmp_path / face.name), cv2.imread(str(face)))
    names = [f.name for f in faces]
    points = crop_landmarks(tmp_path, names, progress=False)
    assert points.shape == (3, 68, 2) and np.isfinite(points).all()
    # eyes above the mouth, inside the photo
    assert (points[:, 36:48, 1].mean(axis=1) < points[:, 48:60, 1].mean(axis=1)).all()
    assert (points[:, 27:36] > 0).all() and (points[:, 27:36] < 128).all()
    import unveil.data.landmarks as landmarks

    monkeypatch.setattr(landmarks, "DlibLandmarker", None)  # a second call must not detect again
    assert np.array_equal(crop_landmarks(tmp_path, names[::-1], progress=False), points[::-1])


def test_identity_splits_never_share_a_person() -> None:
    people = pd.Series([f"p{i % 37}" for i in range(500)] + ["big"] * 100)
    split = identity_splits(people, 0.1, 0.2, seed=3)
    assert set(split) == {"train", "val", "test"}
    by_person = pd.DataFrame({"person": people, "split": split}).groupby("person")["split"].nunique()
    assert (by_person == 1).all()
    assert 0.15 < (split == "test").mean() < 0.45


def test_prepare_a_labelled_photo_folder(tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(20):
        cv2.imwrite(str(folder / "images" / f"p{i // 2}_{i}.jpg"), np.full((50, 50, 3), i * 10, np.uint8))
        rows.append({"image": f"p{i // 2}_{i}.jpg", "emotion": ["anger", ""][i % 2], "identity": f"p{i // 2}"})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    result = unveil("prepare", str(folder), "-o", str(tmp_path / "out"), "--load-size", "32", "-q")
    assert result.returncode == 0, result.stderr
    table, root = load_samples(tmp_path / "out")
    assert len(table) == 20 and table.groupby("subject")["split"].nunique().max() == 1
    assert table["emotion"].notna().sum() == 10 and set(table["emotion"].dropna()) == {"anger"}
    assert cv2.imread(str(root / table["image"].iloc[3])).shape == (32, 32, 3)
    (folder / "images" / "p0_0.jpg").write_bytes(b"not an image")
    result = unveil("prepare", str(folder), "-o", str(tmp_path / "out2"), "-q")
    assert result.returncode == 2 and "Cannot read the photo" in result.stderr and "p0_0.jpg" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(UnveilError, match="has no labels.csv"):
        prepare_labelled_folder(tmp_path, tmp_path / "out3")


def test_occluding_a_photo_without_a_face_is_one_sentence(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 120, 3), 90, np.uint8))
    result = unveil("occlude", str(tmp_path / "wall.png"), "-o", str(tmp_path / "out"), "--occluder", "glasses")
    assert result.returncode == 2 and "No face was found in" in result.stderr and "wall.png" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list((tmp_path / "out").glob("*.png"))
