"""Generators of the reference code: the ResNet generator (Johnson et al. style: 7x7 stem, two stride-2
down-samplings, residual blocks, two up-samplings, 7x7 head with tanh) and the U-Net (Isola et al.)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from unveil.errors import UnveilError
from unveil.nets.layers import InitName, NormName, get_norm_layer, init_weights, uses_bias

PaddingName = Literal["reflect", "replicate", "zero"]
GeneratorName = Literal["resnet_9blocks", "resnet_6blocks", "unet_64", "unet_128", "unet_256"]


def _padding(padding_type: PaddingName | str, amount: int) -> tuple[list[nn.Module], int]:
    """Explicit padding layers and the padding left for the convolution itself."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if padding_type == "zero":
        return [], amount
    raise UnveilError(f"Unknown padding '{padding_type}'; choose reflect, replicate or zero.")


class ResnetBlock(nn.Module):
    """x + conv-norm-relu-(dropout)-conv-norm(x), both convolutions 3x3 at constant width."""

    def __init__(self, dim: int, padding_type: PaddingName, norm_layer: Callable[[int], nn.Module],
                 use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(2):
            pad, conv_pad = _padding(padding_type, 1)
            layers += [*pad, nn.Conv2d(dim, dim, 3, padding=conv_pad, bias=use_bias), norm_layer(dim)]
            if k == 0:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN generator: ``n_blocks`` residual blocks between two down- and two up-sampling stages.

    Inputs whose sides are multiples of 4 come out at the same size.
    """

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64,
                 norm_layer: Callable[[int], nn.Module] = get_norm_layer("instance"), use_dropout: bool = False,
                 n_blocks: int = 9, padding_type: PaddingName = "reflect") -> None:
        super().__init__()
        if n_blocks < 0:
            raise UnveilError(f"n_blocks must be at least 0, not {n_blocks}.")
        bias = uses_bias(norm_layer)
        pad, conv_pad = _padding(padding_type, 3)
        layers: list[nn.Module] = [*pad, nn.Conv2d(input_nc, ngf, 7, padding=conv_pad, bias=bias),
                                   norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):  # down-sampling
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, padding_type, norm_layer, use_dropout, bias) for _ in range(n_blocks)]
        for i in range(2):  # up-sampling
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       norm_layer(ngf * mult // 2), nn.ReLU(True)]
        pad, conv_pad = _padding(padding_type, 3)
        layers += [*pad, nn.Conv2d(ngf, output_nc, 7, padding=conv_pad), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipBlock(nn.Module):
    """One U-Net level: down-convolution, the inner levels, up-convolution, and the skip connection."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm_layer: Callable[[int], nn.Module] = get_norm_layer("batch"), use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm_layer)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        down_relu, up_relu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            up = [up_relu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1), nn.Tanh()]
            layers = [down_conv, submodule, *up]
        elif innermost:
            up = [up_relu, nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias),
                  norm_layer(outer_nc)]
            layers = [down_relu, down_conv, *up]
        else:
            up = [up_relu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias),
                  norm_layer(outer_nc)]
            layers = [down_relu, down_conv, norm_layer(inner_nc), submodule, *up]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*[m for m in layers if m is not None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` halvings (7 for 128 px, 8 for 256 px inputs), widths capped at 8 x ngf."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64,
                 norm_layer: Callable[[int], nn.Module] = get_norm_layer("batch"), use_dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise UnveilError(f"A U-Net needs at least 5 down-samplings, not {num_downs}.")
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm_layer=norm_layer)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer, use_dropout=use_dropout)
        for outer, inner in ((4, 8), (2, 4), (1, 2)):
            block = UnetSkipBlock(ngf * outer, ngf * inner, submodule=block, norm_layer=norm_layer)
        self.model = UnetSkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                   norm_layer=norm_layer)
        self.num_downs = num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_downs
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise UnveilError(f"This U-Net needs image sides that are multiples of {factor}, not {tuple(x.shape[-2:])}.")
        return self.model(x)


def define_G(input_nc: int = 3, output_nc: int = 3, ngf: int = 64, netG: GeneratorName | str = "resnet_9blocks",
             norm: NormName | str = "instance", use_dropout: bool = False, init_type: InitName | str = "normal",
             init_gain: float = 0.02) -> nn.Module:
    """A generator by the reference code's name, initialised. Device placement is the training loop's job."""
    norm_layer = get_norm_layer(norm)
    if netG == "resnet_9blocks":
        net: nn.Module = ResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks=9)
    elif netG == "resnet_6blocks":
        net = ResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks=6)
    elif netG == "unet_64":  # not in the reference: six halvings, for 64 px faces
        net = UnetGenerator(input_nc, output_nc, 6, ngf, norm_layer, use_dropout)
    elif netG == "unet_128":
        net = UnetGenerator(input_nc, output_nc, 7, ngf, norm_layer, use_dropout)
    elif netG == "unet_256":
        net = UnetGenerator(input_nc, output_nc, 8, ngf, norm_layer, use_dropout)
    else:
        raise UnveilError(f"Unknown generator '{netG}'; choose resnet_9blocks, resnet_6blocks, unet_64, unet_128 or unet_256.")
    return init_weights(net, init_type, init_gain)
