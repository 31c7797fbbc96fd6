"""Seed 003's mask-removal comparison, judged by the hidden truth: trained restorers (CycleGAN, pix2pix, a
de-occluder) against StyleGAN2 inversion (mean start, several starts; the true mask or one found from landmarks)
on masked faces whose clean twin and exact mask are known (the benchmark with ``--occluder mask``, or real
photos through ``unveil occlude --occluder mask``, then ``unveil prepare``).

Per arm and test crop: PSNR and SSIM inside the true mask against the clean crop, the AU error of an AU model
(an ``unveil train classifier`` run) against the frame's true AUs where the table has them, and dlib's identity
distance to the clean crop. The occluded input (S) and the clean crop (G) are scored as the floor and ceiling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from unveil.config import Config
from unveil.data.datasets import load_image, load_samples
from unveil.data.sampling import spread
from unveil.errors import UnveilError
from unveil.files import ensure_dir, write_image_atomic, write_text_atomic
from unveil.metrics.images import psnr, ssim
from unveil.progress import progress_bar
from unveil.restorers import FrameContext


class MaskRemovalConfig(Config):
    """What to compare on which crops."""

    arms: dict[str, str] = Field(description="Arm name -> checkpoint or run folder (a restorer; a stylegan2 "
                                             "checkpoint is inverted in each of the inversion variants).")
    au_model: str | None = Field(default=None, description="An AU classifier run for the AU error (none: skipped).")
    segmenter: str | None = Field(default=None, description="A segmentation network's run: inversion arms run with "
                                                            "its masks too (none: skipped).")
    split: str = Field(default="val", description="The prepared split to test on.")
    occluder: str = Field(default="mask", description="Test rows of this occluder.")
    count: int = Field(default=48, ge=1, description="Test crops, spread evenly over the split's rows.")
    steps: int = Field(default=1000, ge=1, description="Inversion steps per crop.")
    starts: int = Field(default=4, ge=2, description="Starts of the several-starts variant.")
    perceptual: str = Field(default="auto", description="Inversion's perceptual space (see unveil inpaint).")
    identity: bool = Field(default=True, description="dlib identity distance to the clean crop.")
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """One way of running an arm's checkpoint."""

    name: str
    checkpoint: str
    inversion: bool = False  # a stylegan2 checkpoint, inverted; else the checkpoint's own restorer
    starts: int = 1  # inversion only
    start: str = "mean"  # inversion: the mean w or the encoder's
    mask: str = "true"  # inversion: the true mask, 'auto' (landmarks) or 'network' (the segmenter); restorers: the
    #                     true mask, given to mask-aware ones


def variants(config: MaskRemovalConfig) -> list[Variant]:
    """Every arm; a stylegan2 checkpoint as inversion from the mean (true mask), with several starts (true
    mask), from the mean with the mask found from landmarks (and by the segmenter, when given), and from its
    encoder's guess when it has one."""
    from unveil.train.checkpoint import read_checkpoint

    found = []
    for name, checkpoint in config.arms.items():
        saved = read_checkpoint(checkpoint)
        if saved.method == "stylegan2":
            found += [Variant(f"{name} (mean start)", checkpoint, inversion=True),
                      Variant(f"{name} ({config.starts} starts)", checkpoint, inversion=True, starts=config.starts),
                      Variant(f"{name} (mean start, landmark mask)", checkpoint, inversion=True, mask="auto")]
            if config.segmenter is not None:
                found.append(Variant(f"{name} (mean start, network mask)", checkpoint, inversion=True,
                                     mask="network"))
            if any(k.startswith("encoder/") for k in saved.tensors):
                found.append(Variant(f"{name} (encoder start)", checkpoint, inversion=True, start="encoder"))
        else:
            found.append(Variant(name, checkpoint))
    return found


def select_test_rows(table: pd.DataFrame, config: MaskRemovalConfig) -> pd.DataFrame:
    rows = table[(table["split"] == config.split) & (table["condition"] == "occluded")]
    if "occluder" in rows.columns:
        rows = rows[rows["occluder"].astype(str).str.contains(config.occluder, regex=False)]
    rows = rows[rows["clean"].notna() & rows["mask"].notna()] if {"clean", "mask"} <= set(rows.columns) else rows[:0]
    if rows.empty:
        raise UnveilError(f"No occluded '{config.occluder}' rows with clean and mask crops in split "
                          f"'{config.split}'; prepare a benchmark made with --occluder {config.occluder}.")
    return rows.iloc[spread(len(rows), config.count)].reset_index(drop=True)


def run_variant(variant: Variant, occluded: list[np.ndarray], masks: list[np.ndarray], config: MaskRemovalConfig,
                progress: bool = True) -> list[np.ndarray]:
    """The arm's restored crops (at the crops' size)."""
    import cv2

    from unveil.methods.inversion import ProjectorConfig, load_inversion, restore_at_own_size
    from unveil.methods.registry import load_restorer

    if variant.inversion:
        options = ProjectorConfig(steps=config.steps, starts=variant.starts, perceptual=config.perceptual,  # type: ignore[arg-type]
                                  start=variant.start, seed=config.seed)  # type: ignore[arg-type]
        restorer = load_inversion(variant.checkpoint, options, config.device)
        restorer.projector.progress = progress
        if variant.mask == "auto":
            from unveil.data.automask import landmark_masks

            masks = landmark_masks(occluded)
        elif variant.mask == "network":
            from unveil.methods.segmenter import load_segmenter

            masks = load_segmenter(config.segmenter, config.device)(occluded)  # type: ignore[arg-type]
        return restore_at_own_size(restorer, occluded, masks)
    restorer = load_restorer(variant.checkpoint, config.device)
    size = occluded[0].shape[0]
    crops = [cv2.resize(image, (restorer.size, restorer.size), interpolation=cv2.INTER_AREA) for image in occluded]
    contexts = [FrameContext(0, cv2.resize(m, (restorer.size, restorer.size), interpolation=cv2.INTER_AREA))
                for m in masks]
    out = []
    for start in range(0, len(crops), 16):
        out += restorer(crops[start:start + 16], contexts[start:start + 16])
    return [cv2.resize(o, (size, size), interpolation=cv2.INTER_LINEAR) for o in out]


