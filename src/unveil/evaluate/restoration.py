"""How much closer restored frames are to the hidden clean frames than the occluded input, on the synthetic
benchmark where both are known: L1 and PSNR inside the occluder mask and PSNR over the face crop, for the plain
restorer output and for occlusion-aware compositing (given mask, or estimated from the change)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import pandas as pd

from unveil.data.datasets import load_samples
from unveil.data.faces import Box, CropTransform, square_resize
from unveil.data.manifest import Manifest
from unveil.data.video import read_frames
from unveil.errors import UnveilError
from unveil.metrics import l1, psnr
from unveil.methods.registry import load_restorer
from unveil.restore import occlusion_from_difference
from unveil.restorers import Restorer


def restoration_scores(checkpoint: str | os.PathLike[str] | Restorer, manifest: Manifest,
                       samples: str | os.PathLike[str],
                       subject: str, every: int = 10, threshold: float = 0.12,
                       options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per evaluated frame: L1 inside and outside (visible) the mask, PSNR inside the mask and over the crop,
    against the hidden clean frame, for the occluded input, the restorer's output, and its output composited by the
    true and the estimated mask; for a restorer that predicts the occluder mask, its IoU with the true one.

    Frames are every ``every``-th frame of the subject's occluded recordings that were not training samples;
    each recording's face box is the one ``unveil prepare`` used (from ``samples.parquet``). Scores are taken at
    the frame's own resolution of that box (the restoration resized to it), so that restorers working at
    different crop sizes are judged on the same pixels. ``checkpoint`` may be a loaded restorer (as for
    :func:`~unveil.restore.restore`); ``options``: restore-time options in place of a checkpoint file's
    (:func:`~unveil.methods.registry.load_restorer`).
    """
    if isinstance(checkpoint, Restorer) and options:
        raise ValueError("restore-time options apply when a checkpoint is loaded; this restorer is loaded already")
    restorer = checkpoint if isinstance(checkpoint, Restorer) else load_restorer(checkpoint, options=options)
    table, _ = load_samples(samples)
    rows = []
    for rec in manifest.select(subject=subject, condition="occluded"):
        if rec.ground_truth is None or rec.mask is None:
            raise UnveilError(f"{rec.id} has no hidden ground truth or mask; this evaluation needs the benchmark.")
        used = table[table["recording"] == rec.id]
        if used.empty:
            continue
        first = used.iloc[0]
        box = Box(first["box_x"], first["box_y"], first["box_size"], first["box_size"])
        transform, native = CropTransform(box, restorer.size), CropTransform(box, max(int(round(box.w)), 1))
        frames = set(range(0, rec.n_frames or 0, every)) - set(used["frame"])
        streams = [read_frames(manifest.resolve(p), only=frames, gray=k == 2)
                   for k, p in enumerate((rec.media, rec.ground_truth, rec.mask))]
        for occluded, clean, hidden in zip(*streams, strict=True):
            crops = [native.crop(occluded.image), native.crop(clean.image)]
            mask = native.crop(hidden.image, interpolation=0) > 127
            (restored,) = restorer([transform.crop(occluded.image)])
            restored = square_resize(restored, native.size)
            weight_true = mask.astype(np.float32)[..., None]
            weight_est = occlusion_from_difference(crops[0], restored, threshold)[..., None]
            composed = {name: np.rint(crops[0] * (1 - w) + restored * w).astype(np.uint8)
                        for name, w in (("mask", weight_true), ("estimated", weight_est))}
            row = {"recording": rec.id, "frame": occluded.index, "coverage": float(mask.mean())}
            predicted = getattr(restorer, "last_masks", None)  # a restorer that finds the occluder itself
            if predicted:
                # a soft mask: interpolated, then thresholded (as restore does for the whole frame)
                found = cv2.resize(predicted[0], (native.size, native.size), interpolation=cv2.INTER_LINEAR) > 0.5
                row["mask_iou"] = float((found & mask).sum() / max((found | mask).sum(), 1))
            for name, image in (("input", crops[0]), ("restored", restored), ("composite_mask", composed["mask"]),
                                ("composite_estimated", composed["estimated"])):
                row[f"l1_mask_{name}"] = l1(image, crops[1], mask)
                row[f"l1_visible_{name}"] = l1(image, crops[1], ~mask)
                row[f"psnr_{name}"] = psnr(image, crops[1])
                row[f"psnr_mask_{name}"] = psnr(image, crops[1], mask)
            rows.append(row)
    if not rows:
        raise UnveilError(f"No occluded frames of subject {subject} to evaluate.")
    return pd.DataFrame(rows)
