"""Seed 002's MNIST grid (Algorithm 1 against its closed-form rates), its fixed pixel noise, the loop's early
stopping, and the augmentation experiment's strategies and scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from unveil.data.datasets import Augment, LabelledDataset
from unveil.experiments.augmentation import AugmentationConfig, run_augmentation, scores, training_rows
from unveil.synth.mnist_grid import LABELS, GridConfig, draw_grids, grid_labels, one_digit_labels, write_grid_set


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MNIST's four arrays with 6 images per class, each filled with a value that names its class and split."""
    classes = np.repeat(np.arange(10, dtype=np.uint8), 6)
    train = np.broadcast_to((classes * 20 + 10)[:, None, None], (60, 28, 28)).astype(np.uint8)
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    np.savez(path, x_train=train, y_train=classes, x_test=train + 5, y_test=classes)
    return path


def test_algorithm_1_gives_its_closed_form_rates() -> None:
    """P(d) = 0.2 for d outside {2, 3}; P(2) = P(3) = 0.2 + 0.8 * 0.2 * 0.7 = 0.312; P(2 and 3) = 0.04 + 2 * 0.16 *
    0.7 = 0.264, so P(3 | 2) = 0.846."""
    labels = grid_labels(400_000, np.random.default_rng(1))
    rates = labels.mean(0)
    assert np.allclose(rates[[0, 3, 4, 5, 6, 7, 8]], 0.2, atol=0.003)
    assert np.allclose(rates[[1, 2]], 0.312, atol=0.003)
    both = (labels[:, 1] & labels[:, 2]).mean()
    assert both == pytest.approx(0.264, abs=0.003) and both / rates[1] == pytest.approx(0.846, abs=0.005)
    assert np.array_equal(one_digit_labels(2), np.repeat(np.eye(9, dtype=np.uint8), 2, axis=0))


def test_each_present_digit_sits_in_its_own_cell(fake_mnist: Path) -> None:
    data = np.load(fake_mnist)
    labels = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 1], [0, 1, 1, 0, 1, 0, 0, 0, 0]], np.uint8)
    grids = draw_grids(labels, data["x_train"], data["y_train"], np.random.default_rng(0))
    assert grids.shape == (2, 96, 96)
    for grid, row in zip(grids, labels, strict=True):
        for d in range(1, 10):
            y, x = (d - 1) // 3 * 32, (d - 1) % 3 * 32
            cell = grid[y:y + 32, x:x + 32]
            expected = d * 20 + 10 if row[d - 1] else 0
            assert np.all(cell[2:30, 2:30] == expected)  # an image of class d, centred; nothing else
            assert not cell[:2].any() and not cell[:, :2].any()


def test_a_written_grid_set_has_its_splits_labels_and_fixed_noise(fake_mnist: Path, tmp_path: Path) -> None:
    config = GridConfig(train=30, val=6, unlabelled=12, test_per_digit=3, noise="medium", mnist=str(fake_mnist))
    table = pd.read_parquet(write_grid_set(tmp_path / "grid", config, progress=False))
    assert table["split"].value_counts().to_dict() == {"train": 30, "unlabelled": 12, "test": 27, "val": 6}
    unlabelled = table[table["split"] == "unlabelled"]
    assert unlabelled[list(LABELS)].isna().all().all()  # withheld; the truth stays beside them
    assert unlabelled[[f"truth_{c}" for c in LABELS]].notna().all().all()
    test = table[table["split"] == "test"]
    assert (test[list(LABELS)].sum(axis=1) == 1).all() and (test[list(LABELS)].sum() == 3).all()
    test_image = (tmp_path / "grid" / test["image"].iloc[0])
    assert test_image.is_file()  # noise-free PNG; test digits come from MNIST's test split (value + 5)
    import cv2

    assert set(np.unique(cv2.imread(str(test_image), cv2.IMREAD_GRAYSCALE))) == {0, 35}  # digit 1 of x_test

    data = LabelledDataset(tmp_path / "grid", table, list(LABELS), Augment(96, 96, False, train=False))
    clean = LabelledDataset(tmp_path / "grid", table.drop(columns=["noise_mean"]), list(LABELS),
                            Augment(96, 96, False, train=False))
    first, again, other = data[0]["image"], data[0]["image"], data[1]["image"]
    assert torch.equal(first, again)  # one fixed draw per image, every epoch
    noise = (first - clean[0]["image"]) / 2  # back to the [0, 1] pixel scale
    assert float(noise.mean()) == pytest.approx(0.5, abs=0.03) and float(noise.std()) == pytest.approx(1.0, abs=0.03)
    assert torch.allclose(noise[0], noise[1])  # grey noise, the same in the three channels
    assert not torch.equal((other - clean[1]["image"]), first - clean[0]["image"])
    clipped = LabelledDataset(tmp_path / "grid", table.assign(noise_clip=True), list(LABELS),
                              Augment(96, 96, False, train=False))
    assert torch.equal(clipped[0]["image"], first.clamp(-1, 1))  # the same draw, cut to the pixel range


