"""What every paired restoration method shares (pix2pix, the de-occluder): where its pairs come from, and
mask-aware restoration.

Pairs are ``given`` (occluded crops with their clean twins: the benchmark's hidden truth, ``unveil occlude``
triplets) or ``synthesized`` on the fly from clean crops (any folder of faces, a subject's normal recordings; see
:mod:`unveil.data.pairs`). Mask-aware restoration (seed 003: covered and visible pixels need different
treatment): the generator also sees a mask channel, the mask given or predicted by a small segmentation network
trained on the drawn occluders, and its output is composited into the visible pixels, which stay the input's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.utils.data import Dataset

from unveil.config import Config
from unveil.data.pairs import PAIR_OCCLUDERS, check_occluders
from unveil.errors import UnveilError
from unveil.facs import BASIC_EMOTIONS
from unveil.methods.exemplars import ExemplarFill, bank_checked_mask, checked_mask, load_bank
from unveil.nets.segmentation import OcclusionSegmenter, grow_mask

if TYPE_CHECKING:
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig

MaskInput = Literal["none", "given", "predicted"]
ExemplarCheck = Literal["bank", "fill"]


class PairOptions(Config):
    """Where a paired method's (occluded, clean, mask) pairs come from."""

    pairs: Literal["given", "synthesized"] = Field(
        default="given", description="given: the occluded rows (domain_a) with their clean twins; synthesized: "
                                     "occluders drawn on the fly on the clean rows (domain_b).")
    occluders: str = Field(default="sensors,patch,mask,glasses,hand", description="Comma-separated occluders drawn "
                           f"on synthesized pairs, one per copy: {', '.join(PAIR_OCCLUDERS)} (semg is the "
                           "benchmark's own sensor look, sensors randomised looks that exclude it).")
    per_image: int = Field(default=4, ge=1, description="Occluded copies of each clean crop per epoch (seed 001: 4).")
    jpeg_quality: int = Field(default=60, ge=1, le=100, description="Synthesized inputs go through a JPEG round "
                              "trip at a quality drawn from [this, 95], as video coding smears occluders (100: none).")
    mask_templates: str | None = Field(default=None, description="MaskTheFace's masks folder: real mask overlays "
                                                                 "for the mask occluder (else the synthetic mask).")

    @field_validator("occluders")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            check_occluders([v.strip() for v in value.split(",") if v.strip()])
        except UnveilError as error:
            raise ValueError(str(error).rstrip(".")) from None
        return value

    @property
    def occluder_list(self) -> list[str]:
        return [v.strip() for v in self.occluders.split(",") if v.strip()]


class MaskOptions(Config):
    """Mask-aware restoration."""

    mask_input: MaskInput = Field(default="predicted", description="none: the generator sees the image only; given: "
                                  "plus the occluder mask (restore needs --mask); predicted: plus the mask its own "
                                  "segmentation network predicts.")
    composite: bool = Field(default=True, description="Output = mask x G + (1 - mask) x input: visible pixels stay "
                                                      "the input's (needs a mask).")
    mask_width: int = Field(default=16, ge=4, description="Channels of the segmentation network's first stage.")
    lambda_mask: float = Field(default=1.0, ge=0, description="Weight of the segmentation loss (BCE + Dice).")
    mask_grow: int = Field(default=1, ge=0, description="Pixels the true mask is grown by for the segmentation "
                                                         "target, given masks and the bank-checked mask (codec "
                                                         "colour bleed).")
    exemplars: int = Field(default=0, ge=0, description="At restore time, fill the hidden pixels from the k clean "
                           "training crops nearest by the visible pixels (unveil.methods.exemplars) instead of from "
                           "the generator; 0: the generator fills them.")
    exemplar_check: float = Field(default=0.0, ge=0, lt=1, description="With exemplars and a predicted mask: a "
                                  "pixel is hidden only where the network marks it (> 0.5) and the crop differs "
                                  "from the person's clean face (exemplar_check_by) by more than this share of the "
                                  "value range (visible otherwise); 0: the network's soft mask.")
    exemplar_check_by: ExemplarCheck = Field(default="bank", description="What the exemplar check compares a marked "
                                             "pixel with. bank: every clean crop the checkpoint keeps (visible where "
                                             "any has its colour there; the checked mask is then grown by mask_grow "
                                             "for the outline the check unmarks); fill: the exemplar fill of its "
                                             "neighbours (the check before; not grown).")
    exemplar_bank: int = Field(default=1000, ge=1, description="The most clean training crops the checkpoint keeps "
                               "for the exemplar fill (evenly spaced; 1000 crops are 12 MB at 64 px, 197 MB at 256).")
    exemplar_regions: int = Field(default=1, ge=1, le=16, description="With exemplars: neighbours are found for "
                                  "each cell of an R x R grid, by the visible pixels around it (Gaussian, one cell "
                                  "wide), and the fills blended; 1: one set of neighbours by the whole face.")

    @model_validator(mode="after")
    def _exemplars_need_a_mask(self) -> MaskOptions:
        if self.exemplars and self.mask_input == "none":
            raise ValueError("exemplars fill the hidden pixels, so they need a mask (mask_input given or predicted)")
        return self


