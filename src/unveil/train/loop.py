"""The training loop: CPU or CUDA, AMP on CUDA, data-parallel over processes started by ``torchrun`` (gloo on
CPU, NCCL on GPUs), gradient accumulation, seeded; safetensors checkpoints every N epochs plus ``latest``
(also every N iterations), exact resume; TensorBoard scalars, per-epoch sample grids and validation losses;
a NaN or inf loss stops the run with the last good checkpoint kept.

Data parallelism averages gradients across processes before every optimiser step (what DDP does), which
also works with GANs' alternating, partly frozen networks. Each process takes every ``world``-th sample of
one seeded permutation per epoch, so N processes with batch B see exactly the batches of one process with
batch N x B.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

from unveil.data.datasets import load_samples
from unveil.devices import select_device
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.methods.registry import get_method
from unveil.progress import progress_bar, silenced
from unveil.train.checkpoint import flatten_state, read_checkpoint, rng_state, save_checkpoint, set_rng_state, unflatten_state
from unveil.train.config import TrainConfig
from unveil.train.method import Step, active_optimizers

__all__ = ["EpochSampler", "TrainConfig", "TrainResult", "Trainer", "train", "train_per_subject"]
LATEST = "latest.safetensors"
BEST = "best.safetensors"  # with early stopping: the epoch of the best validation value


@dataclass
class TrainResult:
    """Where the run is and what it did."""

    run_dir: Path
    epochs: int  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    complete: bool = True  # False: stopped by the time limit; --resume continues


class EpochSampler(Sampler[int]):
    """One seeded permutation per epoch (the natural order without ``shuffle``); process ``rank`` of ``world``
    takes every world-th index, starting after ``skip`` of its own samples (to resume in the middle of an epoch)."""

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, skip: int = 0,
                 shuffle: bool = True) -> None:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
        order += order[: (-len(order)) % world]  # pad so every process gets as many samples
        self.indices = order[rank::world][skip:]

    def __iter__(self):  # noqa: ANN204 - Sampler protocol
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when run directly."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _deadline(config: TrainConfig) -> float | None:
    """When ``config.time_limit`` runs out counted from now (``time.monotonic()`` seconds); None without one."""
    return time.monotonic() + 60 * config.time_limit if config.time_limit else None


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    """The reference code's learning-rate policies, stepped once per epoch."""
    if config.lr_policy == "linear":
        def rule(epoch: int) -> float:  # epoch counts from 0; 1 - max(0, e + 1 - n_epochs) / (n_decay + 1)
            return 1.0 - max(0, epoch + 1 - config.n_epochs) / float(config.n_epochs_decay + 1)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
    if config.lr_policy == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_decay_iters, gamma=0.1)
    if config.lr_policy == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01,
                                                          patience=5)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.n_epochs, 1), eta_min=0)