def test_scores_are_f1_and_fdr_of_the_present_digits() -> None:
    truth = np.repeat(np.eye(9, dtype=np.uint8), 2, axis=0)
    probability = truth.astype(float) * 0.9
    probability[2:4, 2] = 0.7  # every 2 is also called a 3: digit 3 has 2 TP and 2 FP
    result = scores(truth, probability)
    assert result["F1_AU3"] == pytest.approx(100 * 4 / 6)  # 2TP / (2TP + FP + FN)
    assert result["FDR_AU3"] == pytest.approx(50.0) and result["FDR_AU2"] == 0.0
    assert result["FDR_pair"] == pytest.approx(25.0) and result["FDR"] == pytest.approx(50 / 9)
    assert result["F1"] == pytest.approx(100 * (8 + 4 / 6) / 9)


def test_early_stopping_keeps_the_best_epoch_and_a_resume_does_not_train_on(fake_mnist: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from unveil.experiments.augmentation import train_config
    from unveil.methods.classifier import ClassifierMethod
    from unveil.train.checkpoint import read_checkpoint
    from unveil.train.loop import train

    write_grid_set(tmp_path / "grid", GridConfig(train=20, val=10, unlabelled=0, test_per_digit=1,
                                                 mnist=str(fake_mnist)), progress=False)
    script = iter([3.0, 2.0, 2.5, 2.0, 2.7, 1.0, 0.5])  # best at epoch 2 (the first of equals), then 2 worse
    monkeypatch.setattr(ClassifierMethod, "validate", lambda self, batches: {"loss": next(script)})
    config = train_config(AugmentationConfig(max_epochs=50, patience=3, batch_size=10, width=4, device="cpu"), 0)
    result = train(tmp_path / "grid", tmp_path / "run", config, progress=False)
    assert result.epochs == 5 and result.complete  # epochs 3, 4 and 5 brought nothing better than epoch 2
    best = read_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert len(best.meta["history"]) == 2
    again = train(tmp_path / "grid", tmp_path / "run", config, resume=True, progress=False)
    assert again.epochs == 5  # the history says patience is spent: no sixth epoch


def test_the_experiment_runs_every_strategy_and_a_rerun_continues(fake_mnist: Path, tmp_path: Path) -> None:
    config = AugmentationConfig(sizes=[40], noise=["none"], seeds=2, extra=2, test_per_digit=4, width=4,
                                max_epochs=3, patience=2, batch_size=20, device="cpu", mnist=str(fake_mnist),
                                em_width=4, em_epochs=1, em_epochs_decay=0)
    frame = run_augmentation(config, tmp_path / "exp", progress=False)
    assert sorted(frame["strategy"].unique()) == ["manipulator", "pseudo-labels", "supervised", "upsampling"]
    assert len(frame) == 8 and frame["F1"].between(0, 100).all()
    table = (tmp_path / "exp" / "table.md").read_text()
    assert "| 40 | none | pseudo-labels | 2 |" in table
    folder = tmp_path / "exp" / "grid-40-none"
    grid = pd.read_parquet(folder / "samples.parquet")
    pseudo = training_rows(grid, "pseudo-labels", 0, 2, folder, folder / "runs", "cpu")
    assert len(pseudo) == 40 + 4 + 80 and set(np.unique(pseudo[list(LABELS)].to_numpy())) <= {0.0, 1.0}
    upsampled = training_rows(grid, "upsampling", 0, 2, folder, folder / "runs", "cpu")
    extra = upsampled.iloc[44:]
    assert len(extra) == 80 and extra["image"].isin(grid[grid["split"] == "train"]["image"]).all()
    # EM augmentation: pool grid i edited to show digit (i mod 9) alone, labelled one-hot, with a fresh noise draw
    edited = training_rows(grid, "manipulator", 0, 2, folder, folder / "runs", "cpu", config).iloc[44:]
    assert len(edited) == 80 and edited["image"].str.startswith("manipulated-s0/").all()
    assert np.array_equal(edited[list(LABELS)].to_numpy(), np.eye(9)[np.arange(80) % 9])
    assert all((folder / name).is_file() for name in edited["image"])
    assert not set(edited["noise_seed"]) & set(grid["noise_seed"]) and edited["noise_seed"].is_unique
    assert edited[[f"truth_{c}" for c in LABELS]].isna().all().all()  # the source grid's digits are not the edit's
    assert (folder / "runs" / "em-s0" / "checkpoints" / "latest.safetensors").is_file()
    stamp = (folder / "runs" / "upsampling-s1" / "scores.json").stat().st_mtime_ns
    again = run_augmentation(config, tmp_path / "exp", progress=False)
    assert (folder / "runs" / "upsampling-s1" / "scores.json").stat().st_mtime_ns == stamp  # not trained again
    assert again["F1"].tolist() == frame["F1"].tolist()
    assert json.loads((folder / "runs" / "supervised-s0" / "scores.json").read_text())["epochs"] <= 3


def test_bad_grid_input_is_one_sentence(tmp_path: Path) -> None:
    not_mnist = tmp_path / "other.npz"
    np.savez(not_mnist, images=np.zeros((2, 28, 28)))
    for args, message in ((["--mnist", str(tmp_path / "none.npz")], "does not exist"),
                          (["--mnist", str(not_mnist)], "is not an MNIST npz"),
                          (["--noise", "loud"], "input should be 'none', 'medium' or 'hard'")):
        result = subprocess.run([sys.executable, "-m", "unveil", "synth", "mnist-grid", str(tmp_path / "g"), *args],
                                capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
