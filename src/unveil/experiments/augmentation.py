"""``unveil experiment augmentation``: seed 002's question on its MNIST-grid toy set. With few AU labels and a
built-in correlation (digit 3 nearly always joins digit 2), which way of training an AU classifier detects each
"AU" best on uncorrelated test images, and least often where it is absent?

Strategies (each repeated with several seeds, the data fixed): ``supervised`` (the labelled grids only),
``upsampling`` (plus ``extra`` x as many grids drawn again, with replacement, from the labelled ones) and
``pseudo-labels`` (the supervised model of the same seed labels ``extra`` x as many unlabelled grids, presence at
probability 0.5; a new model learns from both). The classifier is the ``seed002`` preset (the seed's table 1: MSE,
RAdam, lr 1e-3, batch 100, up to 1,000 epochs, early stopping with patience 20 on the validation grids; the best
epoch is scored). The seed's network is not given; unveil's small CNN (``width``) stands in. Scores on the
uncorrelated test set: F1 and false discovery rate per digit, their means, and the FDR of digits 2 and 3 (the
correlated pair).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from unveil.config import Config
from unveil.data.datasets import Augment, LabelledDataset
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.metrics.classification import f1, fdr
from unveil.synth.mnist_grid import LABELS, GridConfig, write_grid_set

Strategy = Literal["supervised", "upsampling", "pseudo-labels"]

#: The seed's tables 2-13 (mean over five runs): (F1 %, FDR %) by (labelled grids, noise, strategy).
SEED_TABLES: dict[tuple[int, str, str], tuple[float, float]] = {
    (3000, "medium", "supervised"): (64.70, 7.76), (3000, "hard", "supervised"): (46.42, 23.59),
    (30000, "medium", "supervised"): (84.82, 2.15), (30000, "hard", "supervised"): (65.01, 11.46),
    (3000, "medium", "pseudo-labels"): (64.22, 4.64), (3000, "hard", "pseudo-labels"): (45.45, 24.88),
    (30000, "medium", "pseudo-labels"): (84.85, 1.77), (30000, "hard", "pseudo-labels"): (64.64, 10.36),
    (3000, "medium", "upsampling"): (60.68, 10.11), (3000, "hard", "upsampling"): (41.18, 28.15),
    (30000, "medium", "upsampling"): (80.2, 2.26), (30000, "hard", "upsampling"): (61.8, 12.41),
}


class AugmentationConfig(Config):
    """Options of ``unveil experiment augmentation``."""

    sizes: list[int] = Field(default_factory=lambda: [3000], description="Labelled training grids (3000, 30000).")
    noise: list[Literal["none", "medium", "hard"]] = Field(default_factory=lambda: ["medium", "hard"])
    clip: bool = Field(default=False, description="Clip noisy pixels to [0, 1] (see GridConfig.clip).")
    strategies: list[Strategy] = Field(default_factory=lambda: ["supervised", "upsampling", "pseudo-labels"])
    seeds: int = Field(default=5, ge=1, description="Runs per strategy (seeds 0..N-1; the data stay the same).")
    extra: int = Field(default=3, ge=1, description="Up-sampled or pseudo-labelled grids per labelled one (the "
                                                   "seed: 9k for 3k).")
    val_fraction: float = Field(default=0.1, gt=0, lt=1, description="Validation grids, as a share of the labelled.")
    test_per_digit: int = Field(default=1000, ge=1)
    width: int = Field(default=16, ge=4, description="Channels of the small CNN's first stage.")
    max_epochs: int = Field(default=1000, ge=1)
    patience: int = Field(default=20, ge=1)
    batch_size: int = Field(default=100, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mnist: str | None = None


def grid_folder(out: Path, size: int, noise: str, config: AugmentationConfig, progress: bool) -> Path:
    """The grid set of one size and noise level (with the unlabelled pool, whichever strategies this run has),
    written once (seed 0) and reused by every run."""
    folder = out / f"grid-{size}-{noise}{'-clipped' if config.clip else ''}"
    if not (folder / "samples.parquet").is_file():
        write_grid_set(folder, GridConfig(train=size, val=max(1, round(size * config.val_fraction)),
                                          unlabelled=size * config.extra, test_per_digit=config.test_per_digit,
                                          noise=noise, clip=config.clip, mnist=config.mnist), progress=progress)
    return folder


def train_config(config: AugmentationConfig, seed: int):  # noqa: ANN201 - a TrainConfig
    """The classifier's ``seed002`` preset (the seed's table 1) with this experiment's options."""
    from unveil.train.config import resolve_train_config

    return resolve_train_config("classifier", preset="seed002",
                                flags={"n_epochs": config.max_epochs, "patience": config.patience,
                                       "batch_size": config.batch_size, "seed": seed, "device": config.device,
                                       "save_epoch_freq": 100_000, "n_samples": 1},
                                model_flags={"width": config.width, "lr": config.lr, "aus": list(LABELS)})


@torch.no_grad()
def predict(checkpoint: Path, rows: pd.DataFrame, root: Path, device: str = "auto", batch: int = 500) -> np.ndarray:
    """The classifier's presence probabilities ``(n, 9)`` for ``rows`` (each with its fixed pixel noise)."""
    from unveil.devices import select_device
    from unveil.methods.classifier import ImageModel
    from unveil.train.checkpoint import read_checkpoint

    model = ImageModel(read_checkpoint(checkpoint), select_device(device))
    if model.aus != list(LABELS):
        raise UnveilError(f"{checkpoint} predicts {', '.join(model.aus)}, not the grid's {', '.join(LABELS)}.")
    data = LabelledDataset(root, rows, [], Augment(96, 96, False, train=False))
    out = []
    for start in range(0, len(data), batch):
        x = torch.stack([data[i]["image"] for i in range(start, min(start + batch, len(data)))])
        out.append(torch.sigmoid(model.net(x.to(model.device))["au_logits"].float()).cpu().numpy())
    return np.concatenate(out)


