"""A small U-Net that predicts where an occluder hides the face (seed 003's "automatic masks"; the mask channel of
mask-aware restorers). Fully convolutional, group-normalised (an image's mask never depends on the others in its
batch), any input size (padded to a multiple of 8 inside)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(math.gcd(8, cout), cout), nn.LeakyReLU(0.2, inplace=True))


class OcclusionSegmenter(nn.Module):
    """RGB in [-1, 1] -> occluder logits (1 channel; sigmoid > 0.5 = hidden). ``width`` channels at full
    resolution, doubling over three stride-2 stages (width 16: 0.44 M parameters; a test checks)."""

    def __init__(self, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(in_channels, w), _conv(w, w))
        self.down = nn.ModuleList([nn.Sequential(_conv(w * 2**i, w * 2 ** (i + 1), 2), _conv(w * 2 ** (i + 1),
                                                                                             w * 2 ** (i + 1)))
                                   for i in range(3)])
        self.up = nn.ModuleList([_conv(w * 2 ** (i + 1) + w * 2**i, w * 2**i) for i in reversed(range(3))])
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % 8, (-width) % 8
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = [self.stem(x)]
        for stage in self.down:
            skips.append(stage(skips[-1]))
        h = skips.pop()
        for stage in self.up:
            skip = skips.pop()
            up = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = stage(torch.cat([up, skip], 1))
        return self.head(h)[..., :height, :width]


def grow_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """``mask`` (N, 1, H, W) in [0, 1] dilated by ``pixels`` (a square neighbourhood): an occluder's colour bleeds
    a few pixels past its exact outline in compressed video."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(mask, 2 * pixels + 1, stride=1, padding=pixels)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (thin cables are a few pixels: Dice keeps them from being ignored)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target)
    p = torch.sigmoid(logits.float())
    dice = 1 - (2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


@torch.no_grad()
def occluder_probabilities(network: nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray:
    """Float32 (H, W) in [0, 1]: how sure ``network`` is that each pixel of ``image`` (RGB uint8, at the scale the
    network learnt faces at) is hidden."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
    return torch.sigmoid(network(x.to(device)).float())[0, 0].cpu().numpy()
