"""``unveil experiment augmentation``: seed 002's question on its MNIST-grid toy set. With few AU labels and a
built-in correlation (digit 3 nearly always joins digit 2), which way of training an AU classifier detects each
"AU" best on uncorrelated test images, and least often where it is absent?

Strategies (each repeated with several seeds, the data fixed): ``supervised`` (the labelled grids only),
``upsampling`` (plus ``extra`` x as many grids drawn again, with replacement, from the labelled ones),
``pseudo-labels`` (the supervised model of the same seed labels ``extra`` x as many unlabelled grids, presence at
probability 0.5; a new model learns from both) and ``manipulator`` (the seed's EM augmentation: an Expression
Manipulator learns from the labelled and the pseudo-labelled grids, then turns each of those pseudo-labelled
grids into one showing one digit alone, the target one-hot and the change ``target - source``; a new model
learns from the labelled grids and these decorrelated ones). The classifier is the ``seed002`` preset (the seed's
table 1: MSE, RAdam, lr 1e-3, batch 100, up to 1,000 epochs, early stopping with patience 20 on the validation
grids; the best epoch is scored). The seed's network is not given; unveil's small CNN (``width``) stands in.
Scores on the uncorrelated test set: F1 and false discovery rate per digit, their means, and the FDR of digits 2
and 3 (the correlated pair).

The strategies themselves (:func:`run_strategies`) know a data set only through its :class:`LabelSpace`;
``augmentation_faces`` runs them on faces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from unveil.config import Config
from unveil.data.datasets import Augment, LabelledDataset, load_image
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_image_atomic, write_text_atomic
from unveil.metrics.classification import f1, fdr
from unveil.synth.mnist_grid import LABELS, GridConfig, write_grid_set

Strategy = Literal["supervised", "upsampling", "pseudo-labels", "manipulator"]


@dataclass(frozen=True)
class LabelSpace:
    """What the strategies need to know of a data set: its label columns, the classifier's image side, the level
    at which a label or an output counts as present, whether pseudo-labels are presences (0/1) or the supervised
    model's own outputs (intensities), the correlated pair whose FDR is reported, and the manipulator's edits:
    one label at ``activation``, from every pooled image or only from neutral ones (all labels below
    ``neutral_below``)."""

    columns: tuple[str, ...]
    size: int
    present_at: float = 0.5
    binary: bool = True
    pair: tuple[str, str] = ("AU2", "AU3")
    activation: float = 1.0
    neutral_only: bool = False
    neutral_below: float = 0.05


#: The MNIST grid: nine presences at 96 px; digits 2 and 3 are correlated; the seed's edits show one digit.
GRID = LabelSpace(tuple(LABELS), 96)

#: The seed's tables 2-13 (mean over five runs): (F1 %, FDR %) by (labelled grids, noise, strategy).
SEED_TABLES: dict[tuple[int, str, str], tuple[float, float]] = {
    (3000, "medium", "supervised"): (64.70, 7.76), (3000, "hard", "supervised"): (46.42, 23.59),
    (30000, "medium", "supervised"): (84.82, 2.15), (30000, "hard", "supervised"): (65.01, 11.46),
    (3000, "medium", "pseudo-labels"): (64.22, 4.64), (3000, "hard", "pseudo-labels"): (45.45, 24.88),
    (30000, "medium", "pseudo-labels"): (84.85, 1.77), (30000, "hard", "pseudo-labels"): (64.64, 10.36),
    (3000, "medium", "upsampling"): (60.68, 10.11), (3000, "hard", "upsampling"): (41.18, 28.15),
    (30000, "medium", "upsampling"): (80.2, 2.26), (30000, "hard", "upsampling"): (61.8, 12.41),
    (3000, "medium", "manipulator"): (65.07, 6.10), (3000, "hard", "manipulator"): (44.52, 24.84),
    (30000, "medium", "manipulator"): (83.59, 3.09), (30000, "hard", "manipulator"): (58.84, 12.75),
}


class StrategyOptions(Config):
    """Options shared by the strategies on any data set: the runs, the seed's classifier, the manipulator."""

    strategies: list[Strategy] = Field(default_factory=lambda: ["supervised", "upsampling", "pseudo-labels",
                                                                  "manipulator"])
    seeds: int = Field(default=5, ge=1, description="Runs per strategy (seeds 0..N-1; the data stay the same).")
    extra: int = Field(default=3, ge=1, description="Up-sampled, pseudo-labelled or edited images per labelled one "
                                                   "(the seed: 9k for 3k).")
    width: int = Field(default=16, ge=4, description="Channels of the small CNN's first stage.")
    max_epochs: int = Field(default=1000, ge=1)
    patience: int = Field(default=20, ge=1)
    batch_size: int = Field(default=100, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    em_width: int = Field(default=16, ge=4, description="The manipulator's generator and critic width (ngf = ndf; "
                                                        "the paper's 64 needs a GPU).")
    em_epochs: int = Field(default=30, ge=1, description="Manipulator epochs at the constant rate (the seed: 30).")
    em_epochs_decay: int = Field(default=20, ge=0, description="Then epochs of linear decay (the seed: 20).")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class AugmentationConfig(StrategyOptions):
    """Options of ``unveil experiment augmentation`` (the MNIST grid)."""

    sizes: list[int] = Field(default_factory=lambda: [3000], description="Labelled training grids (3000, 30000).")
    noise: list[Literal["none", "medium", "hard"]] = Field(default_factory=lambda: ["medium", "hard"])
    clip: bool = Field(default=False, description="Clip noisy pixels to [0, 1] (see GridConfig.clip).")
    val_fraction: float = Field(default=0.1, gt=0, lt=1, description="Validation grids, as a share of the labelled.")
    test_per_digit: int = Field(default=1000, ge=1)
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


def train_config(config: StrategyOptions, seed: int, space: LabelSpace | None = None):  # noqa: ANN201 - TrainConfig
    """The classifier's ``seed002`` preset (the seed's table 1) with this experiment's options."""
    from unveil.train.config import resolve_train_config

    space = space or GRID
    return resolve_train_config("classifier", preset="seed002",
                                flags={"n_epochs": config.max_epochs, "patience": config.patience,
                                       "batch_size": config.batch_size, "seed": seed, "device": config.device,
                                       "save_epoch_freq": 100_000, "n_samples": 1, "load_size": space.size,
                                       "crop_size": space.size},
                                model_flags={"width": config.width, "lr": config.lr, "aus": list(space.columns)})


@torch.no_grad()
def predict(checkpoint: Path, rows: pd.DataFrame, root: Path, device: str = "auto", batch: int = 500,
            space: LabelSpace = GRID) -> np.ndarray:
    """The classifier's outputs ``(n, labels)`` in [0, 1] for ``rows`` (each with its fixed pixel noise, if any)."""
    from unveil.devices import select_device
    from unveil.methods.classifier import ImageModel
    from unveil.train.checkpoint import read_checkpoint

    model = ImageModel(read_checkpoint(checkpoint), select_device(device))
    if model.aus != list(space.columns):
        raise UnveilError(f"{checkpoint} predicts {', '.join(model.aus)}, not {', '.join(space.columns)}.")
    data = LabelledDataset(root, rows, [], Augment(space.size, space.size, False, train=False))
    out = []
    for start in range(0, len(data), batch):
        x = torch.stack([data[i]["image"] for i in range(start, min(start + batch, len(data)))])
        out.append(torch.sigmoid(model.net(x.to(model.device))["au_logits"].float()).cpu().numpy())
    return np.concatenate(out)


def scores(truth: np.ndarray, probability: np.ndarray, space: LabelSpace = GRID) -> dict[str, float]:
    """F1 and FDR (percent) per label, truth and output both counted present at ``space.present_at``, their means,
    and the mean FDR of the correlated pair (``FDR_pair``)."""
    present = np.asarray(truth) >= space.present_at
    predicted = probability >= space.present_at
    f, d = f1(present, predicted), fdr(present, predicted)

    def mean(values: np.ndarray) -> float:  # over the defined ones (FDR is undefined for a digit never detected)
        return 100 * float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")

    pair = [space.columns.index(c) for c in space.pair]
    result = {"F1": mean(f), "FDR": mean(d), "FDR_pair": mean(d[pair])}
    result.update({f"F1_{c}": 100 * float(v) for c, v in zip(space.columns, f, strict=True)})
    result.update({f"FDR_{c}": 100 * float(v) for c, v in zip(space.columns, d, strict=True)})
    return result


def call_rates(truth: np.ndarray, outputs: np.ndarray, space: LabelSpace) -> pd.DataFrame:
    """How often each label is called (output at or above ``present_at``) on the test images that show exactly one
    label (rows: the label shown) or none (row ``none``): the diagonal is each label's recall, the rest the
    correlations the classifier learnt (a 0.8 at AU12's row, AU06's column: a lone smile read as a cheek raise)."""
    present = np.asarray(truth) >= space.present_at
    called = np.asarray(outputs) >= space.present_at
    rows = {}
    for k, label in enumerate(space.columns):
        alone = present[:, k] & (present.sum(axis=1) == 1)
        rows[label] = called[alone].mean(axis=0) if alone.any() else np.full(len(space.columns), np.nan)
    nothing = ~present.any(axis=1)
    rows["none"] = called[nothing].mean(axis=0) if nothing.any() else np.full(len(space.columns), np.nan)
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(space.columns))


