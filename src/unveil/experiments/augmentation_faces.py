"""``unveil experiment augmentation-faces``: seed 002's AU-classifier strategies on faces (its tables 14-17).

The labelled faces are the synthetic benchmark's normal recordings, with their true AU intensities and the
correlations of real behaviour (AU1 with AU2 in brow raises, surprise and fear; AU6 with AU12 in smiles; AU25 with
AU26 in speech). The test faces are new recordings of the same people showing one AU at a time (the ``single_au``
task), so that a classifier which learnt to call AU2 whenever AU1 is raised is caught, as the grid's one-digit
test catches a 3 called beside a 2. The unlabelled pool is real, as in the seed (it pseudo-labels AffectNet):
the photos of a labelled folder whose emotion label is withheld (the 3,997 of ``../shared/data/faces``), or, with
``pool: benchmark``, the benchmark's other training frames, faces of the same kind as the labelled ones. An AU
counts as present at ``present_at`` of its intensity, in the truth and in the classifier's output alike; the
manipulator strategy edits neutral faces one AU at a time at ``activation`` (the seed's 0.7).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from unveil.errors import UnveilError
from unveil.experiments.augmentation import (LabelSpace, StrategyOptions, call_rates, plot_call_rates, predict,
                                             run_strategies, table_markdown)
from unveil.facs import au_columns
from unveil.files import atomic_path, ensure_dir, write_text_atomic

#: The seed's tables 14-17 on faces (F1 %, FDR %): its 60K labelled faces, AffectNet as the unlabelled pool.
SEED_FACE_TABLES: dict[str, tuple[float, float]] = {
    "supervised": (61.31, 47.75), "pseudo-labels": (63.04, 47.92), "manipulator": (65.34, 46.83)}

TEST_TASK = "single_au"
DATA_NAME = "samples.parquet"
#: The options that make the data; an OUT folder keeps them in data.json and refuses others.
DATA_OPTIONS = ("subjects", "sessions", "frame_size", "fraction", "load_size", "labelled", "pool", "photos",
                "data_seed")


class FaceAugmentationConfig(StrategyOptions):
    """Options of ``unveil experiment augmentation-faces``."""

    subjects: int = Field(default=2, ge=1, le=100, description="Synthetic people (labelled and test faces).")
    sessions: int = Field(default=2, ge=1, le=20, description="Recording sessions per person.")
    frame_size: int = Field(default=128, ge=64, le=512, description="The benchmark's frame side.")
    fraction: float = Field(default=0.5, gt=0, le=1, description="Share of each recording's frames cropped.")
    load_size: int = Field(default=64, ge=32, le=256, description="Side of the face crops the classifier reads.")
    labelled: int = Field(default=750, ge=10, description="Labelled training faces, drawn from the benchmark's "
                                                          "training frames.")
    pool: Literal["photos", "benchmark"] = Field(default="photos", description="The unlabelled pool: real photos "
                                                 "(--photos) or the benchmark's other training frames.")
    photos: str | None = Field(default=None, description="A labelled photo folder (labels.csv); its photos without an "
                                                         "emotion are the unlabelled pool.")
    present_at: float = Field(default=0.3, gt=0, lt=1, description="An AU is present from this intensity on.")
    activation: float = Field(default=0.7, gt=0, le=1, description="The manipulator's one-AU edits (seed 002: 0.7).")
    data_seed: int = Field(default=0, ge=0, description="Seed of the benchmark and of the labelled draw.")


def face_space(columns: list[str], config: FaceAugmentationConfig) -> LabelSpace:
    """The faces' labels: AU intensities at the crop side, present at ``present_at``, AU1-AU2 the reported
    pair (the seed's), edits of neutral faces at ``activation``."""
    return LabelSpace(tuple(columns), config.load_size, present_at=config.present_at, binary=False,
                      pair=("AU01", "AU02"), activation=config.activation, neutral_only=True)


def face_data(out: Path, config: FaceAugmentationConfig, progress: bool = True) -> pd.DataFrame:
    """The experiment's rows (images relative to ``out``), built once: the benchmark with its single-AU task
    (``bench/``), its face crops (``prepared/``), the photos (``photos/``); splits ``train`` (the labelled draw),
    ``val``, ``unlabelled`` (the pool) and ``test`` (every single-AU frame)."""
    from unveil.data.labelled import prepare_labelled_folder
    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.synth import SynthConfig, generate
    from unveil.synth.protocols import PROTOCOLS

    path, options = out / DATA_NAME, {k: getattr(config, k) for k in DATA_OPTIONS}
    if path.is_file():
        made = json.loads((out / "data.json").read_text()) if (out / "data.json").is_file() else {}
        if made != options:
            changed = ", ".join(f"{k} {made.get(k)} -> {v}" for k, v in options.items() if made.get(k) != v)
            raise UnveilError(f"{out} holds faces made with other options ({changed}); give another --out.")
        return pd.read_parquet(path)
    photos = None
    if config.pool == "photos":
        if not config.photos or not (Path(config.photos) / "labels.csv").is_file():
            raise UnveilError("The photo pool needs --photos, a folder with labels.csv (e.g. ../shared/data/faces); "
                              "or choose --pool benchmark.")
        photos = Path(config.photos)
    synth = SynthConfig(seed=config.data_seed, subjects=config.subjects, sessions=config.sessions, normal_takes=1,
                        occluded_takes=0, tasks=[*PROTOCOLS, TEST_TASK], size=config.frame_size)
    manifest = generate(synth, out / "bench", progress=progress)
    prepared = prepare(manifest, out / "prepared", PrepareConfig(load_size=config.load_size, fraction=config.fraction,
                                                                 seed=config.data_seed), progress=progress)
    if prepared.failures:
        raise UnveilError(f"Preparing the benchmark failed for {', '.join(prepared.failures)}.")
    table = prepared.samples.assign(image="prepared/" + prepared.samples["image"])
    table.loc[table["task"] == TEST_TASK, "split"] = "test"
    training = np.flatnonzero((table["split"] == "train").to_numpy())
    if len(training) < config.labelled:
        raise UnveilError(f"The benchmark has {len(training)} training faces, fewer than --labelled "
                          f"{config.labelled}; raise --fraction or --subjects.")
    rng = np.random.default_rng(config.data_seed)
    drawn = rng.permutation(training)
    table.iloc[drawn[config.labelled:], table.columns.get_loc("split")] = "unlabelled"
    if photos is not None:
        table = table[table["split"] != "unlabelled"]
        real = prepare_labelled_folder(photos, out / "photos", load_size=config.load_size, val_fraction=0.0,
                                       test_fraction=0.0, progress=progress)
        real = real[real["emotion"].isna()]
        order = rng.permutation(len(real))  # the pool's first images are taken: a random share of the photos
        table = pd.concat([table, real.iloc[order].assign(image="photos/" + real["image"].iloc[order],
                                                          split="unlabelled")], ignore_index=True)
    write_text_atomic(out / "data.json", json.dumps(options, indent=1))
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def run_face_augmentation(config: FaceAugmentationConfig, out: str | os.PathLike[str], progress: bool = True
                          ) -> pd.DataFrame:
    """Every (strategy, seed) run on the faces, each skipped when its scores exist (a rerun continues); one row of
    scores per run, also OUT/results.csv, and OUT/table.md (means and spreads beside the seed's face tables)."""
    folder = ensure_dir(out)
    table = face_data(folder, config, progress)
    columns = au_columns(table.columns)
    space = face_space(columns, config)
    rows = run_strategies(table, folder, config, space, progress)
    frame = pd.DataFrame([{"labelled": config.labelled, "pool": config.pool, **row} for row in rows])
    with atomic_path(folder / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)
    reference = {(config.labelled, config.pool, s): v for s, v in SEED_FACE_TABLES.items()}
    write_text_atomic(folder / "table.md", table_markdown(frame, "FDR AU01-02 %", "pool", reference))
    write_call_rates(table, folder, config, space)
    return frame


def write_call_rates(table: pd.DataFrame, folder: Path, config: FaceAugmentationConfig, space: LabelSpace) -> None:
    """``calls.csv`` and ``calls.png``: which AUs seed 0's model of each strategy calls on the faces that show one
    AU alone (:func:`call_rates`)."""
    test = table[table["split"] == "test"]
    rates = {}
    for strategy in config.strategies:
        best = folder / "runs" / f"{strategy}-s0" / "checkpoints" / "best.safetensors"
        if best.is_file():
            outputs = predict(best, test, folder, config.device, space=space)
            rates[strategy] = call_rates(test[list(space.columns)].to_numpy(), outputs, space)
    if not rates:
        return
    long = pd.concat({name: frame for name, frame in rates.items()}, names=["strategy", "shown"])
    with atomic_path(folder / "calls.csv") as tmp:
        long.to_csv(tmp)
    plot_call_rates(rates, folder / "calls.png", f"AUs called (>= {config.present_at:g}) on faces showing one AU "
                                                  f"alone, seed 0, pool: {config.pool}")