class Trainer:
    """Runs one training (one subject, or pooled) of ``config.method`` into ``run_dir``."""

    def __init__(self, samples: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: TrainConfig,
                 progress: bool = True) -> None:
        if config.crop_size > config.load_size and config.preprocess in ("resize_and_crop", "scale_width_and_crop"):
            raise UnveilError(f"crop_size ({config.crop_size}) cannot exceed load_size ({config.load_size}).")
        self.config = config
        self.rank, self.world, local_rank = _world()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo")
        self.device = select_device(config.device, local_rank)
        self.run_dir = Path(run_dir)
        self.main = self.rank == 0
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)

        table, root = load_samples(samples)
        if config.subjects:
            table = table[table["subject"].isin(config.subjects)]
        with contextlib.nullcontext() if progress and self.main else silenced():  # e.g. landmarks of the crops
            self.method = get_method(config.method).method(config, table, root, config.seed)
        self.train_set, self.val_set = self.method.train_set, self.method.val_set
        self.model = self.method.module.to(self.device)
        if self.world > 1 and self.device.type == "cuda":  # batch statistics over all GPUs, as one big batch
            nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if self.world > 1:
            for p in self.model.parameters():
                dist.broadcast(p.data, 0)
        if config.patience and self.val_set is None:
            raise UnveilError(f"patience (early stopping) needs a validation split; the {config.method} run has none.")
        self.optimizers = self.method.optimizers()
        self.schedulers = {k: make_scheduler(o, config) for k, o in self.optimizers.items()}
        self.amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch, self.batch = 1, 0  # next epoch (1-based) and next batch within it
        self.updates = 0  # optimiser steps taken (what Method.stepping counts)
        self.sums: dict[str, float] = {}  # loss sums of the current epoch so far
        self.counts: dict[str, int] = {}  # batches that reported each loss (a GAN's G may skip some)
        self.history: list[dict[str, float]] = []

    # -- checkpoints -------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {f"net/{k}": v for k, v in self.model.state_dict().items()}
        meta: dict[str, Any] = {"method": self.method.name, "epoch": self.epoch, "batch": self.batch,
                                "updates": self.updates, "sums": self.sums, "counts": self.counts,
                                "config": self.config.model_dump(mode="json"), "outputs": self.method.describe(),
                                "history": self.history}
        meta["optimizers"] = {k: flatten_state(f"optim/{k}", o.state_dict(), tensors) for k, o in self.optimizers.items()}
        meta["schedulers"] = {k: flatten_state(f"sched/{k}", s.state_dict(), tensors)
                              for k, s in self.schedulers.items()}
        meta["scaler"] = flatten_state("scaler", self.scaler.state_dict(), tensors)
        tensors.update({f"extra/{k}": v for k, v in self.method.extra_state().items()})
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        meta["rng"] = rng_meta
        return tensors, meta

    def save(self, name: str) -> Path:
        tensors, meta = self.state()
        return save_checkpoint(self.run_dir / "checkpoints" / name, tensors, meta)

    def load(self, path: Path) -> None:
        saved = read_checkpoint(path)
        tensors, meta = saved.tensors, saved.meta
        if saved.method != self.method.name:
            raise UnveilError(f"{path} holds a '{saved.method}' run; this run trains {self.method.name}.")
        self.model.load_state_dict(saved.network_state())
        for k, o in self.optimizers.items():
            o.load_state_dict(unflatten_state(meta["optimizers"][k], tensors))
        for k, s in self.schedulers.items():
            s.load_state_dict(unflatten_state(meta["schedulers"][k], tensors))
        self.scaler.load_state_dict(unflatten_state(meta["scaler"], tensors))
        self.method.load_extra_state({k[6:]: v for k, v in tensors.items() if k.startswith("extra/")}, self.device)
        set_rng_state(tensors, meta["rng"])
        self.epoch, self.batch, self.sums, self.history = meta["epoch"], meta["batch"], meta["sums"], meta["history"]
        counts = meta.get("counts", dict.fromkeys(self.sums, self.batch))  # older checkpoints: every batch reported
        self.counts = {k: int(v) for k, v in counts.items()}
        self.updates = int(meta.get("updates", 0))

    # -- one step ----------------------------------------------------------------------------------------
    def _average_gradients(self, names: frozenset[str]) -> None:
        if self.world == 1:
            return
        for name in sorted(names):  # one order in every process (set order follows each process's hash seed)
            for group in self.optimizers[name].param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world

    def _on_device(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def step(self, batch: dict[str, Any], update: bool) -> dict[str, float]:
        """Forward and backward one batch; when ``update`` (the last batch of an accumulation), step the
        optimisers the method chose for this iteration and clear every gradient."""
        accumulate = self.config.accumulate
        active = active_optimizers(self.method, self.optimizers, self.updates)

        def backward(loss: torch.Tensor) -> None:
            self.scaler.scale(loss / accumulate).backward()

        def autocast() -> Any:
            return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)

        parts = self.method.train_step(self._on_device(batch), Step(backward, autocast, active, self.updates))
        losses = {k: float(v.detach()) for k, v in parts.items()}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise UnveilError(f"The loss {bad[0]} became {losses[bad[0]]} at epoch {self.epoch}, batch {self.batch}; "
                              f"training stopped, the last good checkpoint is in {self.run_dir / 'checkpoints'}.")
        if update:
            self._average_gradients(active)
            for name in active:  # GradScaler: step only these, then one update for the iteration
                self.scaler.step(self.optimizers[name])
            if active:
                self.scaler.update()
            for optimizer in self.optimizers.values():  # an idle optimiser's gradients must not carry over
                optimizer.zero_grad(set_to_none=True)
            self.updates += 1
        return losses

    # -- evaluation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The method's values over the validation split, prefixed ``val_``."""
        if self.val_set is None:
            return {}
        self.model.eval()
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size, shuffle=False)
        values = self.method.validate(self._on_device(batch) for batch in loader)
        self.model.train()
        return {f"val_{k}": v for k, v in values.items()}

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor | None:
        """The method's image rows for fixed validation samples as one grid (None when it has no images)."""
        import torchvision

        source = self.val_set or self.train_set
        self.model.eval()
        rows = self.method.sample_rows([source[i] for i in range(min(self.config.n_samples, len(source)))])
        self.model.train()
        if not rows:
            return None
        return torchvision.utils.make_grid(torch.cat(rows).float().cpu() * 0.5 + 0.5, nrow=len(rows[0]), padding=2)

    # -- the loop ----------------------------------------------------------------------------------------
    def _out_of_time(self, deadline: float | None) -> bool:
        """Whether the time limit is reached; every process takes rank 0's answer so all stop at one batch."""
        if deadline is None:
            return False
        late = torch.tensor([time.monotonic() >= deadline], dtype=torch.int32)
        if self.world > 1:
            dist.broadcast(late, 0)
        return bool(late.item())

    def fit(self, resume: bool = False, progress: bool = True, deadline: float | None = None) -> TrainResult:
        """Train to ``config.total_epochs``, or until ``deadline`` (``time.monotonic()`` seconds; default: now
        plus ``config.time_limit``), whichever comes first."""
        config = self.config
        if deadline is None:
            deadline = _deadline(config)
        stopped = False
        latest = self.run_dir / "checkpoints" / LATEST
        if self.main:  # a killed run may leave a temporary file behind; it never looks like a checkpoint
            for stale in (self.run_dir / "checkpoints").glob(".tmp-*"):
                stale.unlink(missing_ok=True)
        if resume and latest.is_file():
            self.load(latest)
        elif self.main:
            ensure_dir(self.run_dir / "checkpoints")
            write_text_atomic(self.run_dir / "config.yaml", config.to_yaml())
        writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        per_epoch = math.ceil(len(self.train_set) / self.world / config.batch_size)
        total = (config.total_epochs - self.epoch + 1) * per_epoch - self.batch
        with progress_bar(max(total, 0), f"train {self.run_dir.name}", progress and self.main,
                          deadline=deadline) as advance:
            while self.epoch <= config.total_epochs and not self._patience_exhausted():
                started = time.perf_counter()
                if hasattr(self.train_set, "set_epoch"):
                    self.train_set.set_epoch(self.epoch)
                sampler = EpochSampler(len(self.train_set), config.seed, self.epoch, self.rank, self.world,
                                       skip=self.batch * config.batch_size, shuffle=not config.serial_batches)
                loader = DataLoader(self.train_set, batch_size=config.batch_size, sampler=sampler,
                                    num_workers=config.num_workers, pin_memory=self.device.type == "cuda")
                for batch in loader:
                    update = (self.batch + 1) % config.accumulate == 0 or self.batch + 1 == per_epoch
                    losses = self.step(batch, update)
                    for k, v in losses.items():
                        self.sums[k] = self.sums.get(k, 0.0) + v
                        self.counts[k] = self.counts.get(k, 0) + 1
                    self.batch += 1
                    advance(1)
                    # mid-epoch stops and saves only after an optimiser step: accumulated gradients are not saved
                    if update and self.batch < per_epoch and self._out_of_time(deadline):
                        stopped = True
                        break
                    if self.main and config.save_latest_freq and self.batch % config.save_latest_freq == 0 \
                            and update and self.batch < per_epoch:
                        self.save(LATEST)
                if stopped:  # mid-epoch: 'latest' holds the position, the loss sums and every RNG
                    if self.main:
                        self.save(LATEST)
                    break
                steps = max(self.batch, 1)
                means = {k: v / self.counts.get(k, steps) for k, v in sorted(self.sums.items())}
                if self.world > 1:  # the epoch's losses over all processes, not just this one's share
                    values = torch.tensor(list(means.values()), dtype=torch.float64)
                    dist.all_reduce(values)
                    means = dict(zip(means, (values / self.world).tolist(), strict=True))
                first = next(iter(self.optimizers.values()))
                record = {"epoch": float(self.epoch), **means, **self.validate(),
                          "lr": first.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
                monitor = self.method.monitor
                for s in self.schedulers.values():
                    if config.lr_policy == "plateau":  # validation value, else the training one
                        s.step(record.get(f"val_{monitor}", record.get(monitor, 0.0)))
                    else:
                        s.step()
                self.history.append(record)
                finished = self.epoch
                self.epoch, self.batch, self.sums, self.counts = self.epoch + 1, 0, {}, {}
                if self.main:
                    self._log_epoch(writer, record, finished)
                    if finished % config.save_epoch_freq == 0 or finished == config.total_epochs:
                        self.save(f"epoch_{finished:03d}.safetensors")
                    self.save(LATEST)
                    if config.patience and self._best_epoch() == finished:
                        self.save(BEST)
                if self.epoch <= config.total_epochs and self._out_of_time(deadline):
                    stopped = True
                    break
        if writer is not None:
            writer.close()
        if self.world > 1:
            dist.barrier()
        return TrainResult(self.run_dir, self.epoch - 1, self.history, complete=not stopped)

    def _best_epoch(self) -> int | None:
        """The epoch of the lowest validation value the method monitors so far (the first of equals)."""
        key = f"val_{self.method.monitor}"
        scored = [(r[key], int(r["epoch"])) for r in self.history if key in r and math.isfinite(r[key])]
        return min(scored)[1] if scored else None

    def _patience_exhausted(self) -> bool:
        """Early stopping: ``patience`` epochs have passed since the best one (read from the history, so a resumed
        run decides as the uninterrupted one would)."""
        best = self._best_epoch() if self.config.patience else None
        return best is not None and self.epoch - 1 - best >= self.config.patience

    def _log_epoch(self, writer: Any, record: dict[str, float], epoch: int) -> None:
        import torchvision

        for k, v in record.items():
            if k != "epoch":
                writer.add_scalar(k, v, epoch)
        grid = self.sample_grid()
        if grid is not None:
            writer.add_image("samples", grid, epoch)
            with atomic_path(self.run_dir / "samples" / f"epoch_{epoch:03d}.png") as tmp:
                torchvision.utils.save_image(grid, str(tmp))
        history = self.run_dir / "history.csv"
        keys = sorted({k for r in self.history for k in r})
        with atomic_path(history) as tmp, tmp.open("w", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=keys)
            out.writeheader()
            out.writerows(self.history)


def train(samples: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: TrainConfig | None = None,
          *, resume: bool = False, progress: bool = True, deadline: float | None = None) -> TrainResult:
    """Train ``config.method`` on prepared ``samples`` into ``run_dir`` (see :class:`Trainer`)."""
    return Trainer(samples, run_dir, config or TrainConfig(), progress).fit(resume=resume, progress=progress,
                                                                           deadline=deadline)


def train_per_subject(samples: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: TrainConfig,
                      subjects: list[str] | None = None, *, resume: bool = False, progress: bool = True
                      ) -> dict[str, TrainResult]:
    """One model per subject (seed 000's choice), each in ``run_dir/<subject>``. ``subjects`` picks some, so
    that several GPUs or cluster array jobs can each take a share. ``config.time_limit`` bounds all of them
    together: a subject stopped by it is the last one trained (``complete`` False), later ones are not started."""
    table, _ = load_samples(samples)
    available = list(dict.fromkeys(table["subject"]))
    chosen = subjects or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise UnveilError(f"samples.parquet has no subject {', '.join(unknown)}; it has {', '.join(available)}.")
    deadline = _deadline(config)
    results: dict[str, TrainResult] = {}
    for subject in chosen:
        results[subject] = train(samples, Path(run_dir) / subject, config.model_copy(update={"subjects": [subject]}),
                                 resume=resume, progress=progress, deadline=deadline)
        if not results[subject].complete:
            break
    return results
