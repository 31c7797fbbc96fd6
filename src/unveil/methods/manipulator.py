"""The Expression Manipulator (Ling et al., ECCV 2020; seed 002's data-synthesis generator): ``G(x, c)`` changes the
expression of ``x`` by the relative AU vector ``c = target - source``, so that new AU combinations (each AU alone,
say) can be made from faces that never showed them.

Training (``unveil train manipulator`` on any folder with AU labels: a prepared benchmark, a labelled photo folder,
the MNIST grid): each image's target is another training image's AU vector (picked per sample, as is the gradient
penalty's mix, so that data-parallel processes see what one process would). The critic learns with WGAN-GP (weight
10) and regresses the real images' AUs (weight 150); the generator, stepped once every ``g_every`` (4) critic steps,
meets the critic, the target AUs as the critic reads them on its output (150), reconstruction ``|G(x, 0) - x|``
(30), the cycle ``|G(G(x, c), -c) - x|`` (30) and total variation (1e-5; of the attention map with ``attention``).
Adam 1e-4, betas (0.5, 0.999). As in every GAN here, the loop steps both from one batch (the reference steps the
critic first).

Beyond the paper, ``lambda_expr`` with ``expr_signal aus`` adds seed 001's expression-consistency term to the
generator: a frozen AU classifier (``expr_judge``, an ``unveil train classifier`` checkpoint) reads each edit against
its target AUs. On small data the critic's own AU head is easily satisfied by changes no other AU model sees (a
generator trained against a network learns that network's blind spots); a second, frozen reader is another
signal (at a CPU budget it did not help: README). Judge the result with a model that was in neither loss
(``unveil experiment manipulation`` refuses the one in ``lambda_expr``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from unveil.data.datasets import Augment, LabelledDataset, au_label_columns, select, to_tensor
from unveil.errors import UnveilError
from unveil.methods.cyclegan import set_requires_grad
from unveil.methods.expression import ExpressionOptions, maybe_expression_loss
from unveil.methods.gan import gradient_penalty
from unveil.methods.registry import MethodSpec, register
from unveil.nets.layers import wide
from unveil.nets.manipulator import ManipulatorDiscriminator, ManipulatorGenerator
from unveil.train.method import MethodBase, weighted_means

if TYPE_CHECKING:
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig
    from unveil.train.method import Batches, Step


class ManipulatorConfig(ExpressionOptions):
    """Options of the Expression Manipulator (the paper's weights by default; ``lambda_expr`` with ``expr_signal
    aus`` and a classifier as ``expr_judge`` adds a frozen AU reader of the edits against their targets)."""

    expr_signal: Literal["emotion", "aus"] = Field(default="aus", description="What the frozen judge of "
                                                                              "lambda_expr reads (AUs here).")
    ngf: int = Field(default=64, ge=4, description="Generator stem channels (64, 128, 256, 512, 512 at 64).")
    ndf: int = Field(default=64, ge=4, description="Critic first-layer channels.")
    attention: bool = Field(default=False, description="GANimation's output A * x + (1 - A) * colour.")
    aus: list[str] | None = Field(default=None, description="AU columns (default: every AU column that varies).")
    train_on: dict[str, Any] = Field(default_factory=dict, description="Rows to learn from (default: all).")
    lambda_gp: float = Field(default=10.0, ge=0)
    lambda_au: float = Field(default=150.0, ge=0)
    lambda_rec: float = Field(default=30.0, ge=0)
    lambda_cycle: float = Field(default=30.0, ge=0)
    lambda_tv: float = Field(default=1e-5, ge=0)
    g_every: int = Field(default=4, ge=1, description="Critic steps per generator step.")
    lr: float = Field(default=1e-4, gt=0)
    beta1: float = Field(default=0.5, ge=0, lt=1)
    beta2: float = Field(default=0.999, ge=0, lt=1)
    sample_activation: float = Field(default=1.0, ge=-1, le=1, description="c of the sample grid's one-AU rows "
                                                                           "(the seed: 1 on the grid, 0.7 on faces).")


class Manipulator(nn.Module):
    """G and D together (one state dict for checkpoints)."""

    def __init__(self, config: ManipulatorConfig, n_aus: int, size: int) -> None:
        super().__init__()
        self.G = ManipulatorGenerator(n_aus, ngf=config.ngf, attention=config.attention)
        self.D = ManipulatorDiscriminator(n_aus, size, ndf=config.ndf)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def one_au_conditions(n_aus: int, activation: float) -> torch.Tensor:
    """(n_aus, n_aus): ``activation`` on one AU at a time, the seed's independent samples."""
    return torch.eye(n_aus) * activation


