"""StyleGAN2 (Karras et al., CVPR 2020), config F, in the module layout of the widely used PyTorch port
(rosinality/stylegan2-pytorch): the same parameter names and shapes, so its released ``g_ema`` weights load
as they are (:mod:`unveil.methods.stylegan2` converts them). Written in plain PyTorch (no custom CUDA kernels):
the resampling filters are depthwise convolutions (:func:`upfirdn2d`), so it runs on the CPU, on CUDA and
under AMP alike.

The generator: an 8-layer mapping network (z -> w, learning-rate multiplier 0.01) and a synthesis network
from a learned 4x4 constant, with weight-modulated and demodulated 3x3 convolutions, per-layer noise inputs
and skip connections through ``to_rgb`` layers; it reads one w per layer, ``n_latent = 2 * log2(size) - 2``
of them (the W+ space latent inversion searches). The discriminator: residual blocks with blurred
down-sampling, a minibatch standard-deviation feature, two linear layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unveil.nets.layers import wide

BLUR_KERNEL = (1, 3, 3, 1)


def base_channels(channel_multiplier: int = 2, width: int = 512) -> dict[int, int]:
    """Feature maps per resolution (config F: ``width`` 512 up to 32 px, then halving, scaled by the multiplier);
    a smaller ``width`` scales every resolution alike (CPU-sized models)."""
    m = channel_multiplier
    full = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * m, 128: 128 * m, 256: 64 * m, 512: 32 * m, 1024: 16 * m}
    return {res: max(1, c * width // 512) for res, c in full.items()}


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """A separable 2-D low-pass filter from 1-D taps, normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None] if k.ndim == 1 else k
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
              ) -> torch.Tensor:
    """Up-sample by zero insertion, pad (negative crops), filter with ``kernel``, down-sample by striding: the
    resampling primitive of StyleGAN2, here as one depthwise convolution per call."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1)).reshape(n, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = torch.flip(kernel, (0, 1)).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


class Blur(nn.Module):
    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        kernel = make_kernel(taps) * upsample_factor ** 2
        self.register_buffer("kernel", kernel)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x up-sampling with the blur filter (the skip path between ``to_rgb`` layers)."""

    def __init__(self, taps: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2,
                     scale: float = math.sqrt(2)) -> torch.Tensor:
    """Bias, leaky ReLU and the gain that keeps the activations' magnitude (sqrt 2)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.to(x.dtype).view(shape), negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate: weights drawn N(0, 1) / lr_mul and scaled at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = 1 / math.sqrt(in_dim) * lr_mul
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """A convolution whose weights each image's style scales per input channel (modulation) and renormalises
    per output channel (demodulation), so every image gets its own weights."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Modulation on the activations, one shared weight, demodulation on the output: the same result as
        per-image modulated weights (the reference's grouped convolution), as plain batched convolutions."""
        batch = x.shape[0]
        style = self.modulation(style)  # (n, in)
        weight = self.scale * self.weight[0]  # (out, in, k, k)
        x = x * style.to(x.dtype)[:, :, None, None]
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            out = self.blur(out)
        else:
            out = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            demod = torch.rsqrt(wide(style).pow(2) @ wide(weight).pow(2).sum((2, 3)).t() + 1e-8)  # (n, out)
            out = out * demod.to(out.dtype).view(batch, self.out_channels, 1, 1)
        return out


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise with a learned per-layer strength (fresh noise unless given)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            b, _, h, w = image.shape
            noise = image.new_empty(b, 1, h, w).normal_()
        return image + self.weight.to(image.dtype) * noise.to(image.dtype)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, upsample: bool = False,
                 blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias.to(x.dtype)
        return out if skip is None else out + self.upsample(skip)


class Generator(nn.Module):
    """StyleGAN2's generator at ``size`` (a power of two, 8 to 1024): ``mapping`` z -> w, ``synthesis`` W+ -> image
    in [-1, 1] (about), and ``forward`` for training (style mixing, truncation)."""

    def __init__(self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 lr_mlp: float = 0.01, blur_kernel: Sequence[float] = BLUR_KERNEL, width: int = 512) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        if 2 ** log_size != size or not 8 <= size <= 1024:
            raise ValueError(f"StyleGAN2 sizes are powers of two from 8 to 1024, not {size}")
        self.size, self.style_dim, self.log_size = size, style_dim, log_size
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True)
                                                  for _ in range(n_mlp)])
        channels = base_channels(channel_multiplier, width)
        self.channels = channels
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.num_layers = (log_size - 2) * 2 + 1
        self.n_latent = log_size * 2 - 2
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept for the reference layout
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer in range(self.num_layers):
            res = (layer + 5) // 2
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, 2 ** res, 2 ** res))
        in_channels = channels[4]
        for i in range(3, log_size + 1):
            out_channels = channels[2 ** i]
            self.convs.append(StyledConv(in_channels, out_channels, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channels, out_channels, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channels, style_dim))
            in_channels = out_channels

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z (n, style_dim) -> w (n, style_dim)."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 10_000, generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
        """The mean w of ``n`` random z and the root-mean-square distance of the w around it (the projector's
        start and the scale of its latent noise)."""
        z = torch.randn(n, self.style_dim, generator=generator).to(self.input.input.device)  # drawn on the CPU
        w = torch.cat([self.mapping(part) for part in z.split(1000)])
        mean = w.mean(0, keepdim=True)
        return mean, float(((w - mean).pow(2).sum() / n).sqrt())

    def make_noise(self, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh noise maps, one per layer (what inversion optimises besides the latents)."""
        device = self.input.input.device
        return [torch.randn(1, 1, 2 ** ((layer + 5) // 2), 2 ** ((layer + 5) // 2), device=device,
                            generator=generator) for layer in range(self.num_layers)]

    def fixed_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{layer}") for layer in range(self.num_layers)]

    def synthesis(self, latent: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """W+ latents (n, n_latent, style_dim) -> images (n, 3, size, size); ``noise`` per layer (None: fresh)."""
        noise = list(noise) if noise is not None else [None] * self.num_layers
        out = self.input(latent.shape[0])
        out = self.conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for up, conv, noise_up, noise_conv, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2],
                                                           noise[2::2], self.to_rgbs, strict=True):
            out = conv(up(out, latent[:, i], noise_up), latent[:, i + 1], noise_conv)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip

    def broadcast(self, w: torch.Tensor, mix: torch.Tensor | None = None, crossover: int | None = None
                  ) -> torch.Tensor:
        """w (n, d) -> W+ (n, n_latent, d); with ``mix``, layers from ``crossover`` on take ``mix`` (style mixing)."""
        latent = w[:, None].expand(-1, self.n_latent, -1)
        if mix is None or crossover is None:
            return latent
        return torch.cat([latent[:, :crossover], mix[:, None].expand(-1, self.n_latent - crossover, -1)], 1)

    def forward(self, z: torch.Tensor, mix_z: torch.Tensor | None = None, crossover: int | None = None,
                truncation: float = 1.0, truncation_latent: torch.Tensor | None = None,
                noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Images from z (and a second z mixed in from layer ``crossover``), truncated towards
        ``truncation_latent`` when ``truncation`` < 1."""
        w = self.mapping(z)
        mix = self.mapping(mix_z) if mix_z is not None else None
        if truncation < 1 and truncation_latent is not None:
            w = truncation_latent + truncation * (w - truncation_latent)
            mix = None if mix is None else truncation_latent + truncation * (mix - truncation_latent)
        return self.synthesis(self.broadcast(w, mix, crossover), noise)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class ConvLayer(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = BLUR_KERNEL, bias: bool = True, activate: bool = True) -> None:
        layers: list[nn.Module] = []
        stride, padding = 1, kernel_size // 2
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False, bias=False,
                              blur_kernel=blur_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """StyleGAN2's residual discriminator; ``features(x)`` returns the activations after each block (usable as a
    face-trained perceptual space when no VGG weights are at hand)."""

    def __init__(self, size: int, channel_multiplier: int = 2, blur_kernel: Sequence[float] = BLUR_KERNEL,
                 stddev_group: int = 4, width: int = 512) -> None:
        super().__init__()
        channels = base_channels(channel_multiplier, width)
        log_size = int(math.log2(size))
        blocks: list[nn.Module] = [ConvLayer(3, channels[size], 1)]
        in_channels = channels[size]
        for i in range(log_size, 2, -1):
            blocks.append(ResBlock(in_channels, channels[2 ** (i - 1)], blur_kernel))
            in_channels = channels[2 ** (i - 1)]
        self.convs = nn.Sequential(*blocks)
        self.stddev_group = stddev_group
        self.final_conv = ConvLayer(in_channels + 1, channels[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * 4 * 4, channels[4], activation=True),
                                          EqualLinear(channels[4], 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, found = x, []
        for block in self.convs:
            out = block(out)
            found.append(out)
        return found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(x)
        batch, c, h, w = out.shape
        group = min(batch, self.stddev_group)
        while batch % group:
            group -= 1
        std = wide(out).view(group, -1, 1, c, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean((2, 3, 4), keepdim=True).squeeze(2)
        out = torch.cat([out, std.to(out.dtype).repeat(group, 1, h, w)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.reshape(batch, -1))
