"""Seed 001's de-occluder: an encoder-decoder generator trained on (occluded, clean) pairs with
L_total = lambda_expr * L_expr + lambda_pix * L2 + lambda_adv * L_adv, where L_expr is the cross-entropy of a
frozen expression judge on the output against the true emotion (or its AU loss against the true AUs), L2 the pixel
loss against the clean face (hidden and visible pixels weighted apart) and L_adv a real / synthetic discriminator.

Beyond the seed: pairs drawn on the fly on the user's own clean frames (``pairs: synthesized``), mask-aware
restoration (a mask channel, given or predicted by a segmentation network trained on the drawn occluders, and
compositing into the visible pixels), and the hybrid term: the same discriminator judges the restorations of the
subject's real occluded frames (``lambda_hybrid``), which closes the gap between drawn and real occluders.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import torch
from pydantic import Field
from torch import nn

from unveil.errors import UnveilError
from unveil.methods.cyclegan import set_requires_grad
from unveil.methods.expression import ExpressionOptions, maybe_expression_loss, maybe_judge
from unveil.methods.gan import GANLoss, GanMode, gradient_penalty
from unveil.methods.paired import (RESTORE_OPTIONS, MaskAwareGenerator, MaskOptions, PairOptions, as_image,
                                   exemplar_fill, generator_channels, grid_items, make_segmenter, mask_scores,
                                   paired_data, load_paired_state, restore_as_inference, weighted_error)
from unveil.methods.exemplars import ExemplarFill
from unveil.methods.registry import MethodSpec, register
from unveil.nets import define_D, define_G
from unveil.nets.segmentation import grow_mask, mask_loss
from unveil.train.method import MethodBase

if TYPE_CHECKING:
    from unveil.restorers import MaskAwareRestorer
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig
    from unveil.train.method import Batches, Step


class DeoccluderConfig(PairOptions, MaskOptions, ExpressionOptions):
    """Model options. The seed sums its three terms with weight 1 (``--preset seed001``); the defaults weigh the
    pixel term up, as pix2pix does its L1, since an L2 on [-1, 1] images is a hundred times smaller than a GAN loss."""

    ngf: int = Field(default=64, ge=1, description="Generator width (filters in the first layer).")
    ndf: int = Field(default=64, ge=1, description="Discriminator width.")
    netG: Literal["unet_256", "unet_128", "unet_64", "resnet_9blocks", "resnet_6blocks"] = Field(
        default="unet_256", description="The encoder-decoder: U-Nets take sides that are multiples of 256 / 128 / 64.")
    netD: Literal["basic", "n_layers", "pixel"] = Field(default="basic", description="basic: the 70x70 PatchGAN.")
    n_layers_D: int = Field(default=3, ge=1)
    norm: Literal["instance", "batch", "none"] = Field(default="instance", description="instance: each image is "
                                                       "normalised alone, in training and in restore.")
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    init_gain: float = Field(default=0.02, gt=0)
    no_dropout: bool = True
    gan_mode: GanMode = "vanilla"
    lambda_pix: float = Field(default=100.0, ge=0, description="Weight of the L2 pixel loss against the clean face.")
    pix_hidden_weight: float = Field(default=1.0, ge=0, description="Relative pixel-loss weight where the occluder "
                                                                    "hides the face.")
    pix_visible_weight: float = Field(default=1.0, ge=0, description="Relative pixel-loss weight of visible pixels.")
    lambda_adv: float = Field(default=1.0, ge=0, description="Weight of the adversarial (real / synthetic) loss.")
    lambda_hybrid: float = Field(default=0.0, ge=0, description="Weight of the adversarial loss on restorations of "
                                                                "real occluded crops (domain_a; 0: off).")
    hybrid_mask: bool = Field(default=True, description="The hybrid term also trains the segmentation network: "
                              "occluder pixels it misses on real crops stay in the restoration and look fake to D.")
    lambda_gp: float = Field(default=10.0, ge=0, description="Gradient-penalty weight (gan_mode wgangp).")
    lr: float = Field(default=2e-4, gt=0)
    beta1: float = Field(default=0.5, ge=0, lt=1)


class Deoccluder(nn.Module):
    """The mask-aware generator (with its segmentation network) and the real / synthetic discriminator."""

    def __init__(self, config: DeoccluderConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or DeoccluderConfig()
        self.G = define_G(generator_channels(c), 3, c.ngf, c.netG, c.norm, not c.no_dropout, c.init_type, c.init_gain)
        self.M = make_segmenter(c)
        self.D = define_D(3, c.ndf, c.netD, c.n_layers_D, c.norm, c.init_type, c.init_gain)
        self.E: ExemplarFill | None = None  # the exemplar bank (``exemplars``), set from the data or a checkpoint
        self.gan_loss = GANLoss(c.gan_mode)

    @property
    def restorer(self) -> MaskAwareGenerator:
        """G with its mask channel, the segmentation network, the exemplar bank and the compositing."""
        return MaskAwareGenerator(self.G, self.M, self.config, self.E)


class DeoccluderMethod(MethodBase):
    """The de-occluder in the training loop: given or synthesized pairs, plus real occluded crops for the hybrid."""

    name = "deoccluder"
    monitor = "L1"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        from unveil.data.datasets import Augment, select
        from unveil.data.pairs import WithUnpaired

        self.config = config
        c: DeoccluderConfig = config.model
        if c.lambda_hybrid > 0 and c.mask_input == "given":
            raise UnveilError("The hybrid term restores real occluded crops, which come without masks; use mask_input "
                              "predicted (or none) with lambda_hybrid.")
        self.model = self.module = Deoccluder(c)
        judge = maybe_judge(c)  # before the data: a wrong judge path fails at once
        data = paired_data(config, c, table, root, seed)
        self.train_set, self.val_set = data.train_set, data.val_set
        self.face_size, self.emotions, self.aus = data.face_size, data.emotions, data.aus
        self.model.E = exemplar_fill(c, data, root)
        if c.lambda_hybrid > 0:
            real = select(table, config.domain_a, "train", limit=config.max_dataset_size)
            augment = Augment(config.load_size, config.crop_size, config.flip, preprocess=config.preprocess)
            self.train_set = WithUnpaired(self.train_set, root, real, augment, seed)
        self.expression = maybe_expression_loss(c, self.emotions, self.aus, judge)

    def describe(self) -> dict[str, Any]:
        return {"face_size": self.face_size, "emotions": self.emotions, "aus": self.aus,
                "expression_loss": self.expression.describe() if self.expression else None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config.model
        return {"G": torch.optim.Adam(self.model.restorer.parameters(), lr=c.lr, betas=(c.beta1, 0.999)),
                "D": torch.optim.Adam(self.model.D.parameters(), lr=c.lr, betas=(c.beta1, 0.999))}

    def generator_losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """The weighted terms and the restorations the discriminator should call fake."""
        c, model = self.config.model, self.model
        result = model.restorer(batch["A"], batch["mask"])
        parts = {"G_pix": c.lambda_pix * weighted_error(result.out, batch["B"], batch["mask"], c.pix_hidden_weight,
                                                        c.pix_visible_weight, power=2)}
        if c.lambda_adv > 0:
            parts["G_adv"] = c.lambda_adv * model.gan_loss(model.D(result.out), True)
        if result.logits is not None and c.lambda_mask > 0:
            parts["M_seg"] = c.lambda_mask * mask_loss(result.logits, grow_mask(batch["mask"], c.mask_grow))
        if self.expression is not None:
            parts["G_expr"] = c.lambda_expr * self.expression(result.out, batch)
        fakes = [result.out]
        if c.lambda_hybrid > 0 and "R" in batch:
            real_restored = model.restorer(batch["R"], mask_gradient=c.hybrid_mask).out
            parts["G_hybrid"] = c.lambda_hybrid * model.gan_loss(model.D(real_restored), True)
            fakes.append(real_restored)
        return parts, fakes

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        c, model = self.config.model, self.model
        with step.autocast():
            set_requires_grad([model.D], False)
            parts, fakes = self.generator_losses(batch)
        step.backward(torch.stack([v.float() for v in parts.values()]).sum())
        if c.lambda_adv == 0 and c.lambda_hybrid == 0:
            return parts
        set_requires_grad([model.D], True)
        with step.autocast():
            real = batch["B"]
            fake = torch.cat([f.detach() for f in fakes])
            d_parts = {"D_real": model.gan_loss(model.D(real), True), "D_fake": model.gan_loss(model.D(fake), False)}
            if c.gan_mode == "wgangp":
                d_parts["D_gp"] = gradient_penalty(model.D, real, fakes[0].detach(), weight=c.lambda_gp)
        step.backward(0.5 * (d_parts["D_real"] + d_parts["D_fake"]) + d_parts.get("D_gp", 0.0))
        return {**parts, **d_parts}

    def validate(self, batches: Batches) -> dict[str, float]:
        """L1 of the restoration against the clean face (all, hidden, visible pixels), the mask IoU, and the
        judge's accuracy on the restorations where L_expr is on and the faces have emotion labels."""
        totals: dict[str, list[float]] = {}

        def add(key: str, total: torch.Tensor, count: torch.Tensor | float) -> None:
            entry = totals.setdefault(key, [0.0, 0.0])
            entry[0] += float(total)
            entry[1] += float(count)

        for batch in batches:
            result = restore_as_inference(self.model.restorer, batch["A"], batch["mask"], exemplars=False)
            error = (result.out - batch["B"]).abs().mean(1, keepdim=True)
            hidden = batch["mask"]
            add("L1", error.sum(), error.numel())
            add("L1_hidden", (error * hidden).sum(), hidden.sum())
            add("L1_visible", (error * (1 - hidden)).sum(), (1 - hidden).sum())
            for key, value in mask_scores(result.mask, hidden).items():
                add(key, value, 1.0)
            judge = self.expression
            if judge is not None and judge.signal == "emotion" and judge.target == "label":
                labelled = batch["emotion"] >= 0
                if labelled.any():
                    judged = judge.judge(result.out)["emotion"][:, judge.index.to(error.device)]
                    add("judge_acc", (judged.argmax(1) == batch["emotion"])[labelled].sum(), labelled.sum())
        out = {k: total / count for k, (total, count) in totals.items() if count and not k.startswith("mask_")}
        if "mask_inter" in totals:
            out["mask_iou"] = totals["mask_inter"][0] / max(totals["mask_union"][0], 1.0)
        return out

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor]:
        """The occluded input, the mask used, the generator's restoration and the clean face."""
        a, b, mask = grid_items(items, next(self.model.parameters()).device)
        result = restore_as_inference(self.model.restorer, a, mask, exemplars=False)
        return [a, as_image(result.mask, a), result.out, b]


