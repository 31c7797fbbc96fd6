"""The Expression Manipulator's networks (Ling et al., ECCV 2020; seed 002): a U-Net generator conditioned on the
relative AU vector ``c = target - source`` at its bottleneck and at three multi-scale fusion (MSF) units, and a
discriminator with a critic head (WGAN-GP) and an AU-regression head.

Generator at size S (a multiple of 16; 128 for faces, 96 for the MNIST grid): a 7x7 stem (64 channels at the paper's
``ngf`` 64), four 4x4 stride-2 convolutions (128, 256, 512, 512; S/16 at the bottleneck), instance norm and LeakyReLU;
the
bottleneck takes the tiled ``c``. Fusion units at S/8, S/4 and S/2 each take the encoder feature of their scale, the
previous unit's (or the bottleneck's) output and the tiled ``c``: a high- and a low-resolution branch exchange
features (each adds the other, resampled), then parallel 3x3 and 5x5 convolutions mix them. The decoder upsamples
and concatenates each fusion output (its skip). Output: tanh colours, or with ``attention`` GANimation's
``A * x + (1 - A) * C`` (A: a sigmoid map, 1 keeps the input pixel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def encoder_widths(ngf: int = 64) -> tuple[int, ...]:
    """Channels of the stem and the four stride-2 stages (64, 128, 256, 512, 512 at the paper's ngf 64)."""
    return ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1,
                                   bias=False),
                         nn.InstanceNorm2d(cout, affine=True), nn.LeakyReLU(0.2, inplace=True))


def tiled(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The condition vector ``(n, k)`` as ``(n, k, h, w)`` maps the size of ``like``."""
    return c[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class FusionUnit(nn.Module):
    """One MSF unit: high-resolution branch (the encoder feature and ``c``), low-resolution branch (the previous
    unit's output and ``c``), a two-way exchange, then parallel 3x3 and 5x5 convolutions."""

    def __init__(self, channels: int, low_channels: int, n_cond: int) -> None:
        super().__init__()
        self.high = _conv(channels + n_cond, channels, 3)
        self.low = _conv(low_channels + n_cond, channels, 3)
        self.down = nn.Conv2d(channels, channels, 4, 2, 1)
        self.k3 = _conv(channels, channels // 2, 3)
        self.k5 = _conv(channels, channels - channels // 2, 5)

    def forward(self, skip: torch.Tensor, low: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        high = self.high(torch.cat([skip, tiled(c, skip)], 1))
        low = self.low(torch.cat([low, tiled(c, low)], 1))
        high, low = high + F.interpolate(low, size=high.shape[-2:], mode="nearest"), low + self.down(high)
        merged = high + F.interpolate(low, size=high.shape[-2:], mode="nearest")
        return torch.cat([self.k3(merged), self.k5(merged)], 1)


class ManipulatorGenerator(nn.Module):
    """``G(x, c)``: ``x`` images in [-1, 1] (n, channels, S, S), ``c`` relative AUs (n, n_aus)."""

    def __init__(self, n_aus: int, channels: int = 3, ngf: int = 64, attention: bool = False,
                 bottleneck_blocks: int = 2) -> None:
        super().__init__()
        self.n_aus, self.attention = n_aus, attention
        e = encoder_widths(ngf)
        self.stem = _conv(channels, e[0], 7)
        self.downs = nn.ModuleList(_conv(e[i], e[i + 1], 4, 2) for i in range(4))
        self.bottleneck = nn.Sequential(_conv(e[4] + n_aus, e[4], 3),
                                        *[_conv(e[4], e[4], 3) for _ in range(bottleneck_blocks - 1)])
        # fusion at S/8 (encoder 512), S/4 (256), S/2 (128); each one's low input is the coarser one's output
        self.fusions = nn.ModuleList([FusionUnit(e[3], e[4], n_aus), FusionUnit(e[2], e[3], n_aus),
                                      FusionUnit(e[1], e[2], n_aus)])
        ups, cin = [], e[4]
        for skip in (e[3], e[2], e[1]):
            ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, skip, 3)))
            cin = 2 * skip  # the upsampled feature and the fusion output
        self.ups = nn.ModuleList(ups)
        self.last_up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, e[0], 3))
        self.color = nn.Sequential(nn.Conv2d(e[0] * 2, channels, 7, padding=3), nn.Tanh())
        self.mask = nn.Sequential(nn.Conv2d(e[0] * 2, 1, 7, padding=3), nn.Sigmoid()) if attention else None

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.parts(x, c)[0]

    def parts(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output and, with attention, the map A (1 keeps the input pixel)."""
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError(f"the manipulator takes sides that are multiples of 16, not {tuple(x.shape[-2:])}")
        features = [self.stem(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        h = self.bottleneck(torch.cat([features[4], tiled(c, features[4])], 1))
        low = h
        for fusion, up, skip in zip(self.fusions, self.ups, (features[3], features[2], features[1]), strict=True):
            fused = fusion(skip, low, c)
            h = torch.cat([up(h), fused], 1)
            low = fused
        h = torch.cat([self.last_up(h), features[0]], 1)
        color = self.color(h)
        if self.mask is None:
            return color, None
        attention = self.mask(h)
        return attention * x + (1 - attention) * color, attention


class ManipulatorDiscriminator(nn.Module):
    """Strided 4x4 convolutions with LeakyReLU (no normalisation: WGAN-GP) down to S/64 (or 2 px), then a 3x3 critic
    map and an AU regression over the whole remaining map (GANimation's and the EM's two heads)."""

    def __init__(self, n_aus: int, size: int, channels: int = 3, ndf: int = 64, max_channels: int = 1024) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, side, width = channels, size, ndf
        while side > 2 and len(layers) < 12:  # six stages at most (128 px -> 2 px)
            layers += [nn.Conv2d(cin, width, 4, 2, 1), nn.LeakyReLU(0.01, inplace=True)]
            cin, side, width = width, side // 2, min(width * 2, max_channels)
        self.body = nn.Sequential(*layers)
        self.critic = nn.Conv2d(cin, 1, 3, padding=1, bias=False)
        self.aus = nn.Conv2d(cin, n_aus, side, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic scores (n, 1, s, s) and AU estimates (n, n_aus)."""
        h = self.body(x)
        return self.critic(h), self.aus(h).flatten(1)
