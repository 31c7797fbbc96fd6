"""What a method gives the one training loop: its networks, data, optimisers and one step; the loop does the
rest (devices, AMP, data parallelism, accumulation, schedules, checkpoints, resume, logging).

A method's class is registered in :mod:`unveil.methods.registry` (``MethodSpec.method``) and built from the run's
:class:`~unveil.train.config.TrainConfig`, the prepared ``samples.parquet`` rows and a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from unveil.train.config import TrainConfig

Backward = Callable[[torch.Tensor], None]  # the loop's scaled, accumulation-aware backward pass
Autocast = Callable[[], Any]  # a context manager: mixed precision where the loop enables it
Batches = Iterable[dict[str, torch.Tensor]]  # validation batches, already on the method's device


@dataclass(frozen=True)
class Step:
    """What the loop hands a method for one batch."""

    backward: Backward  # call on every loss to minimise
    autocast: Autocast  # wrap forward passes in it
    active: frozenset[str]  # the optimisers that step after this batch (see Method.stepping); skip the others' work
    iteration: int  # optimiser steps taken before this one (0-based), the same in every process


class Method(Protocol):
    """One trainable method. Batches are dicts of tensors (strings, e.g. paths, are dropped by the loop).

    Optional: ``stepping(iteration) -> names`` chooses which optimisers step at an iteration (default: all), e.g.
    a critic every step and the generator every fourth (WGAN-GP, the Expression Manipulator).
    """

    name: str
    module: nn.Module  # every network; its state_dict is the checkpoint's "net/" part
    monitor: str  # the validation value the plateau policy watches (e.g. "total")
    train_set: Dataset  # items are dicts; a ``set_epoch(epoch)`` method, when present, is called every epoch
    val_set: Dataset | None

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None: ...

    def describe(self) -> dict[str, Any]:
        """JSON facts the checkpoint keeps for inference beyond the config (e.g. the names of the outputs)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers; the first one's learning rate is the one logged."""

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        """Forward one batch and call ``step.backward`` on every loss to minimise; the loss values to log."""

    def validate(self, batches: Batches) -> dict[str, float]:
        """Values to report over the whole validation split (called in eval mode, without gradients)."""

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor] | None:
        """Image rows (each a batch in [-1, 1]) for the per-epoch grid of fixed samples; None: no grid."""

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors beyond the networks that an exact resume needs (e.g. GAN image pools)."""

    def load_extra_state(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        """Restore :meth:`extra_state`."""


class MethodBase:
    """Defaults for the optional parts of :class:`Method`: no validation split, no grid, nothing to resume beyond
    the networks, nothing to record for inference."""

    val_set: Dataset | None = None

    def describe(self) -> dict[str, Any]:
        return {}

    def validate(self, batches: Batches) -> dict[str, float]:
        return {}

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor] | None:
        return None

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        return None


def active_optimizers(method: Method, names: Collection[str], iteration: int) -> frozenset[str]:
    """The optimisers ``method`` steps at ``iteration``: its ``stepping`` choice, or all of them."""
    choose = getattr(method, "stepping", None)
    chosen = frozenset(choose(iteration)) if choose is not None else frozenset(names)
    unknown = chosen - set(names)
    if unknown:
        raise ValueError(f"{method.name}.stepping named unknown optimisers {sorted(unknown)}")
    return chosen


def weighted_means(batches: Batches, values: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                   size_key: str) -> dict[str, float]:
    """Means over samples of per-batch means (weighted by batch size ``len(batch[size_key])``)."""
    sums: dict[str, float] = {}
    count = 0
    for batch in batches:
        n = len(batch[size_key])
        for k, v in values(batch).items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        count += n
    return {k: v / max(count, 1) for k, v in sums.items()}
