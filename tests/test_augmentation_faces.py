"""Seed 002's strategies on faces: the data's splits and truths, the present-at scoring, the manipulator's one-AU
edits of neutral faces, and one whole tiny run of every strategy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from unveil.experiments.augmentation import LabelSpace, call_rates, scores, training_rows
from unveil.experiments.augmentation_faces import FaceAugmentationConfig, face_space, run_face_augmentation


def photo_folder(root: Path, n: int = 40, labelled: int = 10) -> Path:
    """``n`` grey 48 px 'photos' with a labels.csv: the first ``labelled`` have an emotion, the rest none."""
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(images / f"p{i:03d}.jpg"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    pd.DataFrame({"image": [f"p{i:03d}.jpg" for i in range(n)],
                  "emotion": ["happiness"] * labelled + [""] * (n - labelled),
                  "identity": [f"person{i // 4}" for i in range(n)]}).to_csv(root / "labels.csv", index=False)
    return root


def test_scores_count_an_intensity_present_from_present_at() -> None:
    space = LabelSpace(("AU01", "AU02"), 64, present_at=0.3, binary=False, pair=("AU01", "AU02"))
    truth = np.array([[0.6, 0.0], [0.0, 0.5], [0.29, 0.0], [0.0, 0.0]])
    output = np.array([[0.5, 0.35], [0.0, 0.7], [0.31, 0.0], [0.0, 0.1]])  # AU2 called beside AU1; a 0.29 missed
    result = scores(truth, output, space)
    assert result["FDR_AU02"] == pytest.approx(50.0)  # 1 true, 1 false call of AU2
    assert result["FDR_AU01"] == pytest.approx(50.0)  # the 0.29 is absent in truth: its 0.31 is a false call
    assert result["F1_AU01"] == pytest.approx(100 * 2 / 3) and result["F1_AU02"] == pytest.approx(100 * 2 / 3)
    assert result["FDR_pair"] == pytest.approx(50.0)


def test_call_rates_say_which_au_is_called_beside_a_lone_one() -> None:
    space = LabelSpace(("AU06", "AU12"), 64, present_at=0.3, binary=False, pair=("AU06", "AU12"))
    truth = np.array([[0.0, 0.7], [0.0, 0.6], [0.0, 0.5], [0.7, 0.0], [0.5, 0.5], [0.0, 0.0], [0.1, 0.0]])
    output = np.array([[0.4, 0.8], [0.0, 0.2], [0.5, 0.6], [0.9, 0.0], [0.9, 0.9], [0.0, 0.4], [0.0, 0.0]])
    rates = call_rates(truth, output, space)
    assert rates.loc["AU12"].tolist() == pytest.approx([2 / 3, 2 / 3])  # a lone smile read as a cheek raise twice
    assert rates.loc["AU06"].tolist() == [1.0, 0.0]  # the row with both is in neither
    assert rates.loc["none"].tolist() == [0.0, 0.5]  # 0.1 is below present_at: that face shows nothing


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FaceAugmentationConfig, pd.DataFrame]:
    root = tmp_path_factory.mktemp("augf")
    photos = photo_folder(root / "photos_source")
    config = FaceAugmentationConfig(subjects=1, sessions=1, frame_size=96, fraction=0.05, load_size=32, labelled=15,
                                    extra=2, photos=str(photos), seeds=1, width=4, max_epochs=2, patience=1,
                                    batch_size=10, em_width=4, em_epochs=1, em_epochs_decay=0, device="cpu")
    frame = run_face_augmentation(config, root / "exp", progress=False)
    return root / "exp", config, frame


def test_the_splits_are_the_labelled_draw_the_real_pool_and_the_single_au_test(experiment) -> None:  # noqa: ANN001
    folder, config, _ = experiment
    table = pd.read_parquet(folder / "samples.parquet")
    aus = [c for c in table.columns if c.startswith("AU") and c[2:].isdigit()]
    test = table[table["split"] == "test"]
    assert (test["task"] == "single_au").all() and not (table[table["split"] != "test"]["task"] == "single_au").any()
    assert (test[aus] >= config.present_at).sum(axis=1).max() == 1  # one AU at a time, the uncorrelated test
    train = table[table["split"] == "train"]
    assert len(train) == config.labelled and train[aus].notna().all().all()
    pool = table[table["split"] == "unlabelled"]
    assert len(pool) == 30 and pool["image"].str.startswith("photos/").all() and pool[aus].isna().all().all()
    assert all((folder / p).is_file() for p in table["image"])


def test_the_manipulator_edits_neutral_faces_one_au_at_a_time(experiment) -> None:  # noqa: ANN001
    folder, config, _ = experiment
    table = pd.read_parquet(folder / "samples.parquet")
    aus = [c for c in table.columns if c.startswith("AU") and c[2:].isdigit()]
    space = face_space(aus, config)
    rows = training_rows(table, "manipulator", 0, config.extra, folder, folder / "runs", "cpu", config, space=space)
    labelled = table["split"].isin(["train", "val"]).sum()
    edits = rows.iloc[labelled:]
    assert len(edits) == config.extra * config.labelled and edits["image"].str.startswith("manipulated-s0/").all()
    expected = 0.7 * np.eye(len(aus))[np.arange(len(edits)) % len(aus)]
    assert np.allclose(edits[aus].to_numpy(), expected)
    assert (edits["split"] == "train").all() and all((folder / p).is_file() for p in edits["image"])
    # every edit starts from a neutral face: here labelled benchmark frames (a 2-epoch model's pseudo-labels of the
    # photos sit near 0.5, far from neutral), found again by recording and frame, every true AU below 0.05
    sources = edits[["recording", "frame"]].merge(table[table["split"] == "train"], on=["recording", "frame"])
    assert len(sources) == len(edits) and (sources[aus].max(axis=1) < space.neutral_below).all()


def test_every_strategy_is_scored_beside_the_seed(experiment) -> None:  # noqa: ANN001
    folder, _, frame = experiment
    assert sorted(frame["strategy"]) == ["manipulator", "pseudo-labels", "supervised", "upsampling"]
    assert frame["F1"].between(0, 100).all() and {"FDR_pair", "F1_AU12", "FDR_AU06"} <= set(frame.columns)
    assert frame["F1_val"].between(0, 100).all() and {"FDR_val", "FDR_pair_val"} <= set(frame.columns)
    table = (folder / "table.md").read_text()
    assert "FDR AU01-02 %" in table and "validation F1 / FDR %" in table and "61.3 / 47.8" in table
    assert "| 15 | photos | supervised | 1 |" in table
    calls = pd.read_csv(folder / "calls.csv", index_col=[0, 1])
    assert set(calls.index.get_level_values(0)) == set(frame["strategy"]) and (folder / "calls.png").stat().st_size
    assert np.nanmin(calls.to_numpy()) >= 0 and np.nanmax(calls.to_numpy()) <= 1  # NaN: no face shows it alone


def test_a_rerun_with_other_data_options_is_refused(experiment) -> None:  # noqa: ANN001
    from unveil.errors import UnveilError

    folder, config, _ = experiment
    with pytest.raises(UnveilError, match=r"\(labelled 15 -> 16\); give another --out"):
        run_face_augmentation(config.model_copy(update={"labelled": 16}), folder, progress=False)


def test_the_photo_pool_without_photos_is_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "unveil", "experiment", "augmentation-faces", "-o",
                             str(tmp_path / "x"), "--seeds", "1"], capture_output=True, text=True)
    assert result.returncode == 2 and "needs --photos" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