class EditPairs(LabelledDataset):
    """Labelled images, each with a target AU vector (another image's, picked by the item's seeded generator) and
    the gradient penalty's mix weight: per-sample randomness, so one batch of 2 and two processes with 1 each see
    the same draws."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = super().__getitem__(index)
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}/edit")  # apart from the augmentation's draws
        item["target"] = torch.tensor(self.aus[rng.randrange(len(self.aus))])
        item["alpha"] = torch.tensor(rng.random(), dtype=torch.float32)
        return item


class ManipulatorMethod(MethodBase):
    name = "manipulator"
    monitor = "rec"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        self.config, c = config, config.model
        if config.crop_size % 16:
            raise UnveilError(f"The manipulator takes crop sizes that are multiples of 16, not {config.crop_size}.")
        rows = select(table, c.train_on)
        self.aus = list(c.aus) if c.aus is not None else au_label_columns(rows[rows["split"] == "train"])
        absent = [a for a in self.aus if a not in rows.columns]
        if absent or not self.aus:
            raise UnveilError(f"samples.parquet has no AU column {', '.join(absent)}." if absent else
                              "The training rows have no varying AU labels for the manipulator to learn.")
        rows = rows[rows[self.aus].notna().all(axis=1)]  # labelled rows only (the grid's unlabelled ones go)
        self.module = Manipulator(c, len(self.aus), config.crop_size)
        if c.lambda_expr > 0 and (c.expr_signal != "aus" or c.expr_target != "label"):
            raise UnveilError("The manipulator's expression term reads AUs against the edit's targets: use "
                              "expr_signal aus and expr_target label, with a classifier checkpoint as expr_judge.")
        self.expression = maybe_expression_loss(c, aus=self.aus)

        def dataset(split: str, train: bool) -> LabelledDataset | None:
            part = rows[rows["split"] == split].iloc[:config.max_dataset_size if train else None]
            if part.empty:
                return None
            augment = Augment(config.load_size, config.crop_size, config.flip, train=train)
            return EditPairs(root, part, self.aus, augment, seed=seed)

        train_set = dataset("train", True)
        if train_set is None:
            raise UnveilError("No labelled training rows for the manipulator (split 'train').")
        self.train_set, self.val_set = train_set, dataset("val", False)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"aus": self.aus, "size": self.config.crop_size}
        if self.expression is not None:
            described["expression"] = self.expression.describe()
        return described

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config.model
        return {name: torch.optim.Adam(getattr(self.module, name).parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
                for name in ("D", "G")}

    def stepping(self, iteration: int) -> set[str]:
        """The critic every step, the generator every ``g_every``-th."""
        return {"D", "G"} if (iteration + 1) % self.config.model.g_every == 0 else {"D"}

    def generator_losses(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor
                         ) -> dict[str, torch.Tensor]:
        """The generator's terms (unweighted) and its output."""
        G, D = self.module.G, self.module.D
        c = target - source
        fake, attention = G.parts(x, c)
        critic, aus = D(fake)
        terms = {"adv": -wide(critic).mean(), "au": F.mse_loss(wide(aus), target),
                 "rec": wide(G(x, torch.zeros_like(c)) - x).abs().mean(),
                 "cycle": wide(G(fake, -c) - x).abs().mean(),
                 "tv": total_variation(wide(attention if attention is not None else fake)), "_fake": fake}
        if self.expression is not None:
            terms["expr"] = self.expression(wide(fake), {"aus": target})
        return terms

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        m, G, D = self.config.model, self.module.G, self.module.D
        x, source, target = batch["image"], batch["aus"], batch["target"]
        with step.autocast():
            with torch.no_grad():
                fake = G(x, target - source)
            critic_real, aus_real = D(x)
            critic_fake, _ = D(fake)
        penalty = gradient_penalty(lambda points: D(points)[0], x, fake.to(x.dtype), weight=m.lambda_gp,
                                   alpha=batch["alpha"])
        parts = {"D_wgan": wide(critic_fake).mean() - wide(critic_real).mean(), "D_gp": penalty,
                 "D_au": F.mse_loss(wide(aus_real), source)}
        step.backward(parts["D_wgan"] + penalty + m.lambda_au * parts["D_au"])
        if "G" in step.active:
            set_requires_grad([D], False)
            with step.autocast():
                g = self.generator_losses(x, source, target)
            g.pop("_fake")
            step.backward(g["adv"] + m.lambda_au * g["au"] + m.lambda_rec * g["rec"] + m.lambda_cycle * g["cycle"]
                          + m.lambda_tv * g["tv"] + m.lambda_expr * g.get("expr", 0.0))
            set_requires_grad([D], True)
            parts.update({f"G_{k}": v for k, v in g.items()})
        return {k: v.detach() for k, v in parts.items()}

    def validate(self, batches: Batches) -> dict[str, float]:
        """The critic's AU error on real images, the AU error of edits as the critic reads them, reconstruction
        and cycle errors (each validation image's target fixed by its index)."""

        def values(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            x, source = batch["image"], batch["aus"]
            g = self.generator_losses(x, source, batch["target"])
            values = {"au_real": F.mse_loss(wide(self.module.D(x)[1]), source), "au_fake": g["au"],
                      "rec": g["rec"], "cycle": g["cycle"]}
            if "expr" in g:
                values["expr"] = g["expr"]
            return values

        return weighted_means(batches, values, "image")

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor]:
        """The inputs, then one row per AU (up to 6): that AU raised by ``sample_activation``, the others kept."""
        device = next(self.module.parameters()).device
        x = torch.stack([item["image"] for item in items]).to(device)
        rows = [x]
        for condition in one_au_conditions(len(self.aus), self.config.model.sample_activation)[:6]:
            rows.append(self.module.G(x, condition.to(device).expand(len(x), -1)))
        return rows