def plot_call_rates(rates: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """One heat map of :func:`call_rates` per strategy, side by side (PNG, written atomically)."""
    from unveil.evaluate.figures import _pyplot, _save

    plt = _pyplot()
    figure, axes = plt.subplots(1, len(rates), figsize=(4.6 * len(rates) + 1.0, 5.0), squeeze=False,
                                layout="constrained")
    for axis, (name, frame) in zip(axes[0], rates.items(), strict=True):
        image = axis.imshow(frame.to_numpy(float), vmin=0, vmax=1, cmap="magma")
        axis.set_xticks(range(frame.shape[1]), [c.removeprefix("AU") for c in frame.columns], fontsize=6, rotation=90)
        axis.set_yticks(range(frame.shape[0]), [r.removeprefix("AU") for r in frame.index], fontsize=6)
        axis.set_xlabel("AU called", fontsize=8)
        axis.set_ylabel("AU shown alone", fontsize=8)
        axis.set_title(name, fontsize=9)
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.7, label="share of the test images")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def pseudo_labelled(table: pd.DataFrame, seed: int, extra: int, folder: Path, runs: Path, device: str,
                    space: LabelSpace = GRID) -> pd.DataFrame:
    """``extra`` x as many unlabelled images as labelled training ones, labelled by the supervised model of
    ``seed`` (presence at ``present_at`` for binary labels, its outputs for intensities) and moved to the training
    split."""
    train = table[table["split"] == "train"]
    pool = table[table["split"] == "unlabelled"].iloc[:extra * len(train)]
    if len(pool) < extra * len(train):
        raise UnveilError(f"{folder} has {len(pool)} unlabelled images; this strategy needs {extra * len(train)} "
                          "(fewer labelled ones or a smaller --extra).")
    supervised = runs / f"supervised-s{seed}" / "checkpoints" / "best.safetensors"
    guessed = predict(supervised, pool, folder, device, space=space)
    if space.binary:
        guessed = (guessed >= space.present_at).astype(float)
    return pool.assign(split="train", **{c: guessed[:, i] for i, c in enumerate(space.columns)})


