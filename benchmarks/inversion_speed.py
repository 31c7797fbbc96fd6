"""Speed of StyleGAN2 inversion (``unveil inpaint``, the stylegan2 restorer) on this machine: seconds per projector
step and per image (1,000 steps) at 128 px, for the CPU-sized generator (width 64, the ``cpu`` preset's) and for
config F (width 512, channel multiplier 2); and the ratio of unveil's modulated convolution (modulation on the
activations, plain batched convolutions) to the reference port's (per-image weights in one grouped convolution),
run in the same process on the same weights.

Timing does not depend on what the weights are, so the generators are random.

    python benchmarks/inversion_speed.py [--size 128] [--steps 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import torch
import torch.nn.functional as F

from unveil.methods.inversion import Projector, ProjectorConfig
from unveil.nets.stylegan2 import Generator, ModulatedConv2d


def grouped_forward(self: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The reference port's fused modulated convolution: each image's own modulated, demodulated weights, the
    batch as groups of one grouped convolution."""
    batch, channels, height, width = x.shape
    k = self.kernel_size
    s = self.modulation(style).view(batch, 1, channels, 1, 1)
    weight = self.scale * self.weight * s
    if self.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum((2, 3, 4)) + 1e-8).view(batch, self.out_channels, 1, 1, 1)
    x = x.reshape(1, batch * channels, height, width)
    if self.upsample:
        weight = weight.transpose(1, 2).reshape(batch * channels, self.out_channels, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
        return self.blur(out.reshape(batch, self.out_channels, *out.shape[2:]))
    out = F.conv2d(x, weight.reshape(batch * self.out_channels, channels, k, k), padding=self.padding, groups=batch)
    return out.reshape(batch, self.out_channels, *out.shape[2:])


def seconds_per_step(generator: Generator, steps: int, device: torch.device, batch: int = 1) -> float:
    """A projection of ``batch`` images for ``steps`` steps (pixels only; the perceptual net is timed apart)."""
    config = ProjectorConfig(steps=steps, perceptual="none", n_mean_latent=1000)
    projector = Projector(generator, config, None, device, progress=False)
    target = torch.rand(batch, 3, generator.size, generator.size, device=device) * 2 - 1
    hidden = torch.zeros(batch, 1, generator.size, generator.size, device=device)
    hidden[..., generator.size // 2:, generator.size // 4: 3 * generator.size // 4] = 1
    projector.project(target, hidden, steps=2)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    projector.project(target, hidden)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="Timed steps per setting.")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"{torch.get_num_threads()} threads, {args.size} px, {args.steps} timed steps, device {device}")
    print(f"{'generator':34s} {'M params':>8s} {'s/step':>8s} {'s/image':>8s} {'ref s/step':>10s} {'speed-up':>8s}")
    for name, kwargs in (("cpu preset (width 64, style 256)", {"width": 64, "style_dim": 256, "n_mlp": 4}),
                         ("config F (width 512, multiplier 2)", {"channel_multiplier": 2})):
        torch.manual_seed(0)
        generator = Generator(args.size, **kwargs).to(device)
        ours = seconds_per_step(generator, args.steps, device)
        with mock.patch.object(ModulatedConv2d, "forward", grouped_forward):
            reference = seconds_per_step(generator, args.steps, device)
        params = sum(p.numel() for p in generator.parameters()) / 1e6
        print(f"{name:34s} {params:8.2f} {ours:8.3f} {ours * 1000:8.0f} {reference:10.3f} {reference / ours:7.2f}x")


if __name__ == "__main__":
    main()