def scores(truth: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """F1 and FDR (percent) per digit at probability 0.5, their means, and the FDR of the correlated 2 and 3."""
    predicted = probability >= 0.5
    f, d = f1(truth, predicted), fdr(truth, predicted)

    def mean(values: np.ndarray) -> float:  # over the defined ones (FDR is undefined for a digit never detected)
        return 100 * float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")

    result = {"F1": mean(f), "FDR": mean(d), "FDR_2_3": mean(d[1:3])}
    result.update({f"F1_{c}": 100 * float(v) for c, v in zip(LABELS, f, strict=True)})
    result.update({f"FDR_{c}": 100 * float(v) for c, v in zip(LABELS, d, strict=True)})
    return result


def training_rows(table: pd.DataFrame, strategy: Strategy, seed: int, extra: int, folder: Path, runs: Path,
                  device: str) -> pd.DataFrame:
    """The rows one strategy learns from: labelled train and val rows, plus its extra training rows."""
    labelled = table[table["split"].isin(["train", "val"])]
    train = table[table["split"] == "train"]
    if strategy == "supervised":
        return labelled
    if strategy == "upsampling":
        rng = np.random.default_rng(seed)
        again = train.iloc[rng.integers(0, len(train), extra * len(train))]
        return pd.concat([labelled, again], ignore_index=True)
    pool = table[table["split"] == "unlabelled"].iloc[:extra * len(train)]
    if len(pool) < extra * len(train):
        raise UnveilError(f"{folder} has {len(pool)} unlabelled grids; pseudo-labels need {extra * len(train)}.")
    supervised = runs / f"supervised-s{seed}" / "checkpoints" / "best.safetensors"
    guessed = predict(supervised, pool, folder, device) >= 0.5
    pool = pool.assign(split="train", **{c: guessed[:, i].astype(float) for i, c in enumerate(LABELS)})
    return pd.concat([labelled, pool], ignore_index=True)


def run_augmentation(config: AugmentationConfig, out: str | os.PathLike[str], progress: bool = True
                     ) -> pd.DataFrame:
    """Every (size, noise, strategy, seed) run, each skipped when its scores exist (a rerun continues); one row
    of scores per run, also written to OUT/results.csv, and OUT/table.md (means and spreads beside the seed's)."""
    from unveil.train.loop import train

    out = ensure_dir(out)
    order = sorted(config.strategies, key=lambda s: s == "pseudo-labels")  # pseudo-labels use supervised's model
    if "pseudo-labels" in order and "supervised" not in order:
        order.insert(0, "supervised")
    results = []
    for size in config.sizes:
        for noise in config.noise:
            folder = grid_folder(out, size, noise, config, progress)
            table = pd.read_parquet(folder / "samples.parquet")
            test = table[table["split"] == "test"]
            runs = folder / "runs"
            for strategy in order:
                for seed in range(config.seeds):
                    run = runs / f"{strategy}-s{seed}"
                    done = run / "scores.json"
                    if not done.is_file():
                        rows = training_rows(table, strategy, seed, config.extra, folder, runs, config.device)
                        samples = folder / f"samples-{strategy}-s{seed}.parquet"
                        with atomic_path(samples) as tmp:
                            rows.to_parquet(tmp, index=False)
                        result = train(samples, run, train_config(config, seed), progress=progress)
                        probability = predict(run / "checkpoints" / "best.safetensors", test, folder, config.device)
                        row = {"epochs": result.epochs, **scores(test[list(LABELS)].to_numpy(), probability)}
                        write_text_atomic(done, json.dumps(row, indent=1))
                        samples.unlink()
                    row = json.loads(done.read_text())
                    if strategy in config.strategies:
                        results.append({"labelled": size, "noise": noise + (" clipped" if config.clip else ""),
                                        "strategy": strategy, "seed": seed, **row})
    frame = pd.DataFrame(results)
    with atomic_path(out / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)
    write_text_atomic(out / "table.md", table_markdown(frame))
    return frame


def table_markdown(frame: pd.DataFrame) -> str:
    """Mean and standard deviation over seeds per (labelled, noise, strategy), beside the seed's numbers."""
    lines = ["| labelled | noise | strategy | runs | F1 % | FDR % | FDR 2-3 % | epochs | seed 002 F1 / FDR % |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for (size, noise, strategy), group in frame.groupby(["labelled", "noise", "strategy"], sort=False):
        seed = SEED_TABLES.get((int(size), str(noise).split()[0], str(strategy)))
        cells = [f"{group[k].mean():.1f} ± {group[k].std(ddof=1) if len(group) > 1 else 0:.1f}"
                 for k in ("F1", "FDR", "FDR_2_3")]
        lines.append(f"| {size:,} | {noise} | {strategy} | {len(group)} | {' | '.join(cells)} | "
                     f"{group['epochs'].mean():.0f} | {f'{seed[0]:.1f} / {seed[1]:.1f}' if seed else '-'} |")
    return "\n".join(lines) + "\n"
