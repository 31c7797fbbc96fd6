"""Inversion on video: each frame from the previous frame's latents (warm starts, ``warm_steps``) against every
frame inverted from the mean (``steps``), on consecutive frames of a masked benchmark recording whose clean frames
and masks are known. Prints the time of each, the flicker inside the mask (mean absolute change between
consecutive restored frames, beside the clean video's own) and PSNR inside the mask.

    python benchmarks/inversion_video.py RUN BENCH PREPARED [--recording ID] [--frames 100] [--steps 1000]
                                         [--warm-steps 200]

RUN: a stylegan2 run or checkpoint; BENCH: a benchmark made with ``--occluder mask --format png``; PREPARED: its
``unveil prepare`` folder (the recording's face box is the median of its prepared boxes, as the training crops).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from unveil.data.datasets import load_image
from unveil.data.manifest import load_manifest
from unveil.methods.inversion import ProjectorConfig, load_inversion
from unveil.metrics.images import psnr
from unveil.restorers import FrameContext


def crops(folder: Path, box: tuple[int, int, int], size: int, count: int, gray: bool = False) -> list[np.ndarray]:
    x, y, side = box
    files = sorted(folder.glob("*.png"))[:count]
    return [cv2.resize(load_image(f, gray)[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
            for f in files]


def flicker(frames: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """Mean absolute change inside the mask between consecutive frames (grey levels)."""
    changes = [np.abs(b.astype(float) - a)[(m > 0.5) & (n > 0.5)].mean()
               for a, b, m, n in zip(frames, frames[1:], masks, masks[1:], strict=False)]
    return float(np.mean(changes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("bench", type=Path)
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--recording", default=None, help="Default: the first occluded recording.")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warm-steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    manifest = load_manifest(args.bench / "manifest.yaml")
    recording = next(r for r in manifest.recordings if r.condition == "occluded"
                     and (args.recording is None or r.id == args.recording))
    table = pd.read_parquet(args.prepared / "samples.parquet")
    rows = table[table["recording"] == recording.id]
    x, y, side = (int(round(rows[c].median())) for c in ("box_x", "box_y", "box_size"))
    media = args.bench / recording.media
    config = ProjectorConfig(steps=args.steps, warm_steps=args.warm_steps)
    restorer = load_inversion(args.run, config, args.device)
    size = restorer.size
    occluded = crops(media, (x, y, side), size, args.frames)
    clean = crops(args.bench / recording.ground_truth, (x, y, side), size, args.frames)
    masks = [(m > 127).astype(np.float32) for m in crops(args.bench / recording.mask, (x, y, side), size,
                                                          args.frames, gray=True)]
    print(f"{recording.id}: {len(occluded)} frames at {size} px, perceptual: {restorer.perceptual_name}")
    results = {}
    for name, warm in (("warm starts", True), ("independent", False)):
        restorer.config = config.model_copy(update={"warm_start": warm})
        restorer.reset()
        started = time.perf_counter()
        out = []
        for start in range(0, len(occluded), 8):
            chunk = range(start, min(start + 8, len(occluded)))
            contexts = [FrameContext(i if warm else 0, masks[i]) for i in chunk]
            out += restorer([occluded[i] for i in chunk], contexts)
        seconds = time.perf_counter() - started
        results[name] = out
        score = np.mean([psnr(o, c, m > 0.5) for o, c, m in zip(out, clean, masks, strict=True)])
        print(f"{name:12s} {seconds:8.1f} s ({seconds / len(out):.2f} s/frame)  flicker {flicker(out, masks):6.2f}  "
              f"PSNR in mask {score:.2f} dB")
    print(f"{'clean video':12s} {'':8s}   flicker {flicker(clean, masks):6.2f}")


if __name__ == "__main__":
    main()