class ManipulatorModel:
    """A trained manipulator for inference: ``model(images, changes)`` with ``changes`` the relative AU vectors."""

    def __init__(self, saved: Checkpoint, device: torch.device) -> None:
        self.config = config = ManipulatorConfig(**saved.config["model"])
        self.aus: list[str] = list(saved.outputs["aus"])
        self.size = int(saved.outputs["size"])
        self.module = Manipulator(config, len(self.aus), self.size)
        self.module.load_state_dict(saved.network_state())
        self.device = device
        self.module.to(device).eval()

    def condition(self, changes: dict[str, float]) -> np.ndarray:
        """The relative AU vector of ``{"AU12": 0.7}`` (or ``{"12": 0.7}``); one sentence for an AU it lacks or a
        change outside [-1, 1]."""
        numbers = {int("".join(ch for ch in a if ch.isdigit()) or -1): i for i, a in enumerate(self.aus)}
        c = np.zeros(len(self.aus), np.float32)
        for name, value in changes.items():
            digits = "".join(ch for ch in str(name) if ch.isdigit())
            if not digits or int(digits) not in numbers:
                raise UnveilError(f"This manipulator was not trained on {name}; it knows {', '.join(self.aus)}.")
            if not -1 <= value <= 1:
                raise UnveilError(f"The change of {name} must lie in [-1, 1] (a relative AU intensity), not {value:g}.")
            c[numbers[int(digits)]] = value
        return c

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], changes: np.ndarray) -> list[np.ndarray]:
        """``images`` uint8 RGB of the model's size; ``changes`` (n, n_aus) relative AUs; the edited images."""
        x = torch.stack([to_tensor(image) for image in images]).to(self.device)
        c = torch.as_tensor(np.asarray(changes, np.float32)).reshape(len(images), -1).to(self.device)
        y = self.module.G(x, c)
        return list(y.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())


def manipulate_image(checkpoint: str | Path, image: str | Path, out: str | Path, changes: dict[str, float],
                     each: float | None = None, device: str = "auto") -> Path:
    """Edit one image file (a face crop, or a grid) by ``changes`` and write ``out`` (PNG, atomically); with
    ``each``, write instead a row of the input and the input with each AU alone changed by ``each``."""
    from unveil.data.datasets import load_image
    from unveil.data.faces import square_resize
    from unveil.files import write_image_atomic
    from unveil.methods.registry import load_model

    model = load_model(checkpoint, device)
    if not isinstance(model, ManipulatorModel):
        raise UnveilError(f"{checkpoint} is no manipulator checkpoint ('unveil train manipulator' makes one).")
    source = Path(image)
    if not source.is_file():
        raise UnveilError(f"The image {source} does not exist.")
    crop = square_resize(load_image(source), model.size)
    if each is None:
        if not changes:
            raise UnveilError("Give at least one change, e.g. --au 12=0.7, or --each-au 1.")
        pictures = model([crop], model.condition(changes)[None])
    else:
        rows = one_au_conditions(len(model.aus), float(model.condition({model.aus[0]: each})[0])).numpy()
        pictures = [crop, *model([crop] * len(model.aus), rows)]
    target = Path(out).with_suffix(".png")
    write_image_atomic(target, np.concatenate(pictures, axis=1))
    return target


#: A CPU-budget preset: a quarter-width generator (ngf 16) and critic at 96 px, batch 16, 20 epochs.
CPU_PRESET: dict[str, Any] = {"model": {"ngf": 16, "ndf": 16}, "n_epochs": 10, "n_epochs_decay": 10,
                              "load_size": 96, "crop_size": 96, "batch_size": 16, "flip": False}
#: The paper's setting for faces: 128 px, batch 16 (its code's default), 30 epochs then linear decay.
PAPER_PRESET: dict[str, Any] = {"model": {"sample_activation": 0.7}, "n_epochs": 30, "n_epochs_decay": 20,
                                "load_size": 128, "crop_size": 128, "batch_size": 16, "flip": True}

register(MethodSpec(
    name="manipulator", summary="Seed 002's Expression Manipulator: a U-Net with multi-scale fusion, conditioned on "
                                "relative AUs, WGAN-GP critic with an AU head; makes new AU combinations.",
    config=ManipulatorConfig, method=ManipulatorMethod, load=ManipulatorModel, produces="manipulator",
    data="labelled", presets={"cpu": CPU_PRESET, "paper": PAPER_PRESET}, report=("val_au_fake", "val_rec")))
