"""CycleGAN (Zhu et al. 2017) as seed 000 uses it: G_A maps domain A (with the obstruction, e.g. sEMG
sensors) to domain B (normal), G_B maps back; D_A judges B-domain images, D_B A-domain ones.

Options keep the reference code's names and meanings (``lambda_A``, ``lambda_identity``, ``pool_size``,
``gan_mode``, ``netG``, ``norm``, ``no_dropout``...). Beyond the reference: the minimal-change term of
Büchner et al.'s follow-up (Minimal-Change CycleGAN, ACIVS 2023), ``lambda_mc * |G_A(a) - a|``, optionally only
on pixels a known mask marks visible, which keeps G_A from changing what the obstruction does not hide; and seed
001's expression-consistency term (``lambda_expr``: a frozen judge reads G_A(a) against a's emotion or AU labels).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

from unveil.errors import UnveilError
from unveil.methods.expression import ExpressionOptions, maybe_expression_loss
from unveil.methods.gan import GANLoss, GanMode, ImagePool, gradient_penalty
from unveil.methods.registry import MethodSpec, register
from unveil.nets import define_D, define_G
from unveil.train.method import MethodBase

if TYPE_CHECKING:
    from unveil.restorers import GeneratorRestorer
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig
    from unveil.train.method import Batches, Step


class CycleGANConfig(ExpressionOptions):
    """Model options, with the reference code's defaults (see :data:`PAPER_PRESET` for seed 000's schedule), and
    seed 001's expression-consistency term on G_A's output (off by default)."""

    input_nc: int = Field(default=3, ge=1)
    output_nc: int = Field(default=3, ge=1)
    ngf: int = Field(default=64, ge=1, description="Generator width (filters in the first layer).")
    ndf: int = Field(default=64, ge=1, description="Discriminator width.")
    netG: Literal["resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256"] = "resnet_9blocks"
    netD: Literal["basic", "n_layers", "pixel"] = "basic"
    n_layers_D: int = Field(default=3, ge=1)
    norm: Literal["instance", "batch", "none"] = "instance"
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    init_gain: float = Field(default=0.02, gt=0)
    no_dropout: bool = True
    gan_mode: GanMode = "lsgan"
    lambda_A: float = Field(default=10.0, ge=0, description="Cycle loss weight A -> B -> A.")
    lambda_B: float = Field(default=10.0, ge=0, description="Cycle loss weight B -> A -> B.")
    lambda_identity: float = Field(default=0.5, ge=0, description="Identity loss weight, relative to lambda_A/B.")
    lambda_mc: float = Field(default=0.0, ge=0, description="Minimal-change weight on |G_A(a) - a| (0: off).")
    mc_visible_only: bool = Field(default=False, description="Apply the minimal-change term only where a "
                                                             "given mask says the pixel is visible.")
    lambda_gp: float = Field(default=10.0, ge=0, description="Gradient-penalty weight (gan_mode wgangp).")
    pool_size: int = Field(default=50, ge=0)
    lr: float = Field(default=2e-4, gt=0)
    beta1: float = Field(default=0.5, ge=0, lt=1)


class CycleGAN(nn.Module):
    """The four networks, their losses and one optimisation step (generators, then discriminators).

    Batches are dicts with ``A`` and ``B`` images in [-1, 1] and optionally ``mask`` (1 = hidden) for A.
    """

    name = "cyclegan"

    def __init__(self, config: CycleGANConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        c = self.config = config or CycleGANConfig()
        g = dict(ngf=c.ngf, netG=c.netG, norm=c.norm, use_dropout=not c.no_dropout, init_type=c.init_type,
                 init_gain=c.init_gain)
        d = dict(ndf=c.ndf, netD=c.netD, n_layers_D=c.n_layers_D, norm=c.norm, init_type=c.init_type,
                 init_gain=c.init_gain)
        self.G_A = define_G(c.input_nc, c.output_nc, **g)
        self.G_B = define_G(c.output_nc, c.input_nc, **g)
        self.D_A = define_D(c.output_nc, **d)
        self.D_B = define_D(c.input_nc, **d)
        self.gan_loss = GANLoss(c.gan_mode)
        self.l1 = nn.L1Loss()
        self.fake_A_pool = ImagePool(c.pool_size, random.Random(seed * 2 + 1))
        self.fake_B_pool = ImagePool(c.pool_size, random.Random(seed * 2 + 2))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam for both generators together and both discriminators together (betas beta1, 0.999)."""
        c = self.config
        return {
            "G": torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=c.lr,
                                  betas=(c.beta1, 0.999)),
            "D": torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=c.lr,
                                  betas=(c.beta1, 0.999)),
        }

    @property
    def generators(self) -> list[nn.Module]:
        return [self.G_A, self.G_B]

    @property
    def discriminators(self) -> list[nn.Module]:
        return [self.D_A, self.D_B]

    def translate(self, a: torch.Tensor) -> torch.Tensor:
        """G_A(a): the obstruction removed (what ``unveil restore`` runs)."""
        return self.G_A(a)

    def generator_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                                      dict[str, torch.Tensor]]:
        """Total generator loss, its parts, and the generated images (fake_A, fake_B, rec_A, rec_B)."""
        c = self.config
        real_A, real_B = batch["A"], batch["B"]
        fake_B, fake_A = self.G_A(real_A), self.G_B(real_B)
        rec_A, rec_B = self.G_B(fake_B), self.G_A(fake_A)
        parts: dict[str, torch.Tensor] = {
            "G_A": self.gan_loss(self.D_A(fake_B), True),
            "G_B": self.gan_loss(self.D_B(fake_A), True),
            "cycle_A": self.l1(rec_A, real_A) * c.lambda_A,
            "cycle_B": self.l1(rec_B, real_B) * c.lambda_B,
        }
        if c.lambda_identity > 0:
            parts["idt_A"] = self.l1(self.G_A(real_B), real_B) * c.lambda_B * c.lambda_identity
            parts["idt_B"] = self.l1(self.G_B(real_A), real_A) * c.lambda_A * c.lambda_identity
        if c.lambda_mc > 0:
            change = (fake_B - real_A).abs()
            if c.mc_visible_only and "mask" in batch:
                visible = 1.0 - batch["mask"]
                parts["mc"] = c.lambda_mc * (change * visible).sum() / (visible.sum() * change.shape[1]).clamp(min=1)
            else:
                parts["mc"] = c.lambda_mc * change.mean()
        total = torch.stack(list(parts.values())).sum()
        return total, parts, {"fake_A": fake_A, "fake_B": fake_B, "rec_A": rec_A, "rec_B": rec_B}

    def discriminator_loss(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """0.5 x (real judged real + fake judged fake); plus the gradient penalty for WGAN-GP."""
        loss = 0.5 * (self.gan_loss(discriminator(real), True) + self.gan_loss(discriminator(fake.detach()), False))
        if self.config.gan_mode == "wgangp":
            loss = loss + gradient_penalty(discriminator, real, fake, weight=self.config.lambda_gp)
        return loss

    def discriminator_losses(self, batch: dict[str, torch.Tensor], generated: dict[str, torch.Tensor],
                             use_pool: bool = True) -> dict[str, torch.Tensor]:
        """D_A on real B vs (pooled) fake B, D_B on real A vs (pooled) fake A."""
        fake_B = self.fake_B_pool.query(generated["fake_B"]) if use_pool else generated["fake_B"]
        fake_A = self.fake_A_pool.query(generated["fake_A"]) if use_pool else generated["fake_A"]
        return {"D_A": self.discriminator_loss(self.D_A, batch["B"], fake_B),
                "D_B": self.discriminator_loss(self.D_B, batch["A"], fake_A)}


class CycleGANMethod(MethodBase):
    """CycleGAN in the training loop: unpaired A (``domain_a``) and B (``domain_b``) frames; generators, then
    discriminators (frozen while the generators learn), as the reference code's ``optimize_parameters``."""

    name = "cyclegan"
    monitor = "total"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        from unveil.data.datasets import Augment, UnpairedDataset, au_label_columns, emotion_names, restore_side, \
            row_labels, select
        from unveil.methods.paired import emotion_classes

        c = self.config = config
        self.model = self.module = CycleGAN(config.model, seed=seed)
        domain_a, domain_b = (c.domain_a, c.domain_b) if c.direction == "AtoB" else (c.domain_b, c.domain_a)
        train_a, train_b = (select(table, domain, "train", limit=c.max_dataset_size) for domain in (domain_a, domain_b))
        self.expression = None
        labels: dict[str, dict] = {"train": {}, "val": {}}
        val_a, val_b = select(table, domain_a, "val"), select(table, domain_b, "val")
        if c.model.lambda_expr > 0:
            if c.model.expr_target == "clean":
                raise UnveilError("CycleGAN has no clean twin of its inputs; its L_expr takes expr_target label.")
            emotions, aus = emotion_classes(emotion_names(train_a)), au_label_columns(train_a)
            self.expression = maybe_expression_loss(c.model, emotions, aus)
            labels = {"train": row_labels(train_a, emotions, aus), "val": row_labels(val_a, emotions, aus)}
        self.train_set: Dataset = UnpairedDataset(root, train_a, train_b,
                                                  Augment(c.load_size, c.crop_size, c.flip, preprocess=c.preprocess),
                                                  seed=seed, serial=c.serial_batches, labels=labels["train"])
        self.val_set: Dataset | None = (
            UnpairedDataset(root, val_a, val_b, Augment(c.load_size, c.crop_size, train=False,
                                                        preprocess=c.preprocess), seed=seed, serial=c.serial_batches,
                            labels=labels["val"])
            if len(val_a) and len(val_b) else None)
        self.face_size = restore_side(root / train_a["image"].iloc[0], c.preprocess, c.crop_size)

    def describe(self) -> dict[str, Any]:
        """The side of the face crop restore should feed G_A (see ``face_size``)."""
        return {"face_size": self.face_size}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.model.make_optimizers()

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        model = self.model
        with step.autocast():
            set_requires_grad(model.discriminators, False)
            g_total, parts, generated = model.generator_losses(batch)
            if self.expression is not None:
                parts["G_expr"] = model.config.lambda_expr * self.expression(generated["fake_B"], batch)
                g_total = g_total + parts["G_expr"]
        step.backward(g_total)
        set_requires_grad(model.discriminators, True)
        with step.autocast():
            d_parts = model.discriminator_losses(batch, generated)
        step.backward(d_parts["D_A"] + d_parts["D_B"])
        return {**parts, **d_parts}

    def validate(self, batches: Batches) -> dict[str, float]:
        """Mean generator losses, their total and the plain L1 change |G_A(a) - a|."""
        from unveil.train.method import weighted_means

        def values(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            total, parts, generated = self.model.generator_losses(batch)
            return {**parts, "total": total, "change_A": (generated["fake_B"] - batch["A"]).abs().mean()}

        return weighted_means(batches, values, "A")

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor]:
        """Real A, G_A(A), G_B(G_A(A)), real B, G_B(B), G_A(G_B(B)) (like seed 000's Fig. 4)."""
        device = next(self.model.parameters()).device
        a = torch.stack([it["A"] for it in items]).to(device)
        b = torch.stack([it["B"] for it in items]).to(device)
        fake_b, fake_a = self.model.G_A(a), self.model.G_B(b)
        return [a, fake_b, self.model.G_B(fake_b), b, fake_a, self.model.G_A(fake_a)]

    def extra_state(self) -> dict[str, torch.Tensor]:
        pools = (("fake_A_pool", self.model.fake_A_pool), ("fake_B_pool", self.model.fake_B_pool))
        return {f"pool/{name}/{k}": v for name, pool in pools for k, v in pool.state().items()}

    def load_extra_state(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        for name, pool in (("fake_A_pool", self.model.fake_A_pool), ("fake_B_pool", self.model.fake_B_pool)):
            prefix = f"pool/{name}/"
            pool.load_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, device)


def set_requires_grad(nets: list[nn.Module], requires_grad: bool) -> None:
    """Freeze or unfreeze networks (the discriminators while the generators learn)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(requires_grad)


def load_restorer(saved: Checkpoint, device: torch.device) -> GeneratorRestorer:
    """G_A of a CycleGAN checkpoint, at the face size the checkpoint records (older ones: crop_size)."""
    from unveil.restorers import GeneratorRestorer

    model = CycleGAN(CycleGANConfig(**saved.config["model"]))
    model.load_state_dict(saved.network_state())
    size = saved.outputs.get("face_size", saved.config["crop_size"])
    return GeneratorRestorer(model.G_A, int(size), device, "cyclegan", str(saved.path))


#: Seed 000's training schedule (lr 3e-4, 30 epochs with linear decay after 15, load 286 / crop 256, flip, batch
#: 1), with the reference model defaults otherwise. Prepare with the defaults (2 % random frames, 90/10 split).
PAPER_PRESET: dict[str, Any] = {
    "model": {"lr": 3e-4, "netG": "resnet_9blocks", "netD": "basic", "gan_mode": "lsgan", "lambda_A": 10.0,
              "lambda_B": 10.0, "lambda_identity": 0.5, "pool_size": 50, "beta1": 0.5},
    "n_epochs": 15, "n_epochs_decay": 15, "lr_policy": "linear",
    "load_size": 286, "crop_size": 256, "flip": True, "batch_size": 1,
}

#: A CPU-budget preset (documented in the README): the paper's objective and schedule shape with a narrower,
#: shallower generator (ngf 24, 6 residual blocks; about 1 s per 128 px step on 2 CPU cores instead of 3.5 s).
#: Prepare with ``--load-size 143 --fraction 0.1``.
CPU_PRESET: dict[str, Any] = {
    **PAPER_PRESET,
    "model": {**PAPER_PRESET["model"], "lr": 2e-4, "ngf": 24, "ndf": 32, "netG": "resnet_6blocks"},
    "n_epochs": 2, "n_epochs_decay": 1, "load_size": 143, "crop_size": 128,
}

register(MethodSpec(
    name="cyclegan", summary="Seed 000's unpaired CycleGAN from occluded (A) to normal (B) frames; G_A restores.",
    config=CycleGANConfig, method=CycleGANMethod, load=load_restorer, produces="restorer", data="unpaired",
    presets={"paper": PAPER_PRESET, "cpu": CPU_PRESET}, per_subject=True, report=("cycle_A", "val_total")))