def load_restorer(saved: Checkpoint, device: torch.device) -> MaskAwareRestorer:
    """The mask-aware generator of a de-occluder checkpoint (the discriminator is not needed)."""
    from unveil.restorers import MaskAwareRestorer

    model = Deoccluder(DeoccluderConfig(**saved.config["model"]))
    size = load_paired_state(model, saved)
    return MaskAwareRestorer(model.restorer, size, device, "deoccluder", str(saved.path))


#: Seed 001's loss as written: the three terms summed with weight 1, L_expr on.
SEED001_PRESET: dict[str, Any] = {"model": {"lambda_expr": 1.0, "lambda_pix": 1.0, "lambda_adv": 1.0}}

#: A CPU-budget preset: a U-Net (ngf 32) at 128 px with the segmentation network, pairs drawn on the clean rows,
#: L_expr on with the fer judge; 143 -> 128 px crops (prepare with --load-size 143), batch 4.
CPU_PRESET: dict[str, Any] = {
    "model": {"netG": "unet_128", "ngf": 32, "ndf": 32, "pairs": "synthesized", "lambda_expr": 1.0},
    "n_epochs": 4, "n_epochs_decay": 2, "load_size": 143, "crop_size": 128, "batch_size": 4,
}

register(MethodSpec(
    name="deoccluder", summary="Seed 001's de-occluder: encoder-decoder with L_expr (a frozen expression judge), L2 "
                               "and adversarial terms; mask-aware; pairs given or drawn on clean faces.",
    config=DeoccluderConfig, method=DeoccluderMethod, load=load_restorer, produces="restorer", data="paired",
    presets={"cpu": CPU_PRESET, "seed001": SEED001_PRESET}, per_subject=True, report=("G_pix", "val_L1"),
    restore_options=RESTORE_OPTIONS))
