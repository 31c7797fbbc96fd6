"""Normalisation choices and weight initialisation with the reference implementation's names and meanings, and
the half-precision widening that losses and statistics share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from unveil.errors import UnveilError

NormName = Literal["instance", "batch", "none"]
InitName = Literal["normal", "xavier", "kaiming", "orthogonal"]


def wide(t: torch.Tensor) -> torch.Tensor:
    """Half-precision values (under AMP) as float32 for losses, penalties and sums of squares that could overflow;
    other dtypes as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Identity(nn.Module):
    """A layer that returns its input (for ``norm="none"``)."""

    def forward(self, x):  # noqa: ANN001, ANN201 - nn.Module signature
        return x


def get_norm_layer(norm: NormName | str = "instance") -> Callable[[int], nn.Module]:
    """A constructor ``f(channels)`` for the normalisation layer.

    ``batch``: learnable scale and shift, running statistics. ``instance``: neither (as the reference code,
    so convolutions before it keep their bias). ``none``: identity.
    """
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: Identity()
    raise UnveilError(f"Unknown normalisation '{norm}'; choose instance, batch or none.")


def uses_bias(norm_layer: Callable[[int], nn.Module]) -> bool:
    """Convolutions need their own bias unless a batch norm with its learnable shift follows them."""
    if isinstance(norm_layer, functools.partial):
        return norm_layer.func is not nn.BatchNorm2d
    return True


def init_weights(net: nn.Module, init_type: InitName | str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise convolution and linear weights (biases 0) and batch-norm scales N(1, gain), in place.

    ``normal``: N(0, gain); ``xavier``: Xavier-normal with gain; ``kaiming``: Kaiming-normal (fan in);
    ``orthogonal``: orthogonal with gain. The reference code's default is normal with gain 0.02.
    """
    initialisers = {
        "normal": lambda w: nn.init.normal_(w, 0.0, init_gain),
        "xavier": lambda w: nn.init.xavier_normal_(w, gain=init_gain),
        "kaiming": lambda w: nn.init.kaiming_normal_(w, a=0, mode="fan_in"),
        "orthogonal": lambda w: nn.init.orthogonal_(w, gain=init_gain),
    }
    if init_type not in initialisers:
        raise UnveilError(f"Unknown initialisation '{init_type}'; choose {', '.join(initialisers)}.")

    def apply(module: nn.Module) -> None:
        name = module.__class__.__name__
        if hasattr(module, "weight") and module.weight is not None and ("Conv" in name or "Linear" in name):
            initialisers[init_type](module.weight.data)
            if getattr(module, "bias", None) is not None:
                nn.init.constant_(module.bias.data, 0.0)
        elif "BatchNorm2d" in name and module.weight is not None:
            nn.init.normal_(module.weight.data, 1.0, init_gain)
            nn.init.constant_(module.bias.data, 0.0)

    net.apply(apply)
    return net


def count_parameters(net: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
