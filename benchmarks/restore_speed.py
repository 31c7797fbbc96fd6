"""Speed of `unveil restore` on a 720p video against the reference CycleGAN code's way of testing (one frame at a
time through G_A: batch 1), run in this process on the same file, model and face box.

Both decode with PyAV, cut the same face box, run the same generator (random weights: speed does not depend on
them), paste back with the same feathered edge and encode H.264; the reference loop does it frame by frame and
blends the whole frame, as a script would.
The outputs are compared pixel by pixel (batching may change float rounding, not the picture). Restore with
``--composite difference`` (no counterpart in the reference) is timed too.

    python benchmarks/restore_speed.py [--seconds 10] [--model cpu|paper] [--batch-size N] [--device auto|cpu|cuda]
                                       [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from unveil.data.faces import Box, CropTransform
from unveil.data.video import VideoWriter, probe, read_frames
from unveil.devices import select_device
from unveil.methods.cyclegan import CPU_PRESET, PAPER_PRESET, CycleGAN, CycleGANConfig
from unveil.methods.registry import load_restorer
from unveil.restore import restore
from unveil.train.checkpoint import save_checkpoint

from prepare_memory import make_video  # the same synthetic 720p video (a face drifting over a wall)

FACE_BOX = (384.0, 104.0, 552.0, 552.0)  # x, y, side: covers the face's 512 px tile and its drift


def make_checkpoint(path: Path, preset: dict, size: int) -> Path:
    """A CycleGAN checkpoint as training writes it (method, config, face size), with untrained weights."""
    config = CycleGANConfig(**preset["model"])
    model = CycleGAN(config)
    meta = {"method": "cyclegan", "config": {"model": config.model_dump(mode="json"), "crop_size": size},
            "outputs": {"face_size": size}}
    return save_checkpoint(path, {f"net/{k}": v for k, v in model.state_dict().items()}, meta)


def paste_whole_frame(frame: np.ndarray, crop: np.ndarray, transform: CropTransform, feather: float = 0.06
                      ) -> np.ndarray:
    """The plain way to paste a crop back with a feathered seam: warp crop and seam weight over the whole frame
    and blend every pixel (the same arithmetic as unveil's paste, which blends only the box's footprint)."""
    h, w = frame.shape[:2]
    inverse = cv2.invertAffineTransform(transform.matrix)
    back = cv2.warpAffine(crop, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    weight = np.zeros((transform.size, transform.size), np.float32)
    edge = max(1, int(round(feather * transform.size)))
    weight[edge:-edge, edge:-edge] = 1.0
    weight = cv2.GaussianBlur(weight, (0, 0), edge / 2) if edge > 1 else weight
    alpha = cv2.warpAffine(weight, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    return np.clip(np.rint(frame.astype(np.float32) * (1 - alpha) + back.astype(np.float32) * alpha), 0, 255
                   ).astype(np.uint8)


@torch.no_grad()
def reference_loop(checkpoint: Path, source: Path, target: Path, device: str) -> int:
    """Frame by frame, batch 1, as the reference code's test.py runs a generator, pasted back whole-frame."""
    restorer = load_restorer(checkpoint, device=device)
    transform = CropTransform(Box(*FACE_BOX[:2], FACE_BOX[2], FACE_BOX[2]), restorer.size)
    frames = 0
    with VideoWriter(target, probe(source).fps, preset="veryfast") as writer:
        for frame in read_frames(source):
            crop = transform.crop(frame.image)
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().to(restorer.device) / 127.5 - 1.0
            y = restorer.generator(x)[0].clamp(-1, 1).add(1.0).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
            writer.write(paste_whole_frame(frame.image, y, transform))
            frames += 1
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of the 30 fps test video.")
    parser.add_argument("--model", choices=["cpu", "paper"], default="cpu",
                        help="cpu: the CPU preset's generator at 128 px; paper: ResNet-9, ngf 64, at 256 px.")
    parser.add_argument("--batch-size", type=int, default=8, help="Frames per forward pass (restore's default: 8).")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="Where both loops run the generator (auto: CUDA when PyTorch sees it).")
    parser.add_argument("--keep", type=Path, help="Keep the files in this folder.")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "720p.mp4"
        n = make_video(source, args.seconds / 60)
        preset, size = (CPU_PRESET, 128) if args.model == "cpu" else (PAPER_PRESET, 256)
        checkpoint = make_checkpoint(folder / "model.safetensors", preset, size)
        print(f"{n} frames of 1280x720, face box {FACE_BOX[2]:.0f} px -> {size} px, {args.model} generator, "
              f"{torch.get_num_threads()} threads, device {select_device(args.device)}")

        started = time.perf_counter()
        reference_loop(checkpoint, source, folder / "reference.mp4", args.device)
        reference = time.perf_counter() - started
        started = time.perf_counter()
        restore(checkpoint, source, folder / "unveil.mp4", box=(*FACE_BOX[:2], FACE_BOX[2], FACE_BOX[2]),
                batch_size=args.batch_size, device=args.device, progress=False)
        ours = time.perf_counter() - started

        started = time.perf_counter()
        restore(checkpoint, source, folder / "composited.mp4", box=(*FACE_BOX[:2], FACE_BOX[2], FACE_BOX[2]),
                composite="difference", batch_size=args.batch_size, device=args.device, progress=False)
        composited = time.perf_counter() - started

        a = [f.image.astype(np.int16) for f in read_frames(folder / "reference.mp4")]
        b = [f.image.astype(np.int16) for f in read_frames(folder / "unveil.mp4")]
        gap = max(int(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
        print(f"reference loop (batch 1): {n / reference:7.1f} frames/s ({reference:.1f} s)")
        print(f"unveil restore (batch {args.batch_size}): {n / ours:7.1f} frames/s ({ours:.1f} s)   "
              f"{reference / ours:.2f}x the reference; largest pixel difference {gap} of 255")
        print(f"unveil restore --composite difference: {n / composited:7.1f} frames/s ({composited:.1f} s; the "
              f"reference has no compositing)")


if __name__ == "__main__":
    main()