#: The mask options that act at restore time only (``unveil restore --set``): they change how the trained networks'
#: output and mask are used, never the networks.
RESTORE_OPTIONS = ("composite", "mask_grow", "exemplars", "exemplar_check", "exemplar_check_by", "exemplar_regions")


@dataclass
class Restored:
    """One mask-aware forward pass: the composite ``out``, the generator's ``raw`` output, the ``mask`` used
    (None without one) and the segmentation ``logits`` (None unless predicted)."""

    out: torch.Tensor
    raw: torch.Tensor
    mask: torch.Tensor | None
    logits: torch.Tensor | None


def make_segmenter(options: MaskOptions) -> OcclusionSegmenter | None:
    """The segmentation network a method with these options owns (None unless the mask is predicted)."""
    return OcclusionSegmenter(options.mask_width) if options.mask_input == "predicted" else None


def generator_channels(options: MaskOptions, image_channels: int = 3) -> int:
    """Input channels of the generator: the image, plus the mask unless ``mask_input`` is none."""
    return image_channels + (options.mask_input != "none")


class MaskAwareGenerator(nn.Module):
    """A generator ``G`` that may see a mask channel and composite its output into the visible pixels; with
    ``mask_input`` predicted the segmentation network ``M`` supplies the mask. A view over a method's own G and M
    (methods keep them as their submodules, so checkpoints name them ``G.*`` and ``M.*``)."""

    def __init__(self, generator: nn.Module, segmenter: nn.Module | None, options: MaskOptions,
                 exemplars: ExemplarFill | None = None) -> None:
        super().__init__()
        self.G, self.M, self.E = generator, segmenter, exemplars
        self.mask_input, self.composite, self.grow = options.mask_input, options.composite, options.mask_grow
        self.exemplar_check, self.exemplar_check_by = options.exemplar_check, options.exemplar_check_by
        if (self.M is None) != (self.mask_input != "predicted"):
            raise ValueError("a segmentation network goes with mask_input predicted, and only with it")

    @property
    def checks_exemplars(self) -> bool:
        """Whether restore checks the predicted mask against the person's clean crops (:meth:`checked`)."""
        return bool(self.exemplar_check) and self.E is not None and self.mask_input == "predicted"

    def checked(self, a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The predicted ``mask`` of crops ``a`` checked against the exemplar bank (:func:`bank_checked_mask`, then
        grown by ``mask_grow``) or against the exemplar fill (:func:`checked_mask`), as ``exemplar_check_by`` says."""
        assert self.E is not None
        if self.exemplar_check_by == "fill":
            return checked_mask(a, mask, self.E(a, mask), self.exemplar_check)
        return grow_mask(bank_checked_mask(a, mask, self.E, self.exemplar_check), self.grow)

    def forward(self, a: torch.Tensor, given: torch.Tensor | None = None, mask_gradient: bool = False) -> Restored:
        """Restore ``a`` (N, 3, H, W) in [-1, 1]; ``given`` is the true / given mask (N, 1, H, W) in {0, 1}.
        A predicted mask is detached (G learns from it, M only from its own loss) unless ``mask_gradient``."""
        mask, logits = self.mask_of(a, given, mask_gradient)
        raw = self.G(a if mask is None else torch.cat([a, mask * 2 - 1], 1))
        out = raw if mask is None or not self.composite else mask * raw + (1 - mask) * a
        return Restored(out, raw, mask, logits)

    def mask_of(self, a: torch.Tensor, given: torch.Tensor | None = None, mask_gradient: bool = False
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The mask this restorer uses for ``a`` (None without one) and the segmentation logits (None unless
        predicted); see :meth:`forward`."""
        if self.mask_input == "predicted":
            logits = self.M(a)
            mask = torch.sigmoid(logits.float()).to(a.dtype)
            return (mask if mask_gradient else mask.detach()), logits
        if self.mask_input == "given":
            if given is None:
                raise UnveilError("This restorer takes the occluder mask as input (mask_input given); give it "
                                  "with --mask.")
            return grow_mask(given.to(a.dtype), self.grow), None
        return None, None


def restore_as_inference(restorer: MaskAwareGenerator, a: torch.Tensor, mask: torch.Tensor | None,
                         exemplars: bool = True) -> Restored:
    """``restorer`` as restore runs it: a batch-normed generator sees each image alone in batch-statistics mode
    (see :func:`unveil.restorers.batch_statistics`), so a crop restores the same whatever its batch; with an
    exemplar bank (and ``exemplars``), the exemplar fill replaces the generator's in the hidden pixels."""
    from unveil.restorers import batch_statistics, uses_batch_norm

    if exemplars and restorer.E is not None:  # the generator's fill would be thrown away: do not run it
        used, logits = restorer.mask_of(a, mask)
        if restorer.checks_exemplars:
            used = restorer.checked(a, used)
        fill = restorer.E(a, used)  # neighbours by the pixels known to be visible
        return Restored(used * fill + (1 - used) * a, fill, used, logits)
    if not uses_batch_norm(restorer.G):
        return restorer(a, mask)
    with batch_statistics(restorer.G):
        parts = [restorer(a[i:i + 1], None if mask is None else mask[i:i + 1]) for i in range(len(a))]

    def joined(name: str) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    return Restored(joined("out"), joined("raw"), joined("mask"), joined("logits"))  # type: ignore[arg-type]


def exemplar_fill(options: MaskOptions, data: PairedData, root: Path) -> ExemplarFill | None:
    """The exemplar bank of a method with these options (None unless ``exemplars``): its clean training faces (the
    clean twins of given pairs, the clean rows of synthesized ones) at the restore side."""
    if not options.exemplars:
        return None
    paths = data.clean_rows["clean" if data.given else "image"]
    return ExemplarFill(load_bank(root, paths.tolist(), data.face_size, options.exemplar_bank), options.exemplars,
                        options.exemplar_regions)


def saved_exemplars(options: MaskOptions, state: dict[str, torch.Tensor]) -> ExemplarFill | None:
    """The exemplar bank kept in a checkpoint's network state (``E.images``), or None."""
    images = state.get("E.images")
    if not options.exemplars:
        return None
    if images is None:
        raise UnveilError("This checkpoint keeps no exemplar bank (it was trained without --exemplars), so it cannot "
                          "fill from exemplars; retrain with --exemplars K.")
    return ExemplarFill(images, options.exemplars, options.exemplar_regions)


def load_paired_state(model: nn.Module, saved: Checkpoint) -> int:
    """Load a paired method's networks and exemplar bank (``model.E``, when its options use one) from ``saved``;
    the face size it restores at."""
    state = saved.network_state()
    model.E = saved_exemplars(model.config, state)
    model.load_state_dict(state)
    return int(saved.outputs.get("face_size", saved.config["crop_size"]))


def emotion_classes(names: pd.Series) -> list[str]:
    """The emotion classes present in ``names``: the vocabulary's first (neutral, then the basic emotions), then
    any others in alphabetical order (a judge that does not know them says so)."""
    present = set(names.dropna())
    known = ("neutral", *BASIC_EMOTIONS)
    return [e for e in known if e in present] + sorted(present - set(known))


@dataclass
class PairedData:
    """A paired method's datasets and what inference needs to know of them."""

    train_set: Dataset
    val_set: Dataset | None
    face_size: int
    emotions: list[str]
    aus: list[str]
    clean_rows: pd.DataFrame  # the rows whose clean faces are the targets (the hybrid term needs the others)
    given: bool = False  # the pairs are given (clean twins in the "clean" column), not drawn on clean rows


def paired_data(config: TrainConfig, options: PairOptions, table: pd.DataFrame, root: Path, seed: int,
                progress: bool = True) -> PairedData:
    """Training and validation pairs for ``config`` (labels of the clean faces included): the occluded rows
    (``domain_a``) with their clean twins, or occluders synthesized on the clean rows (``domain_b``)."""
    from unveil.data.datasets import (Augment, PairedDataset, au_label_columns, emotion_names, restore_side,
                                      row_labels, select)

    c = config
    swap = c.direction == "BtoA"
    synthesized = options.pairs == "synthesized"
    if synthesized and swap:
        raise UnveilError("direction BtoA (adding the obstruction) needs given pairs, not synthesized ones.")
    domain = c.domain_b if synthesized else c.domain_a
    rows = {split: select(table, domain, split) for split in ("train", "val")}
    rows["train"] = rows["train"].iloc[:c.max_dataset_size]
    if rows["train"].empty:
        kind = "clean (domain_b)" if synthesized else "occluded (domain_a)"
        raise UnveilError(f"No {kind} training rows match {domain}; check the samples and the domain filters.")
    emotions = emotion_classes(emotion_names(rows["train"]))
    aus = au_label_columns(rows["train"])
    augment = {"train": Augment(c.load_size, c.crop_size, c.flip, preprocess=c.preprocess),
               "val": Augment(c.load_size, c.crop_size, train=False, preprocess=c.preprocess)}
    sets: dict[str, Dataset | None] = {}
    for split, part in rows.items():
        if part.empty:
            sets[split] = None
            continue
        labels = row_labels(part, emotions, aus)
        if synthesized:
            from unveil.data.occlusion import load_mask_templates
            from unveil.data.pairs import SynthesizedPairs, crop_landmarks

            templates = load_mask_templates(options.mask_templates) if options.mask_templates else None
            jpeg = None if options.jpeg_quality >= 100 else (options.jpeg_quality, max(options.jpeg_quality, 95))
            # validation: one occluded copy per face, the same every epoch
            sets[split] = SynthesizedPairs(root, part, crop_landmarks(root, part["image"].tolist(), progress),
                                           augment[split], options.occluder_list,
                                           per_image=options.per_image if split == "train" else 1,
                                           jpeg=jpeg, labels=labels, templates=templates,
                                           seed=seed if split == "train" else seed + 1)
        else:
            sets[split] = PairedDataset(root, part, augment[split], seed, swap=swap, labels=labels)
    face_size = restore_side(root / rows["train"]["image"].iloc[0], c.preprocess, c.crop_size)
    return PairedData(sets["train"], sets["val"], face_size, emotions, aus, rows["train"],  # type: ignore[arg-type]
                      given=not synthesized)


def mask_scores(mask: torch.Tensor | None, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Intersection and union of the used mask (> 0.5) with the true one, for the mask IoU of a validation."""
    if mask is None:
        return {}
    used, true = mask > 0.5, truth > 0.5
    return {"mask_inter": (used & true).sum().float(), "mask_union": (used | true).sum().float()}


def weighted_error(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor | None, hidden: float, visible: float,
                   power: int = 1) -> torch.Tensor:
    """Mean |fake - real| ** power, pixels weighted ``hidden`` where ``mask`` is 1 and ``visible`` elsewhere."""
    error = (fake - real).abs() ** power
    if mask is None or (hidden == 1.0 and visible == 1.0):
        return error.mean()
    return (error * (mask * hidden + (1 - mask) * visible)).mean()


def as_image(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """A mask as a 3-channel image row in [-1, 1] for sample grids (black where none)."""
    if mask is None:
        return -torch.ones_like(like)
    return (mask.float() * 2 - 1).expand(-1, 3, -1, -1)


def grid_items(items: list[dict], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A, B and mask of sample-grid items as batches on ``device``."""
    stack = {k: torch.stack([it[k] for it in items]).to(device) for k in ("A", "B", "mask")}
    return stack["A"], stack["B"], stack["mask"]