def training_rows(table: pd.DataFrame, strategy: Strategy, seed: int, extra: int, folder: Path, runs: Path,
                  device: str, config: StrategyOptions | None = None, progress: bool = False,
                  space: LabelSpace = GRID) -> pd.DataFrame:
    """The rows one strategy learns from: labelled train and val rows, plus its extra training rows (the
    manipulator's options come from ``config``)."""
    labelled = table[table["split"].isin(["train", "val"])]
    train = table[table["split"] == "train"]
    if strategy == "supervised":
        return labelled
    if strategy == "upsampling":
        rng = np.random.default_rng(seed)
        again = train.iloc[rng.integers(0, len(train), extra * len(train))]
        return pd.concat([labelled, again], ignore_index=True)
    pool = pseudo_labelled(table, seed, extra, folder, runs, device, space)
    if strategy == "manipulator":
        config = config or StrategyOptions(device=device)  # type: ignore[arg-type]
        pool = manipulated(labelled, pool, seed, folder, runs, config, progress, space)
    return pd.concat([labelled, pool], ignore_index=True)


NOISE_COLUMNS = ["noise_mean", "noise_std", "noise_seed", "noise_clip"]


def manipulated(labelled: pd.DataFrame, pool: pd.DataFrame, seed: int, folder: Path, runs: Path,
                config: StrategyOptions, progress: bool = False, space: LabelSpace = GRID) -> pd.DataFrame:
    """The seed's EM augmentation: an Expression Manipulator (run ``em-s{seed}``, trained once) learns from
    the labelled and the pseudo-labelled images; then as many edits as the pool holds, edit ``i`` showing label
    ``i mod n`` alone at ``space.activation`` (target one-hot, change = target - the source's labels), labelled with
    that target. Sources: every pooled image in turn (the grid: "activated only 1 number per time"), or only the
    neutral ones of the labelled and pooled images (faces: "we found the neutral images ... activating one AU per
    time"). The manipulator learns from noise-free pixels and each edit gets a fresh fixed noise draw of the set's
    level (grids), so that the classifier meets edits under the test's own noise (a tanh generator cannot draw
    unclipped noise)."""
    from unveil.devices import select_device
    from unveil.methods.manipulator import ManipulatorModel
    from unveil.train.checkpoint import read_checkpoint
    from unveil.train.config import resolve_train_config
    from unveil.train.loop import train

    columns = list(space.columns)
    run = runs / f"em-s{seed}"  # (the classifier of this strategy is manipulator-s{seed})
    samples = folder / f"samples-em-s{seed}.parquet"
    with atomic_path(samples) as tmp:
        pd.concat([labelled, pool], ignore_index=True).drop(columns=NOISE_COLUMNS, errors="ignore").to_parquet(tmp)
    em = resolve_train_config("manipulator", preset="cpu", flags={
        "n_epochs": config.em_epochs, "n_epochs_decay": config.em_epochs_decay, "seed": seed,
        "device": config.device, "save_epoch_freq": 100_000, "n_samples": 4, "load_size": space.size,
        "crop_size": space.size}, model_flags={"ngf": config.em_width, "ndf": config.em_width, "aus": columns,
                                               "sample_activation": space.activation})
    train(samples, run, em, resume=True, progress=progress)
    samples.unlink()
    model = ManipulatorModel(read_checkpoint(run / "checkpoints" / "latest.safetensors"), select_device(config.device))
    sources = pool
    if space.neutral_only:
        both = pd.concat([labelled[labelled["split"] == "train"], pool], ignore_index=True)
        sources = both[both[columns].fillna(1.0).max(axis=1) < space.neutral_below]
        if sources.empty:
            raise UnveilError(f"No labelled or pseudo-labelled face is neutral (every label below "
                              f"{space.neutral_below:g}); the manipulator strategy edits neutral faces.")
        sources = sources.iloc[np.arange(len(pool)) % len(sources)].assign(split="train")
    targets = space.activation * np.eye(len(columns), dtype=np.float32)[np.arange(len(sources)) % len(columns)]
    changes = targets - sources[columns].to_numpy(np.float32)
    out = ensure_dir(folder / f"manipulated-s{seed}")
    names = []
    for start in range(0, len(sources), 100):
        images = [load_image(folder / p) for p in sources["image"].iloc[start:start + 100]]
        for i, edited in enumerate(model(images, changes[start:start + 100]), start):
            name = f"{out.name}/{i:06d}.png"
            write_image_atomic(folder / name, edited)
            names.append(name)
    rows = sources.assign(image=names, **{c: targets[:, k].astype(float) for k, c in enumerate(columns)})
    # the source's true labels (truth_*) no longer describe the edit, whose only label is its target
    rows[[c for c in rows.columns if c.startswith("truth_")]] = np.nan
    if "noise_seed" in rows.columns:  # fresh draws, apart from every grid's own (seed x 10^7 + row)
        rows["noise_seed"] = 2**40 + seed * 10_000_000 + np.arange(len(rows))
    return rows.reset_index(drop=True)


