"""pix2pix (Isola et al. 2017): a generator from the occluded face (A) to its clean twin (B), trained on exact
pairs (the benchmark's hidden truth, or ``unveil occlude`` triplets) with a conditional PatchGAN on (A, output)
and an L1 term.

Options keep the reference code's names and defaults (``netG`` unet_256, ``norm`` batch, dropout in G,
``gan_mode`` vanilla, ``lambda_L1`` 100, ``pool_size`` 0, Adam 2e-4 / beta1 0.5). Beyond the reference: the L1
term may weigh pixels the occluder hides and pixels it leaves visible differently (``l1_hidden_weight``,
``l1_visible_weight``; both 1 give the reference's plain L1), as seed 003 asks covered and uncovered regions to
be treated apart; like every paired method, it can draw its pairs on clean faces (``pairs: synthesized``), see
a mask channel given or predicted and composite into the visible pixels (``mask_input``; default none, the
reference), and add seed 001's expression-consistency term (``lambda_expr``). The loop updates D and G from one
forward pass; the reference steps D first and then computes G's loss against the updated D.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import torch
from pydantic import Field
from torch import nn

from unveil.methods.cyclegan import set_requires_grad
from unveil.methods.expression import ExpressionOptions, maybe_expression_loss, maybe_judge
from unveil.methods.gan import GANLoss, GanMode, gradient_penalty
from unveil.methods.exemplars import ExemplarFill
from unveil.methods.paired import (RESTORE_OPTIONS, MaskAwareGenerator, MaskInput, MaskOptions, PairOptions, Restored,
                                   as_image, exemplar_fill, generator_channels, grid_items, make_segmenter,
                                   mask_scores, load_paired_state, paired_data, restore_as_inference, weighted_error)
from unveil.methods.registry import MethodSpec, register
from unveil.nets import define_D, define_G
from unveil.nets.segmentation import grow_mask, mask_loss
from unveil.restorers import GeneratorRestorer, uses_batch_norm
from unveil.train.method import MethodBase

if TYPE_CHECKING:
    from unveil.restorers import MaskAwareRestorer
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig
    from unveil.train.method import Batches, Step


class Pix2PixConfig(PairOptions, MaskOptions, ExpressionOptions):
    """Model options, with the reference code's pix2pix defaults (and no mask channel)."""

    input_nc: int = Field(default=3, ge=1)
    output_nc: int = Field(default=3, ge=1)
    ngf: int = Field(default=64, ge=1, description="Generator width (filters in the first layer).")
    ndf: int = Field(default=64, ge=1, description="Discriminator width.")
    netG: Literal["unet_256", "unet_128", "unet_64", "resnet_9blocks", "resnet_6blocks"] = Field(
        default="unet_256", description="U-Nets take sides that are multiples of 256 / 128 / 64 (unet_64: not in the "
                                        "reference).")
    netD: Literal["basic", "n_layers", "pixel"] = Field(default="basic", description="basic: the 70x70 PatchGAN.")
    n_layers_D: int = Field(default=3, ge=1)
    norm: Literal["batch", "instance", "none"] = "batch"
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    init_gain: float = Field(default=0.02, gt=0)
    no_dropout: bool = Field(default=False, description="pix2pix keeps dropout in G while training (its noise).")
    gan_mode: GanMode = "vanilla"
    lambda_L1: float = Field(default=100.0, ge=0, description="Weight of the L1 term |G(A) - B|.")
    l1_hidden_weight: float = Field(default=1.0, ge=0, description="Relative L1 weight of pixels the occluder "
                                                                   "mask hides.")
    l1_visible_weight: float = Field(default=1.0, ge=0, description="Relative L1 weight of visible pixels.")
    lambda_gp: float = Field(default=10.0, ge=0, description="Gradient-penalty weight (gan_mode wgangp).")
    lr: float = Field(default=2e-4, gt=0)
    beta1: float = Field(default=0.5, ge=0, lt=1)
    mask_input: MaskInput = Field(default="none", description="none: the reference's G(A); given: plus the "
                                  "occluder mask (restore needs --mask); predicted: plus the mask of its own "
                                  "segmentation network.")