def identity_distances(restored: list[np.ndarray], clean: list[np.ndarray]) -> list[float]:
    """dlib descriptor distances on crops upscaled to 192 px, each face box taken as the crop's inner 80 %."""
    import cv2

    from unveil.metrics.identity import FaceDescriptor, identity_distance

    describe = FaceDescriptor()
    box = (0.1 * 192, 0.1 * 192, 0.8 * 192, 0.8 * 192)

    def up(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (192, 192), interpolation=cv2.INTER_CUBIC)

    return [identity_distance(describe(up(a), box), describe(up(b), box)) for a, b in zip(restored, clean, strict=True)]


def run_mask_removal(config: MaskRemovalConfig, samples: str | os.PathLike[str], out: str | os.PathLike[str],
                     progress: bool = True) -> pd.DataFrame:
    """Score every variant on the test crops; write results.csv, table.md and grid.png into ``out``."""
    table, root = load_samples(samples)
    rows = select_test_rows(table, config)
    folder = ensure_dir(out)
    occluded = [load_image(root / p) for p in rows["image"]]
    clean = [load_image(root / p) for p in rows["clean"]]
    masks = [(load_image(root / p, gray=True) > 127).astype(np.float32) for p in rows["mask"]]
    outputs: dict[str, list[np.ndarray]] = {"occluded (S)": occluded}
    arms = variants(config)
    with progress_bar(len(arms), "mask removal: arms", progress) as advance:
        for variant in arms:
            outputs[variant.name] = run_variant(variant, occluded, masks, config, progress)
            advance(1)
    outputs["clean (G)"] = clean
    au_model, aus = None, []
    if config.au_model is not None:
        from unveil.methods.registry import load_analysis_model

        au_model = load_analysis_model(config.au_model, config.device)
        aus = [a for a in au_model.aus if a in rows.columns]
    records = []
    for arm, images in outputs.items():
        scores: dict[str, Any] = {"arm": arm, "item": np.arange(len(rows)), "recording": rows["recording"],
                                  "frame": rows["frame"]}
        scores["psnr_mask"] = [psnr(a, b, m > 0.5) for a, b, m in zip(images, clean, masks, strict=True)]
        scores["ssim_mask"] = [ssim(a, b, m > 0.5) for a, b, m in zip(images, clean, masks, strict=True)]
        if au_model is not None and aus:
            predicted = au_model(images)[:, [au_model.aus.index(a) for a in aus]]
            scores["au_mae"] = np.abs(predicted - rows[aus].to_numpy(float)).mean(1)
        if config.identity:
            scores["identity_distance"] = identity_distances(images, clean)
        records.append(pd.DataFrame(scores))
    results = pd.concat(records, ignore_index=True)
    write_text_atomic(folder / "results.csv", results.to_csv(index=False))
    write_text_atomic(folder / "table.md", table_markdown(results, len(rows), aus))
    write_image_atomic(folder / "grid.png", example_grid(outputs, masks))
    return results


def table_markdown(results: pd.DataFrame, n: int, aus: list[str]) -> str:
    """Mean (standard deviation over crops) per arm, in the order the arms ran."""
    metrics = [c for c in ("psnr_mask", "ssim_mask", "au_mae", "identity_distance") if c in results.columns]
    heads = {"psnr_mask": "PSNR in mask (dB)", "ssim_mask": "SSIM in mask", "au_mae": f"AU MAE ({len(aus)} AUs)",
             "identity_distance": "identity distance (dlib)"}
    lines = [f"Test crops: {n}. Mean (SD over crops); PSNR / SSIM against the clean crop inside the true mask "
             "(the clean row scores itself: inf / 1).", "",
             "| arm | " + " | ".join(heads[m] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for arm, part in results.groupby("arm", sort=False):
        cells = []
        for m in metrics:
            values = part[m].replace([np.inf, -np.inf], np.nan).dropna()
            cells.append(f"{values.mean():.3f} ({values.std():.3f})" if len(values) else "inf" if m == "psnr_mask"
                         else "n/a")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def example_grid(outputs: dict[str, list[np.ndarray]], masks: list[np.ndarray], examples: int = 6) -> np.ndarray:
    """Rows of examples, one column per arm (the first column with the true mask's outline)."""
    import cv2

    rows = []
    for i in spread(len(masks), examples):
        cells = []
        for k, images in enumerate(outputs.values()):
            cell = images[i].copy()
            if k == 0:
                contours, _ = cv2.findContours((masks[i] > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                               cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(cell, contours, -1, (255, 255, 0), 1)
            cells.append(np.pad(cell, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def arms_option(values: list[str], flag: str = "--arm") -> dict[str, str]:
    """``NAME=CHECKPOINT`` pairs from the command line (``flag`` names the option in the error)."""
    arms = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UnveilError(f"{flag} takes NAME=CHECKPOINT, e.g. net=runs/net, not '{value}'.")
        if not Path(path).exists():
            raise UnveilError(f"The checkpoint of {flag} '{name}', {path}, does not exist.")
        arms[name] = path
    return arms
