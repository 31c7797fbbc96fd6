"""Training speed of unveil's methods through the one loop (``Trainer.step``: forward, scaled backward, optimiser
steps), at their presets, on this machine: milliseconds per step and images per second on the CPU, and on CUDA in
float32 and in mixed precision (the loop's ``amp``), with the ratios between them and the peak GPU memory.

The data is a small synthetic benchmark at 256 px prepared into 286 px crops (each run resizes to its load size);
the speed of a step does not depend on what the faces show.

    python benchmarks/train_speed.py [--runs cyclegan:paper,deoccluder:demo,...] [--steps 20] [--cpu-steps 3]

A run is METHOD:PRESET[:BATCH]; the preset ``demo`` is the demo's de-occluder configuration.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from unveil.data.prepare import PrepareConfig, prepare
from unveil.synth import SynthConfig, generate
from unveil.train.config import resolve_train_config
from unveil.train.loop import TrainConfig, Trainer

RUNS = "cyclegan:paper,cyclegan:paper:8,cyclegan:cpu,pix2pix:paper,deoccluder:seed001,deoccluder:demo"


def make_samples(root: Path) -> Path:
    """One subject's short sEMG benchmark at 256 px (lossless frames), prepared into 286 px whole-frame crops."""
    config = SynthConfig(subjects=1, sessions=1, normal_takes=1, occluded_takes=1, size=256, fps=10,
                         tasks=["emotion"], emotion_repetitions=1, format="png")
    manifest = generate(config, root / "bench", workers=4, progress=False)
    prepare(manifest, root / "prepared", PrepareConfig(crop="none", fraction=1.0, load_size=286), workers=4,
            progress=False)
    return root / "prepared"


def run_config(run: str, device: str, amp: bool) -> TrainConfig:
    method, preset, *batch = run.split(":")
    flags = {"device": device, "amp": amp, "save_epoch_freq": 1000}
    if batch:
        flags["batch_size"] = int(batch[0])
    if method == "deoccluder" and preset == "demo":
        from unveil.demo import DEMO_TRAIN

        return TrainConfig(**{**DEMO_TRAIN.model_dump(), **flags})
    config = resolve_train_config(method, preset=preset, flags=flags)
    return config


def time_steps(samples: Path, run_dir: Path, config: TrainConfig, steps: int) -> tuple[float, float]:
    """Seconds per optimiser step (after 3 warm-up steps) and the peak GPU memory in GiB (0 on the CPU)."""
    trainer = Trainer(samples, run_dir, config, progress=False)
    if hasattr(trainer.train_set, "set_epoch"):
        trainer.train_set.set_epoch(1)
    loader = DataLoader(trainer.train_set, batch_size=config.batch_size, shuffle=True, drop_last=True)
    batches = itertools.cycle(list(itertools.islice(iter(loader), 8)))  # decoded once: time the step, not the data
    cuda = trainer.device.type == "cuda"
    for _ in range(3):
        trainer.step(next(batches), update=True)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(next(batches), update=True)
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return seconds, torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=RUNS, help="Comma-separated METHOD:PRESET[:BATCH].")
    parser.add_argument("--steps", type=int, default=20, help="Timed steps on CUDA.")
    parser.add_argument("--cpu-steps", type=int, default=3, help="Timed steps on the CPU (0: skip the CPU).")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'}")
    header = (f"{'run':<22}{'px':>5}{'batch':>6}{'CPU ms':>10}{'fp32 ms':>10}{'AMP ms':>10}{'img/s':>11}"
              f"{'CPU/AMP':>9}{'fp32/AMP':>10}{'GiB':>7}")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        samples = make_samples(Path(tmp))
        for run in args.runs.split(","):
            base = run_config(run, "cpu", False)
            cpu = time_steps(samples, Path(tmp) / "cpu", base, args.cpu_steps)[0] if args.cpu_steps else float("nan")
            fp32 = amp = float("nan")
            memory = 0.0
            if torch.cuda.is_available():
                fp32 = time_steps(samples, Path(tmp) / "fp32", run_config(run, "cuda", False), args.steps)[0]
                amp, memory = time_steps(samples, Path(tmp) / "amp", run_config(run, "cuda", True), args.steps)
            fastest = amp if amp == amp else cpu
            print(f"{run:<22}{base.crop_size:>5}{base.batch_size:>6}{cpu * 1e3:>10.1f}{fp32 * 1e3:>10.1f}"
                  f"{amp * 1e3:>10.1f}{base.batch_size / fastest:>11.1f}{cpu / amp:>9.1f}{fp32 / amp:>10.2f}"
                  f"{memory:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