class Pix2Pix(nn.Module):
    """G (A -> B) and the conditional D that judges (A, B) pairs; batches hold ``A``, ``B`` and ``mask``. With a
    mask input, ``restorer`` wraps G with the mask channel, its segmentation network and the compositing."""

    def __init__(self, config: Pix2PixConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or Pix2PixConfig()
        self.G = define_G(generator_channels(c, c.input_nc), c.output_nc, c.ngf, c.netG, c.norm, not c.no_dropout,
                          c.init_type, c.init_gain)
        self.D = define_D(c.input_nc + c.output_nc, c.ndf, c.netD, c.n_layers_D, c.norm, c.init_type, c.init_gain)
        self.M = make_segmenter(c)
        self.E: ExemplarFill | None = None  # the exemplar bank (``exemplars``), set from the data or a checkpoint
        self.gan_loss = GANLoss(c.gan_mode)

    @property
    def restorer(self) -> MaskAwareGenerator:
        """G with its mask channel, segmentation network and compositing (the plain G(A) with mask_input none)."""
        return MaskAwareGenerator(self.G, self.M, self.config, self.E)

    def l1(self, fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Mean |fake - real| with per-pixel weights l1_hidden_weight where ``mask`` is 1, else l1_visible_weight."""
        c = self.config
        return weighted_error(fake, real, mask, c.l1_hidden_weight, c.l1_visible_weight)

    def generator_losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Restored]:
        """G_GAN (D fooled on (A, G(A))), G_L1 (times lambda_L1) and, with a predicted mask, the segmentation
        loss M_seg; and the restoration (G(A), composited where a mask is used)."""
        c, real_A, real_B = self.config, batch["A"], batch["B"]
        result = self.restorer(real_A, batch.get("mask"))
        parts = {"G_GAN": self.gan_loss(self.D(torch.cat([real_A, result.out], 1)), True),
                 "G_L1": self.l1(result.out, real_B, batch.get("mask")) * c.lambda_L1}
        if result.logits is not None and c.lambda_mask > 0:
            parts["M_seg"] = c.lambda_mask * mask_loss(result.logits, grow_mask(batch["mask"], c.mask_grow))
        return parts, result

    def discriminator_loss(self, batch: dict[str, torch.Tensor], fake_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """0.5 x ((A, G(A)) judged fake + (A, B) judged real); plus the gradient penalty for WGAN-GP."""
        real_A = batch["A"]
        fake = torch.cat([real_A, fake_B.detach()], 1)
        real = torch.cat([real_A, batch["B"]], 1)
        parts = {"D_fake": self.gan_loss(self.D(fake), False), "D_real": self.gan_loss(self.D(real), True)}
        if self.config.gan_mode == "wgangp":
            parts["D_gp"] = gradient_penalty(self.D, real, fake, weight=self.config.lambda_gp)
        return parts


class Pix2PixMethod(MethodBase):
    """pix2pix in the training loop: occluded rows of ``domain_a`` with their clean twins (and masks), or pairs
    drawn on the clean rows of ``domain_b``."""

    name = "pix2pix"
    monitor = "L1"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        self.config = config
        c: Pix2PixConfig = config.model
        self.model = self.module = Pix2Pix(c)
        judge = maybe_judge(c)  # before the data: a wrong judge path fails at once
        data = paired_data(config, c, table, root, seed)
        self.train_set, self.val_set = data.train_set, data.val_set
        self.face_size, self.emotions, self.aus = data.face_size, data.emotions, data.aus
        self.model.E = exemplar_fill(c, data, root)
        self.expression = maybe_expression_loss(c, self.emotions, self.aus, judge)

    def describe(self) -> dict[str, Any]:
        return {"face_size": self.face_size, "emotions": self.emotions, "aus": self.aus,
                "expression_loss": self.expression.describe() if self.expression else None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config.model
        return {"G": torch.optim.Adam(self.model.restorer.parameters(), lr=c.lr, betas=(c.beta1, 0.999)),
                "D": torch.optim.Adam(self.model.D.parameters(), lr=c.lr, betas=(c.beta1, 0.999))}

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        model, c = self.model, self.config.model
        with step.autocast():
            set_requires_grad([model.D], False)
            g_parts, result = model.generator_losses(batch)
            if self.expression is not None:
                g_parts["G_expr"] = c.lambda_expr * self.expression(result.out, batch)
        step.backward(torch.stack([v.float() for v in g_parts.values()]).sum())
        set_requires_grad([model.D], True)
        with step.autocast():
            d_parts = model.discriminator_loss(batch, result.out)
        step.backward(0.5 * (d_parts["D_fake"] + d_parts["D_real"]) + d_parts.get("D_gp", 0.0))
        return {**g_parts, **d_parts}

    def _restore(self, a: torch.Tensor, mask: torch.Tensor | None) -> Restored:
        """The generator's restoration (validation and grids judge what trains, never the exemplar fill)."""
        return restore_as_inference(self.model.restorer, a, mask, exemplars=False)

    def validate(self, batches: Batches) -> dict[str, float]:
        """Mean L1 of the restoration against B (in [-1, 1] units) over all, hidden and visible pixels, and the
        mask IoU when the mask is predicted."""
        sums = {"L1": 0.0, "L1_hidden": 0.0, "L1_visible": 0.0, "mask_inter": 0.0, "mask_union": 0.0}
        counts = {"L1": 0.0, "L1_hidden": 0.0, "L1_visible": 0.0}
        for batch in batches:
            result = self._restore(batch["A"], batch["mask"])
            error = (result.out - batch["B"]).abs().mean(1, keepdim=True)
            hidden = batch["mask"]
            for key, weight in (("L1", torch.ones_like(hidden)), ("L1_hidden", hidden), ("L1_visible", 1 - hidden)):
                sums[key] += float((error * weight).sum())
                counts[key] += float(weight.sum())
            for key, value in mask_scores(result.mask if result.logits is not None else None, hidden).items():
                sums[key] += float(value)
        out = {k: sums[k] / counts[k] for k in counts if counts[k]}
        if sums["mask_union"]:
            out["mask_iou"] = sums["mask_inter"] / sums["mask_union"]
        return out

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor]:
        """The occluded input, (the mask used,) the restoration and the hidden truth."""
        a, b, mask = grid_items(items, next(self.model.parameters()).device)
        result = self._restore(a, mask)
        return [a, *([as_image(result.mask, a)] if result.mask is not None else []), result.out, b]


def load_restorer(saved: Checkpoint, device: torch.device) -> GeneratorRestorer | MaskAwareRestorer:
    """G of a pix2pix checkpoint (with its mask channel and segmentation network when it has them); a batch-normed
    G normalises every crop by its own statistics, as the reference's test (batch 1, training mode), without
    dropout."""
    from unveil.restorers import MaskAwareRestorer

    model = Pix2Pix(Pix2PixConfig(**saved.config["model"]))
    size = load_paired_state(model, saved)
    if model.config.mask_input == "none":
        return GeneratorRestorer(model.G, size, device, "pix2pix", str(saved.path),
                                 per_image_statistics=uses_batch_norm(model.G))
    return MaskAwareRestorer(model.restorer, size, device, "pix2pix", str(saved.path))


#: The reference's pix2pix schedule: 100 epochs at 2e-4, 100 of linear decay, 286 -> 256, flip, batch 1.
PAPER_PRESET: dict[str, Any] = {
    "model": {"netG": "unet_256", "netD": "basic", "norm": "batch", "gan_mode": "vanilla", "lambda_L1": 100.0,
              "lr": 2e-4, "beta1": 0.5, "no_dropout": False},
    "n_epochs": 100, "n_epochs_decay": 100, "lr_policy": "linear",
    "load_size": 286, "crop_size": 256, "flip": True, "batch_size": 1,
}

#: A CPU-budget preset: the reference objective with a narrower U-Net at 128 px (prepare with --load-size 143).
CPU_PRESET: dict[str, Any] = {
    **PAPER_PRESET,
    "model": {**PAPER_PRESET["model"], "netG": "unet_128", "ngf": 32, "ndf": 32},
    "n_epochs": 2, "n_epochs_decay": 1, "load_size": 143, "crop_size": 128,
}

register(MethodSpec(
    name="pix2pix", summary="Isola et al.'s paired pix2pix from occluded crops to their clean twins (GAN + L1).",
    config=Pix2PixConfig, method=Pix2PixMethod, load=load_restorer, produces="restorer", data="paired",
    presets={"paper": PAPER_PRESET, "cpu": CPU_PRESET}, per_subject=True, report=("G_L1", "val_L1"),
    restore_options=RESTORE_OPTIONS))
