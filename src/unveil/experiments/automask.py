"""Automatic occlusion masks compared against the true ones (seed 003's future work): the polygon found from
facial landmarks (:mod:`unveil.data.automask`, face masks only) and a segmentation network trained on drawn
occluders (``unveil train segmenter``, or the one inside a mask-aware restorer), on occluded crops whose exact
mask is known (a benchmark, or ``unveil occlude`` on photos, then ``unveil prepare``). Crops whose true mask is
empty (``unveil occlude`` found no face to draw on) are left out and counted.

Per source and crop: the IoU with the true mask (and with the true mask grown by one pixel, an occluder's edge on
compressed video) and the time it took. A crop where the landmarks find no face gets an empty mask: IoU 0, since
a user gets no mask there either.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from unveil.config import Config
from unveil.data.automask import AUTO_OCCLUDERS, iou, landmark_masks
from unveil.data.datasets import load_image, load_samples
from unveil.data.sampling import spread
from unveil.errors import UnveilError
from unveil.files import ensure_dir, write_image_atomic, write_text_atomic
from unveil.progress import progress_bar


class AutomaskConfig(Config):
    """Which masks to compare on which crops."""

    segmenters: dict[str, str] = Field(default_factory=dict, description="Name -> a run or checkpoint holding a "
                                       "segmentation network (a segmenter, de-occluder or pix2pix run).")
    landmarks: bool = Field(default=True, description="The landmark polygon (face masks only).")
    occluder: str = Field(default="mask", description="Test rows of this occluder.")
    split: str = Field(default="val", description="The prepared split to test on ('all': every split).")
    count: int = Field(default=200, ge=1, description="Test crops, spread evenly over the rows.")
    device: str = "auto"


@dataclass(frozen=True)
class MaskSource:
    """One way of finding masks: a name and a function from RGB crops to masks in {0, 1}."""

    name: str
    find: Callable[[list[np.ndarray]], list[np.ndarray]]


def select_rows(table: pd.DataFrame, config: AutomaskConfig) -> pd.DataFrame:
    """Occluded rows of the occluder with a true mask, spread over the split."""
    rows = table[table["condition"] == "occluded"]
    if config.split != "all":
        rows = rows[rows["split"] == config.split]
    if "occluder" in rows.columns:
        rows = rows[rows["occluder"].astype(str).str.contains(config.occluder, regex=False)]
    rows = rows[rows["mask"].notna()] if "mask" in rows.columns else rows[:0]
    if rows.empty:
        raise UnveilError(f"No occluded '{config.occluder}' rows with true masks in split '{config.split}'; prepare "
                          f"a benchmark made with --occluder {config.occluder}, or 'unveil occlude' output.")
    return rows.iloc[spread(len(rows), config.count)].reset_index(drop=True)


def sources(config: AutomaskConfig) -> list[MaskSource]:
    """The landmark polygon (where it exists for the occluder) and every segmentation network."""
    from unveil.methods.segmenter import load_segmenter

    found = []
    if config.landmarks and config.occluder in AUTO_OCCLUDERS:
        found.append(MaskSource("landmarks", landmark_masks))
    for name, checkpoint in config.segmenters.items():
        found.append(MaskSource(name, load_segmenter(checkpoint, config.device)))
    if not found:
        raise UnveilError(f"Nothing to compare: landmark masks exist for face masks only, so give a segmenter "
                          f"(--segmenter) for '{config.occluder}'.")
    return found


def score(found: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, list[float]]:
    """Per crop: IoU with the exact true mask and with the true mask grown by one pixel, and whether nothing was
    found (e.g. no face for the landmarks)."""
    from unveil.restore import grown

    return {"iou": [iou(f, t) for f, t in zip(found, truth, strict=True)],
            "iou_grown": [iou(f, grown(t, 1)) for f, t in zip(found, truth, strict=True)],
            "nothing_found": [not (f > 0.5).any() for f in found]}


def run_automask(config: AutomaskConfig, samples: str | os.PathLike[str], out: str | os.PathLike[str],
                 progress: bool = True) -> pd.DataFrame:
    """Find masks with every source on the test crops; write results.csv, table.md and grid.png into ``out``."""
    table, root = load_samples(samples)
    rows = select_rows(table, config)
    chosen = sources(config)
    folder = ensure_dir(out)
    truth = [load_image(root / p, gray=True) > 127 for p in rows["mask"]]
    covered = np.array([t.any() for t in truth])  # an occluder that was never drawn (no face found) tests nothing
    if not covered.any():
        raise UnveilError("Every selected true mask is empty; nothing hides the faces of these rows.")
    rows, truth = rows[covered].reset_index(drop=True), [t for t, c in zip(truth, covered, strict=True) if c]
    images = [load_image(root / p) for p in rows["image"]]
    found: dict[str, list[np.ndarray]] = {}
    records = []
    with progress_bar(len(chosen), "automatic masks", progress) as advance:
        for source in chosen:
            start = time.perf_counter()
            found[source.name] = source.find(images)
            seconds = (time.perf_counter() - start) / len(images)
            records.append(pd.DataFrame({"source": source.name, "recording": rows["recording"], "frame": rows["frame"],
                                         "subject": rows["subject"], **score(found[source.name], truth),
                                         "ms_per_crop": 1000 * seconds}))
            advance(1)
    results = pd.concat(records, ignore_index=True)
    write_text_atomic(folder / "results.csv", results.to_csv(index=False))
    write_text_atomic(folder / "table.md", table_markdown(results, rows, images[0].shape[0],
                                                          int((~covered).sum())))
    write_image_atomic(folder / "grid.png", error_grid(images, truth, found))
    return results


def table_markdown(results: pd.DataFrame, rows: pd.DataFrame, side: int, empty: int = 0) -> str:
    """Mean, lowest and share >= 0.9 of the IoU per source, the share of crops where it found nothing, and the
    mean per subject."""
    subjects = sorted(results["subject"].unique())
    skipped = f" ({empty} more had an empty true mask, nothing drawn, and were left out)" if empty else ""
    recordings = rows["recording"].nunique()
    lines = [f"{len(rows)} occluded crops ({side} px) from {recordings} recording{'s' * (recordings != 1)}"
             f"{skipped}. IoU with the exact true mask; 'grown': with the true mask grown by one pixel.", "",
             "| source | mean IoU | lowest | share >= 0.9 | nothing found | mean IoU, grown | "
             + " | ".join(f"{s}" for s in subjects) + " | ms per crop |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(subjects) + "---:|"]
    for source, part in results.groupby("source", sort=False):
        per_subject = part.groupby("subject")["iou"].mean()
        lines.append(f"| {source} | {part['iou'].mean():.3f} | {part['iou'].min():.3f} | "
                     f"{(part['iou'] >= 0.9).mean():.0%} | {part['nothing_found'].mean():.0%} | "
                     f"{part['iou_grown'].mean():.3f} | "
                     + " | ".join(f"{per_subject.get(s, float('nan')):.3f}" for s in subjects)
                     + f" | {part['ms_per_crop'].iloc[0]:.0f} |")
    return "\n".join(lines) + "\n"


def error_grid(images: list[np.ndarray], truth: list[np.ndarray], found: dict[str, list[np.ndarray]],
               examples: int = 8, scale: int = 2) -> np.ndarray:
    """One column per example crop: the crop, then per source its errors (grey: right, red: marked but visible,
    blue: hidden but missed); the worst crop of the first source is among the examples."""
    first = next(iter(found.values()))
    worst = int(np.argmin([iou(f, t) for f, t in zip(first, truth, strict=True)]))
    picks = sorted(set(spread(len(images), examples - 1).tolist()) | {worst})
    columns = []
    for i in picks:
        cells = [images[i]]
        for masks in found.values():
            f, t = masks[i] > 0.5, truth[i]
            cell = np.zeros_like(images[i])
            cell[f & t], cell[f & ~t], cell[t & ~f] = (200, 200, 200), (255, 40, 40), (40, 140, 255)
            cells.append(cell)
        column = np.concatenate([np.pad(c, ((1, 1), (1, 1), (0, 0)), constant_values=255) for c in cells], axis=0)
        columns.append(column)
    grid = np.concatenate(columns, axis=1)
    return cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