def strategy_order(strategies: list[Strategy]) -> list[Strategy]:
    """``strategies`` with supervised first, added when pseudo-labels or the manipulator need its model."""
    order = sorted(strategies, key=lambda s: s in ("pseudo-labels", "manipulator"))
    if {"pseudo-labels", "manipulator"} & set(order) and "supervised" not in order:
        order.insert(0, "supervised")
    return order


def run_strategies(table: pd.DataFrame, folder: Path, config: StrategyOptions, space: LabelSpace,
                   progress: bool = True) -> list[dict]:
    """Every (strategy, seed) run on one data set (``table``'s images under ``folder``; splits train, val,
    unlabelled and test), each skipped when its ``scores.json`` exists (a rerun continues); one row of scores
    per run of ``config.strategies``: on the test rows, and (``*_val``) on the validation rows, which carry the
    training data's correlations, so that the two side by side show what the correlations cost."""
    from unveil.train.loop import train

    test, val = table[table["split"] == "test"], table[table["split"] == "val"]
    runs = folder / "runs"

    def scored(run: Path, rows: pd.DataFrame) -> dict[str, float]:
        probability = predict(run / "checkpoints" / "best.safetensors", rows, folder, config.device, space=space)
        return scores(rows[list(space.columns)].to_numpy(), probability, space)

    results = []
    for strategy in strategy_order(config.strategies):
        for seed in range(config.seeds):
            run = runs / f"{strategy}-s{seed}"
            done = run / "scores.json"
            stored = json.loads(done.read_text()) if done.is_file() else None
            if stored is None:
                rows = training_rows(table, strategy, seed, config.extra, folder, runs, config.device, config,
                                     progress, space)
                samples = folder / f"samples-{strategy}-s{seed}.parquet"
                with atomic_path(samples) as tmp:
                    rows.to_parquet(tmp, index=False)
                result = train(samples, run, train_config(config, seed, space), progress=progress)
                samples.unlink()
                row = {"epochs": result.epochs, **scored(run, test)}
            else:
                row = dict(stored)
            if "FDR_2_3" in row:  # scores written before the pair had a general name
                row["FDR_pair"] = row.pop("FDR_2_3")
            if "F1_val" not in row and len(val):  # the same model on the correlated validation images
                found = scored(run, val)
                row.update({f"{k}_val": found[k] for k in ("F1", "FDR", "FDR_pair")})
            if row != stored:
                write_text_atomic(done, json.dumps(row, indent=1))
            if strategy in config.strategies:
                results.append({"strategy": strategy, "seed": seed, **row})
    return results


