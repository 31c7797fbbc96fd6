"""``unveil demo``: every stage that exists, end to end, on the embedded synthetic benchmark.

synth -> prepare -> one CycleGAN per subject (the CPU preset, one short epoch) -> restoration scores against
the hidden clean frames -> a restored side-by-side video per subject. Analysis, evaluation tables and the report
follow in later stages.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from unveil.data.prepare import PrepareConfig, prepare
from unveil.evaluate.restoration import restoration_scores
from unveil.files import ensure_dir
from unveil.methods.cyclegan import CPU_PRESET, CycleGANConfig
from unveil.restore import restore
from unveil.synth import SynthConfig, generate, write_preview
from unveil.train.loop import TrainConfig, train_per_subject

DEMO_SYNTH = SynthConfig(subjects=2, size=128)
# Seed 000's preparation (fixed box per session, random frames, 90/10) with 4 % of the frames (the demo's
# recordings are two minutes long); crops keep the benchmark's resolution.
DEMO_PREPARE = PrepareConfig(fraction=0.04, load_size=143)
# The CPU preset for one epoch: a few hundred steps per subject, enough to remove most of the sensors.
DEMO_TRAIN = TrainConfig(model=CycleGANConfig(**CPU_PRESET["model"]), n_epochs=1, n_epochs_decay=0,
                         load_size=143, crop_size=128)


def run_demo(out: str | os.PathLike[str] = "demo-output", progress: bool = True) -> list[str]:
    """Run the demo into ``out``; returns the summary lines to print (the last names the output folder)."""
    folder = ensure_dir(out)
    lines: list[str] = []
    start = time.perf_counter()
    manifest = generate(DEMO_SYNTH, folder / "benchmark", workers=None, progress=progress)
    frames = sum(r.n_frames or 0 for r in manifest.recordings)
    occluded = [r for r in manifest.recordings if r.condition == "occluded"]
    coverage = pd.concat([pd.read_parquet(manifest.resolve(r.frames), columns=["coverage"]) for r in occluded])
    lines.append(f"synth: {len(manifest.recordings)} recordings ({len(occluded)} occluded, each with its hidden "
                 f"clean twin and mask), {frames} frames in {time.perf_counter() - start:.0f} s; the sensors hide "
                 f"{coverage['coverage'].mean():.0%} of the face on average")
    lines.append(f"contact sheet: {write_preview(DEMO_SYNTH, folder / 'preview.png')}")

    start = time.perf_counter()
    prepared = prepare(manifest, folder / "prepared", DEMO_PREPARE, progress=progress)
    samples = prepared.samples
    lines.append(f"prepare: {len(samples)} face crops ({(samples['split'] == 'train').sum()} train, "
                 f"{(samples['split'] == 'val').sum()} val) in {time.perf_counter() - start:.0f} s"
                 + (f"; failed: {', '.join(prepared.failures)}" if prepared.failures else ""))

    start = time.perf_counter()
    runs = train_per_subject(prepared.path.parent, folder / "runs", DEMO_TRAIN, progress=progress)
    lines.append(f"train: one CycleGAN per subject ({', '.join(runs)}), {time.perf_counter() - start:.0f} s; "
                 f"sample grids in {folder / 'runs' / '<subject>' / 'samples'}")

    for subject, run in runs.items():
        checkpoint = run.run_dir / "checkpoints" / "latest.safetensors"
        table = restoration_scores(checkpoint, manifest, prepared.path.parent, subject, every=20)
        scores = table.mean(numeric_only=True)
        lines.append(
            f"{subject}: on {len(table)} unseen frames, L1 inside the sensors "
            f"{scores['l1_mask_input']:.3f} -> {scores['l1_mask_restored']:.3f} "
            f"({100 * (scores['l1_mask_restored'] / scores['l1_mask_input'] - 1):+.0f} %), PSNR "
            f"{scores['psnr_input']:.1f} -> {scores['psnr_restored']:.1f} dB "
            f"({scores['psnr_composite_estimated']:.1f} dB with visible pixels kept)")
        video = manifest.select(subject=subject, condition="occluded", task="emotion", session="1", take=1)[0]
        box = samples[samples["recording"] == video.id].iloc[0]
        result = restore(checkpoint, manifest.resolve(video.media), folder / f"restored_{subject}_emotion.mp4",
                         box=(box["box_x"], box["box_y"], box["box_size"], box["box_size"]), side_by_side=True,
                         progress=progress)
        lines.append(f"{subject}: sensors | restored, side by side: {result.output}")
    lines.append(f"Demo output is in {Path(folder).resolve()}")
    return lines
