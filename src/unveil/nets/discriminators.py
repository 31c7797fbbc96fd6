"""Discriminators of the reference code: the PatchGAN (``n_layers`` 3 sees 70x70 patches) and the 1x1
pixel discriminator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from unveil.errors import UnveilError
from unveil.nets.layers import InitName, NormName, get_norm_layer, init_weights, uses_bias

DiscriminatorName = Literal["basic", "n_layers", "pixel"]


class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convolutions, ``n_layers`` stride-2 stages (widths doubling up to 8 x ndf), a stride-1
    stage and a 1-channel output map whose every value judges one receptive field (70x70 for n_layers=3)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3,
                 norm_layer: Callable[[int], nn.Module] = get_norm_layer("batch")) -> None:
        super().__init__()
        if n_layers < 1:
            raise UnveilError(f"n_layers must be at least 1, not {n_layers}.")
        bias = uses_bias(norm_layer)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges every pixel on its own colour."""

    def __init__(self, input_nc: int, ndf: int = 64,
                 norm_layer: Callable[[int], nn.Module] = get_norm_layer("batch")) -> None:
        super().__init__()
        bias = uses_bias(norm_layer)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_layer(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def define_D(input_nc: int = 3, ndf: int = 64, netD: DiscriminatorName | str = "basic", n_layers_D: int = 3,
             norm: NormName | str = "instance", init_type: InitName | str = "normal",
             init_gain: float = 0.02) -> nn.Module:
    """A discriminator by the reference code's name (``basic`` = 70x70 PatchGAN), initialised."""
    norm_layer = get_norm_layer(norm)
    if netD == "basic":
        net: nn.Module = NLayerDiscriminator(input_nc, ndf, 3, norm_layer)
    elif netD == "n_layers":
        net = NLayerDiscriminator(input_nc, ndf, n_layers_D, norm_layer)
    elif netD == "pixel":
        net = PixelDiscriminator(input_nc, ndf, norm_layer)
    else:
        raise UnveilError(f"Unknown discriminator '{netD}'; choose basic, n_layers or pixel.")
    return init_weights(net, init_type, init_gain)
