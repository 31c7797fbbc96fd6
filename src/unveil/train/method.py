"""What a method gives the one training loop: its networks, data, optimisers and one step; the loop does the
rest (devices, AMP, data parallelism, accumulation, schedules, checkpoints, resume, logging).

A method is a class that :func:`make_method` knows under its ``TrainConfig.method`` name; it is built from the
run's :class:`~unveil.train.loop.TrainConfig`, the prepared ``samples.parquet`` rows and a seed. CycleGAN and
the AU / emotion classifier are two; pix2pix, the de-occluder and the expression manipulator plug in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from unveil.train.loop import TrainConfig

Backward = Callable[[torch.Tensor], None]  # the loop's scaled, accumulation-aware backward pass
Autocast = Callable[[], Any]  # a context manager: mixed precision where the loop enables it
Batches = Iterable[dict[str, torch.Tensor]]  # validation batches, already on the method's device


class Method(Protocol):
    """One trainable method. Batches are dicts of tensors (strings, e.g. paths, are dropped by the loop)."""

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

    def train_step(self, batch: dict[str, torch.Tensor], backward: Backward, autocast: Autocast
                   ) -> dict[str, torch.Tensor]:
        """Forward one batch and call ``backward`` on every loss to minimise; the loss values to log."""

    def validate(self, batches: Batches) -> dict[str, float]:
        """Values to report over the whole validation split (called in eval mode, without gradients)."""

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor] | None:
        """Image rows (each a batch in [-1, 1]) for the per-epoch grid of fixed samples; None: no grid."""

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors beyond the networks that an exact resume needs (e.g. GAN image pools)."""

    def load_extra_state(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        """Restore :meth:`extra_state`."""


def make_method(config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> Method:
    """The method ``config.method`` names, over the prepared rows ``table`` whose images are under ``root``."""
    from unveil.methods.classifier import ClassifierMethod
    from unveil.methods.cyclegan import CycleGANMethod

    methods: dict[str, Callable[..., Method]] = {"cyclegan": CycleGANMethod, "classifier": ClassifierMethod}
    return methods[config.method](config, table, root, seed)


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
