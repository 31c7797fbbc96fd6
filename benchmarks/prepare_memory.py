"""Memory and speed of `unveil prepare` on a long 720p video (issue: memory stays flat, < 1 GiB peak).

Makes a synthetic 10-minute 1280x720 30 fps video (a moving synthetic face on a room background), then runs
`unveil prepare` on it in a child process with crop=fixed and crop=track, sampling the resident memory of the
whole process tree (main process and workers) every 0.1 s. The reference is the plain loop a script would
write, PyAV decoding every frame to an RGB array, run in this process on the same file.

    python benchmarks/prepare_memory.py [--minutes 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from unveil.data.manifest import Manifest, Recording, save_manifest
from unveil.data.video import VideoWriter, read_frames
from unveil.synth import SynthConfig, generate


def make_video(path: Path, minutes: float, fps: int = 30) -> int:
    """A 720p video: a 256 px synthetic face recording, upscaled and drifting over a wall, looped."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate(SynthConfig(subjects=1, sessions=1, occluded_takes=0, tasks=["emotion"], size=256,
                                        fps=fps), tmp, workers=2, progress=False)
        face = [f.image for f in read_frames(manifest.resolve(manifest.recordings[0].media))]
    n = int(minutes * 60 * fps)
    wall = np.full((720, 1280, 3), (168, 160, 150), np.uint8)
    cv2.rectangle(wall, (60, 80), (300, 700), (120, 100, 80), -1)
    with VideoWriter(path, fps, preset="ultrafast", crf=20) as writer:
        for i in range(n):
            frame = wall.copy()
            tile = cv2.resize(face[i % len(face)], (512, 512), interpolation=cv2.INTER_LINEAR)
            x = int(384 + 40 * np.sin(i / 90))
            frame[104:616, x:x + 512] = tile
            writer.write(frame)
    return n


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def run_prepare(manifest: Path, out: Path, crop: str) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "unveil", "prepare", str(manifest), "--out", str(out), "--crop", crop, "--quiet"]
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"prepare failed: {stderr}")
    return time.perf_counter() - start, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--keep", type=Path, help="Keep the video and outputs in this folder.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="unveil-bench-"))
    video = folder / "long720p.mp4"
    if not video.exists():
        start = time.perf_counter()
        n = make_video(video, args.minutes)
        print(f"made {video.name}: {n} frames 1280x720 in {time.perf_counter() - start:.0f} s")
    manifest = save_manifest(Manifest(recordings=[Recording(id="long", subject="S01", session="1",
                                                            condition="normal", task="emotion",
                                                            media=video.name)]), folder / "manifest.yaml")
    start, frames = time.perf_counter(), 0
    for _ in read_frames(video):
        frames += 1
    decode_fps = frames / (time.perf_counter() - start)
    print(f"reference: PyAV decoding all {frames} frames to RGB arrays: {decode_fps:.0f} frames/s")
    for crop in ("fixed", "track"):
        seconds, peak = run_prepare(manifest, folder / f"prepared-{crop}", crop)
        print(f"prepare --crop {crop}: {frames / seconds:.0f} frames/s ({frames / seconds / decode_fps:.2f}x the "
              f"reference), peak RSS of the process tree {peak / 2**20:.0f} MiB (limit 1024 MiB)")


if __name__ == "__main__":
    main()
