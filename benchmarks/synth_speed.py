"""Generation speed of `unveil synth` per frame size (frames/s, all outputs written), on this machine.

There is no reference implementation to race here, so speeds are given as a ratio to real time (the
benchmark's 15 fps): "8.0x real time" means a minute of video takes 7.5 s to write, hidden clean twins and
masks of the occluded takes included. The last line is the acceptance run of the foundation issue:
the full two-subject layout at 128 px.

    python benchmarks/synth_speed.py [--sizes 64 128 256 512] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from unveil.synth import SynthConfig, generate


def run(config: SynthConfig, workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        manifest = generate(config, out, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    return sum(r.n_frames or 0 for r in manifest.recordings), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"unveil synth speed, {args.workers} worker(s); one subject, one session (1 normal + 2 sEMG takes, "
          "3 tasks), all files written")
    print(f"{'size':>6} {'frames':>7} {'seconds':>8} {'frames/s':>9} {'vs real time':>13}")
    for size in args.sizes:
        config = SynthConfig(subjects=1, sessions=1, size=size)
        frames, seconds = run(config, args.workers)
        print(f"{size:>6} {frames:>7} {seconds:>8.1f} {frames / seconds:>9.0f} {frames / seconds / config.fps:>12.1f}x")
    frames, seconds = run(SynthConfig(subjects=2, size=128), args.workers)
    print(f"acceptance: `unveil synth --subjects 2 --size 128` wrote {frames} frames in {seconds:.1f} s "
          f"({frames / seconds:.0f} frames/s; limit 60 s)")


if __name__ == "__main__":
    main()
