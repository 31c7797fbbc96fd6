"""``unveil demo``: every stage that exists, end to end, on the embedded synthetic benchmark.

Stages are added here as they land (prepare, train, restore, analyze, evaluate, report); today it writes the
benchmark and its contact sheet and summarises the ground truth.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from unveil.files import ensure_dir
from unveil.synth import SynthConfig, generate, write_preview

DEMO_SYNTH = SynthConfig(subjects=2, size=128)


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
    lines = [
        f"synth: {len(manifest.recordings)} recordings ({len(occluded)} occluded, each with its hidden clean "
        f"twin and mask), {frames} frames, {synth_seconds:.1f} s ({frames / synth_seconds:.0f} frames/s)",
        f"occluder '{DEMO_SYNTH.occluders[0]}' hides {coverage.mean():.0%} of the face on average "
        f"(min {coverage.min():.0%}, max {coverage.max():.0%})" if len(coverage) else "no occluded recordings",
        f"contact sheet: {preview}",
        f"manifest: {manifest.root / 'manifest.yaml'}",
        f"Demo output is in {folder.resolve()}",
    ]
    return lines
