"""Exemplar fill: the hidden pixels of a crop taken from the clean training faces that look most like its visible
pixels (k nearest neighbours under the occluder mask, averaged with weights that fall with the distance).

Why: a restorer trained per subject on its normal recordings has, in those recordings, the same person's face in
nearly every expression it will meet. A small generator trained for minutes on a CPU draws that person's average
face inside large occluders (the demo's de-occluders did: the image CNN got 6 % of the expression back); the
faces whose visible parts (eye corners, mouth gaps between cables) match the occluded crop's carry the expression
under the occluder. The same idea as Exemplar GANs (Dolhansky and Ferrer, CVPR 2018: in-painting from a reference
image of the same person), here with retrieval instead of a learnt reference encoder.

The bank lives in the restorer's checkpoint (a buffer of uint8 crops), so a checkpoint restores on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Distances are measured at this side at most (the fill itself is taken at the crop's full size).
RETRIEVAL_SIDE = 64


class ExemplarFill(nn.Module):
    """Fills the hidden pixels from the ``k`` clean crops nearest by the visible ones; ``images`` is the bank, uint8
    (N, 3, S, S). Weights: exp(-d / d_1), d the mean squared difference over visible pixels and d_1 the nearest's."""

    def __init__(self, images: torch.Tensor, k: int, regions: int = 1) -> None:
        super().__init__()
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or not len(images):
            raise ValueError("the exemplar bank is a non-empty uint8 tensor (N, 3, S, S)")
        if regions < 1:
            raise ValueError("regions is the side of the grid of retrieval regions, at least 1")
        self.k, self.regions = int(k), int(regions)
        self.register_buffer("images", images)
        self._small: torch.Tensor | None = None
        self._colours: torch.Tensor | None = None

    @property
    def side(self) -> int:
        return int(self.images.shape[-1])

    def _require_side(self, a: torch.Tensor) -> None:
        if a.shape[-2:] != self.images.shape[-2:]:
            raise ValueError(f"crops of {tuple(a.shape[-2:])} px for an exemplar bank of {self.side} px")

    def _retrieval_images(self) -> torch.Tensor:
        """The bank at the retrieval side in [0, 1], float (N, 3 * s * s), computed once."""
        if self._small is None or self._small.device != self.images.device:
            small = self.images.float().div(255)
            if self.side > RETRIEVAL_SIDE:
                small = nn.functional.interpolate(small, size=RETRIEVAL_SIDE, mode="area")
            self._small = small.flatten(1)
        return self._small

    def colour_distance(self, a: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S): per pixel of ``a`` (B, 3, S, S) in [-1, 1], how far its colour is from the nearest colour
        any bank crop has at that pixel (largest channel difference, share of the value range)."""
        self._require_side(a)
        if self._colours is None or self._colours.device != self.images.device:
            self._colours = self.images.flatten(2).permute(2, 0, 1).float().div(255).contiguous()  # (P, N, 3)
        x = a.float().add(1).div(2).flatten(2).permute(2, 0, 1).contiguous()  # (P, B, 3)
        b, n = x.shape[1], self._colours.shape[1]
        step = max(1, 2**24 // (b * n))  # pixels at a time: a P x B x N distance table would not fit at 256 px
        nearest = torch.cat([torch.cdist(x[i:i + step], self._colours[i:i + step], p=float("inf")).amin(2)
                             for i in range(0, len(x), step)])  # (P, B)
        return nearest.T.reshape(b, 1, *a.shape[-2:]).to(a.dtype)

    def neighbours(self, a: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, R, k) of the nearest bank crops to each of ``a`` (B, 3, S, S) in [-1, 1] over its visible
        pixels (``mask`` (B, 1, S, S) below 0.5), for each of the R = regions^2 retrieval regions, and their weights
        (B, R, k), summing to 1. A region's distance weighs the visible pixels by :func:`region_weights`."""
        bank = self._retrieval_images()
        x, visible = a.float().add(1).div(2), (mask.float() < 0.5).float()
        if a.shape[-1] > RETRIEVAL_SIDE:
            x = nn.functional.interpolate(x, size=RETRIEVAL_SIDE, mode="area")
            visible = (nn.functional.interpolate(visible, size=RETRIEVAL_SIDE, mode="area") > 0.999).float()
        regions = region_weights(self.regions, x.shape[-1], x.device)  # (R, s, s)
        weights = (visible * regions[None]).unsqueeze(2).expand(-1, -1, 3, -1, -1)  # (B, R, 3, s, s)
        b, r = weights.shape[:2]
        weights = weights.reshape(b * r, -1)
        x = x.unsqueeze(1).expand(-1, r, -1, -1, -1).reshape(b * r, -1)
        # weighted sum over pixels of (bank - x)^2 = bank^2 . w - 2 bank . (w x) + (w x) . x, for every pair at once
        sums = (bank * bank) @ weights.T - 2 * bank @ (weights * x).T + (weights * x * x).sum(1)
        distance = (sums / weights.sum(1).clamp(min=1e-6)).T.clamp(min=0)  # (B * R, N)
        k = min(self.k, distance.shape[1])
        nearest = torch.topk(distance, k, dim=1, largest=False)
        scale = nearest.values[:, :1].clamp(min=1e-6)
        weight = torch.softmax(-nearest.values / scale, dim=1)
        return nearest.indices.reshape(b, r, k), weight.reshape(b, r, k)

    def forward(self, a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The exemplar fill of ``a`` (B, 3, S, S) in [-1, 1]: per region the weighted mean of its neighbours,
        regions blended by :func:`region_weights`; in [-1, 1]."""
        self._require_side(a)
        index, weight = self.neighbours(a, mask)
        blend = region_weights(self.regions, self.side, a.device)  # (R, S, S)
        blend = blend / blend.sum(0, keepdim=True)
        fill = torch.zeros(a.shape, dtype=torch.float32, device=a.device)
        for region in range(index.shape[1]):  # one region at a time: B x k crops in memory, not B x R x k
            chosen = self.images[index[:, region]].float().div(127.5).sub(1)  # (B, k, 3, S, S)
            fill += (chosen * weight[:, region, :, None, None, None]).sum(1) * blend[region]
        return fill.to(a.dtype)


def region_weights(regions: int, side: int, device: torch.device | None = None) -> torch.Tensor:
    """(regions^2, side, side) spatial weights of a grid of retrieval regions: a Gaussian around each cell's centre,
    sigma one cell wide, so that a region mostly hidden still has visible pixels a little farther out to match by.
    One region weighs every pixel 1 (the whole-face retrieval).

    Why regions: matched over the whole face, the neighbours are the frames whose eyes and brows match (the upper
    face is most of what sensors leave visible), and their mouths need not (Schaede's exercises move one part of the
    face at a time); matched around the mouth, the lips showing between the cables choose the mouth."""
    if regions == 1:
        return torch.ones(1, side, side, device=device)
    cell = side / regions
    centres = (torch.arange(regions, device=device, dtype=torch.float32) + 0.5) * cell
    grid = torch.arange(side, device=device, dtype=torch.float32) + 0.5
    along = torch.exp(-0.5 * ((grid[None] - centres[:, None]) / cell) ** 2)  # (regions, side)
    return (along[:, None, :, None] * along[None, :, None, :]).reshape(regions * regions, side, side)


def checked_mask(a: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor, threshold: float) -> torch.Tensor:
    """A segmentation network's ``mask`` (B, 1, S, S) checked against the exemplar ``fill`` of crops ``a`` (both in
    [-1, 1]): hidden (1) where the network marks a pixel (> 0.5) and the crop differs there from the person's clean
    neighbours by more than ``threshold`` (largest channel difference, share of the value range), else visible (0).

    Why: a network trained on drawn occluders marks the skin around real ones too and leaves a soft haze over the
    whole face; compositing through it blends every visible pixel with the neighbours' mean and replaces the eyes
    and mouth it over-marks, which is where the expression is. A pixel that matches the same person's clean face is
    visible, whatever the network says."""
    differs = (a.float() - fill.float()).abs().amax(1, keepdim=True) / 2 > threshold
    return ((mask > 0.5) & differs).to(a.dtype)


def bank_checked_mask(a: torch.Tensor, mask: torch.Tensor, bank: ExemplarFill, threshold: float) -> torch.Tensor:
    """A segmentation network's ``mask`` (B, 1, S, S) checked against every crop of the exemplar ``bank``: hidden (1)
    where the network marks a pixel (> 0.5) and no clean crop of the person has, at that pixel, the crop's colour
    to within ``threshold`` (largest channel difference, share of the value range), else visible (0).

    Why not against the fill (:func:`checked_mask`): the fill is a mean of neighbours found by the rest of the face,
    so an open mouth the network takes for a white sensor (teeth) differs from it and stays hidden, replaced by a
    closed one; some clean frame of the same person shows teeth there, while no frame shows a sensor's white or a
    cable's red on the cheek. Measured on the demo's S01: the mouth stays the camera's (README)."""
    return ((mask > 0.5) & (bank.colour_distance(a) > threshold)).to(a.dtype)


def load_bank(root: Path, images: Sequence[str], side: int, limit: int) -> torch.Tensor:
    """At most ``limit`` of the crops ``images`` (paths under ``root``, evenly spaced) resized to ``side`` as the
    restorer sees them at restore time (the whole crop, no training crop), uint8 (N, 3, side, side)."""
    from unveil.data.datasets import load_image
    from unveil.data.faces import square_resize
    from unveil.data.sampling import spread

    chosen = spread(len(images), limit)
    crops = [square_resize(load_image(root / images[i]), side) for i in chosen]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
