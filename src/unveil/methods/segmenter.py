"""The occlusion segmenter alone: the small U-Net of the mask-aware restorers (:mod:`unveil.nets.segmentation`)
trained on occluders drawn on clean faces, the hidden pixels known exactly (seed 003's future work: automatic
masks). Its masks feed restorers that need to know which pixels are hidden (latent inversion, ``--mask`` of the
paired methods) and ``unveil experiment automask`` compares them with the masks found from landmarks.

A segmenter run's network is saved as ``M.*``, as inside a de-occluder or pix2pix run, so :func:`load_segmenter`
reads the segmentation network of any of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from unveil.errors import UnveilError
from unveil.methods.paired import PairOptions, as_image, grid_items, mask_scores, paired_data
from unveil.methods.registry import MethodSpec, register
from unveil.nets.segmentation import OcclusionSegmenter, grow_mask, mask_loss, occluder_probabilities
from unveil.train.method import MethodBase

if TYPE_CHECKING:
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig
    from unveil.train.method import Batches, Step


class SegmenterConfig(PairOptions):
    """Model options: the pairs (drawn on clean crops by default) and the network's width."""

    pairs: Literal["given", "synthesized"] = Field(
        default="synthesized", description="synthesized: occluders drawn on the clean rows (domain_b); given: the "
                                           "occluded rows (domain_a) with their true masks.")
    occluders: str = Field(default="mask", description=PairOptions.model_fields["occluders"].description)
    per_image: int = Field(default=2, ge=1, description="Occluded copies of each clean crop per epoch.")
    mask_width: int = Field(default=16, ge=4, description="Channels of the network's first stage.")
    mask_grow: int = Field(default=0, ge=0, description="Pixels the true mask is grown by for the training target "
                                                         "(1 for video, where an occluder's colour bleeds).")
    lr: float = Field(default=1e-3, gt=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)


class Segmenter(nn.Module):
    """The segmentation network under the name the mask-aware restorers give theirs (``M``)."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        super().__init__()
        self.config = config or SegmenterConfig()
        self.M = OcclusionSegmenter(self.config.mask_width)


class SegmenterMethod(MethodBase):
    """BCE + Dice of the predicted mask against the drawn (or given) occluder's true mask."""

    name = "segmenter"
    monitor = "M_seg"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        self.config = config
        self.model = self.module = Segmenter(config.model)
        data = paired_data(config, config.model, table, root, seed)
        self.train_set, self.val_set, self.face_size = data.train_set, data.val_set, data.face_size

    def describe(self) -> dict[str, Any]:
        return {"face_size": self.face_size}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config.model
        return {"M": torch.optim.Adam(self.model.parameters(), lr=c.lr, betas=(c.beta1, 0.999))}

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        with step.autocast():
            loss = mask_loss(self.model.M(batch["A"]), grow_mask(batch["mask"], self.config.model.mask_grow))
        step.backward(loss)
        return {"M_seg": loss}

    def validate(self, batches: Batches) -> dict[str, float]:
        """The segmentation loss and the IoU (> 0.5) with the true masks, grown as the training target is."""
        loss = inter = union = count = 0.0
        for batch in batches:
            target = grow_mask(batch["mask"], self.config.model.mask_grow)
            logits = self.model.M(batch["A"])
            loss += float(mask_loss(logits, target)) * len(target)
            count += len(target)
            scores = mask_scores(torch.sigmoid(logits.float()), target)
            inter, union = inter + float(scores["mask_inter"]), union + float(scores["mask_union"])
        return {"M_seg": loss / max(count, 1.0), "mask_iou": inter / max(union, 1.0)} if count else {}

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor]:
        """The occluded input, the predicted mask and the true one."""
        a, _, mask = grid_items(items, next(self.model.parameters()).device)
        return [a, as_image(torch.sigmoid(self.model.M(a).float()), a), as_image(mask, a)]


class SegmenterModel:
    """Occluder masks of RGB images from a trained segmentation network: each image is scaled to the size the
    network learnt at (its face crops), segmented, and the probabilities scaled back (bilinear, so the outline is
    finer than the network's pixels)."""

    def __init__(self, network: OcclusionSegmenter, size: int, device: torch.device, source: str) -> None:
        self.network, self.size, self.device, self.source = network.to(device).eval(), size, device, source

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Float32 (H, W) in [0, 1]: how sure the network is that each pixel of ``image`` (RGB uint8) is hidden."""
        height, width = image.shape[:2]
        scale = self.size / max(height, width)
        small = cv2.resize(image, (max(8, round(width * scale)), max(8, round(height * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        p = occluder_probabilities(self.network, small, self.device)
        return cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)

    def probabilities_of(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`probabilities` of each image."""
        return [self.probabilities(image) for image in images]

    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Masks in {0, 1} (float32, 1 = hidden) of ``images``, each at its own size."""
        return [(p > 0.5).astype(np.float32) for p in self.probabilities_of(images)]

    def describe(self) -> str:
        return (f"segmentation network ({sum(p.numel() for p in self.network.parameters()) / 1e6:.2f} M, "
                f"{self.size} px) from {self.source}")


def load_segmenter(checkpoint: str | os.PathLike[str] | Checkpoint, device: str | torch.device = "cpu"
                   ) -> SegmenterModel:
    """The segmentation network of a segmenter, de-occluder or pix2pix checkpoint (file or run folder); one
    sentence for a checkpoint without one."""
    from unveil.devices import select_device
    from unveil.train.checkpoint import Checkpoint, read_checkpoint

    saved = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint)
    state = {k.removeprefix("M."): v for k, v in saved.network_state().items() if k.startswith("M.")}
    if not state:
        raise UnveilError(f"{saved.path} holds no segmentation network; give a segmenter run, or a de-occluder or "
                          f"pix2pix run trained with mask_input predicted.")
    network = OcclusionSegmenter(int(saved.config["model"].get("mask_width", 16)))
    network.load_state_dict(state)
    size = int(saved.outputs.get("face_size", saved.config["crop_size"]))
    chosen = device if isinstance(device, torch.device) else select_device(device)
    return SegmenterModel(network, size, chosen, str(saved.path))


def _load(saved: Checkpoint, device: torch.device) -> SegmenterModel:
    return load_segmenter(saved, device)


#: The CPU preset: 72 -> 64 px crops, batch 16, 20 epochs (about 2 minutes on 2 cores for 300 faces x 2 copies).
CPU_PRESET: dict[str, Any] = {"n_epochs": 10, "n_epochs_decay": 10, "load_size": 72, "crop_size": 64,
                              "batch_size": 16}

register(MethodSpec(
    name="segmenter", summary="The occlusion segmenter alone: a small U-Net that finds occluders, trained on "
                              "occluders drawn on clean faces (automatic masks for inversion and masked restore).",
    config=SegmenterConfig, method=SegmenterMethod, load=_load, produces="occluder masks", data="paired",
    presets={"cpu": CPU_PRESET}, per_subject=False, report=("val_M_seg", "val_mask_iou")))