def run_augmentation(config: AugmentationConfig, out: str | os.PathLike[str], progress: bool = True
                     ) -> pd.DataFrame:
    """Every (size, noise, strategy, seed) run, each skipped when its scores exist (a rerun continues); one row
    of scores per run, also written to OUT/results.csv, and OUT/table.md (means and spreads beside the seed's)."""
    out = ensure_dir(out)
    results = []
    for size in config.sizes:
        for noise in config.noise:
            folder = grid_folder(out, size, noise, config, progress)
            table = pd.read_parquet(folder / "samples.parquet")
            label = {"labelled": size, "noise": noise + (" clipped" if config.clip else "")}
            results += [{**label, **row} for row in run_strategies(table, folder, config, GRID, progress)]
    frame = pd.DataFrame(results)
    with atomic_path(out / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)
    write_text_atomic(out / "table.md", table_markdown(frame))
    return frame


def table_markdown(frame: pd.DataFrame, pair: str = "FDR 2-3 %", second: str = "noise",
                   reference: dict[tuple[int, str, str], tuple[float, float]] | None = None) -> str:
    """Mean and standard deviation over seeds per (labelled, ``second``, strategy), beside the seed's numbers
    (``reference``, by (labelled, first word of ``second``, strategy); by default its grid tables)."""
    reference = SEED_TABLES if reference is None else reference
    lines = [f"| labelled | {second} | strategy | runs | F1 % | FDR % | {pair} | epochs | validation F1 / FDR % "
             "| seed 002 F1 / FDR % |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (size, noise, strategy), group in frame.groupby(["labelled", second, "strategy"], sort=False):
        seed = reference.get((int(size), str(noise).split()[0], str(strategy)))
        cells = [f"{group[k].mean():.1f} ± {group[k].std(ddof=1) if len(group) > 1 else 0:.1f}"
                 for k in ("F1", "FDR", "FDR_pair")]
        correlated = (f"{group['F1_val'].mean():.1f} / {group['FDR_val'].mean():.1f}" if "F1_val" in group
                      else "-")
        lines.append(f"| {size:,} | {noise} | {strategy} | {len(group)} | {' | '.join(cells)} | "
                     f"{group['epochs'].mean():.0f} | {correlated} | "
                     f"{f'{seed[0]:.1f} / {seed[1]:.1f}' if seed else '-'} |")
    return "\n".join(lines) + "\n"
