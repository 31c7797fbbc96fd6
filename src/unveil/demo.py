"""``unveil demo``: every stage that exists, end to end, on the embedded synthetic benchmark.

Stages are added here as they land (train, restore, analyze, evaluate, report follow); today it writes the
benchmark and its contact sheet, and prepares the training crops as seed 000 does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from unveil.data.prepare import PrepareConfig, prepare
from unveil.files import ensure_dir
from unveil.synth import SynthConfig, generate, write_preview

DEMO_SYNTH = SynthConfig(subjects=2, size=128)
# Seed 000's preparation (fixed box per session, random frames, 90/10), with more frames than its 2 %: the
# demo's recordings are two minutes long, the paper's are much longer. Crops keep the benchmark's resolution.
DEMO_PREPARE = PrepareConfig(fraction=0.1, load_size=143)


def run_demo(out: str | os.PathLike[str] = "demo-output", progress: bool = True) -> list[str]:
    """Run the demo into ``out``; returns the summary lines to print (the last names the output folder)."""
    folder = ensure_dir(out)
    start = time.perf_counter()
    manifest = generate(DEMO_SYNTH, folder / "benchmark", workers=None, progress=progress)
    synth_seconds = time.perf_counter() - start
    preview = write_preview(DEMO_SYNTH, folder / "preview.png")
    frames = sum(r.n_frames or 0 for r in manifest.recordings)
    occluded = [r for r in manifest.recordings if r.condition == "occluded"]
    coverage = pd.concat(
        [pd.read_parquet(manifest.resolve(r.frames), columns=["coverage"]) for r in occluded if r.frames]
    )["coverage"] if occluded else pd.Series(dtype=float)
    start = time.perf_counter()
    prepared = prepare(manifest, folder / "prepared", DEMO_PREPARE, progress=progress)
    prepare_seconds = time.perf_counter() - start
    samples = prepared.samples
    lines = [
        f"synth: {len(manifest.recordings)} recordings ({len(occluded)} occluded, each with its hidden clean "
        f"twin and mask), {frames} frames, {synth_seconds:.1f} s ({frames / synth_seconds:.0f} frames/s)",
        f"occluder '{DEMO_SYNTH.occluders[0]}' hides {coverage.mean():.0%} of the face on average "
        f"(min {coverage.min():.0%}, max {coverage.max():.0%})" if len(coverage) else "no occluded recordings",
        f"contact sheet: {preview}",
        f"prepare: {len(samples)} face crops ({(samples['split'] == 'train').sum()} train, "
        f"{(samples['split'] == 'val').sum()} val) from {prepared.frames_decoded} frames in {prepare_seconds:.1f} s"
        + (f"; failed: {', '.join(prepared.failures)}" if prepared.failures else ""),
        f"samples: {prepared.path}",
        f"manifest: {manifest.root / 'manifest.yaml'}",
        f"Demo output is in {folder.resolve()}",
    ]
    return lines
