"""Restorers: what ``unveil restore`` runs on face crops, apart from how they were trained.

A restorer takes a batch of RGB face crops (uint8, ``size`` x ``size``) with one :class:`FrameContext` per crop
(the frame's index, the occluder mask where given or predicted, target conditions such as AUs) and returns the
restored crops. It may keep state across the frames of one video (``reset`` starts a new one) and may use
gradients (latent inversion optimises per image). A checkpoint records its method, and
:func:`unveil.methods.registry.load_restorer` builds the right restorer from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrameContext:
    """What a restorer may know of a crop besides its pixels."""

    index: int  # the frame's index in its video (0 for an image)
    mask: np.ndarray | None = None  # the occluder in crop coordinates, float in [0, 1] (1 = hidden); None: unknown
    conditions: dict[str, float] = field(default_factory=dict)  # e.g. target AU intensities


@runtime_checkable
class Restorer(Protocol):
    """Restores face crops; ``method`` and ``describe()`` say what made the restored (C) frames."""

    method: str
    size: int  # the side of the crops it takes and returns

    def __call__(self, crops: Sequence[np.ndarray], contexts: Sequence[FrameContext] | None = None
                 ) -> list[np.ndarray]: ...

    def reset(self) -> None:
        """Forget what was kept from earlier frames (a new video starts)."""

    def describe(self) -> str:
        """One line for reports: the method, the network and where it came from."""


@contextlib.contextmanager
def batch_statistics(net: nn.Module) -> Iterator[None]:
    """Batch-norm layers normalise by the statistics of the batch they see, as the reference pix2pix tests (its
    test.py leaves the network in training mode, batch size 1); running averages are left untouched, and dropout
    stays off, so the same frame gives the same output."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, (training, momentum) in zip(norms, saved, strict=True):
            m.train(training)
            m.momentum = momentum


def uses_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def forward_per_image(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net`` on each image of ``x`` alone, in batch-statistics mode (see :func:`batch_statistics`)."""
    with batch_statistics(net):
        return torch.cat([net(x[i:i + 1]) for i in range(len(x))])


@dataclass
class GeneratorRestorer:
    """A feed-forward image-to-image generator (CycleGAN's G_A, pix2pix's G) at a fixed crop size.

    With ``per_image_statistics`` (batch-normed generators) every crop is run alone in batch-statistics
    mode (see :func:`batch_statistics`), so a crop's output does not depend on the others in its batch.
    """

    generator: nn.Module
    size: int
    device: torch.device
    method: str
    source: str = ""
    per_image_statistics: bool = False

    def __post_init__(self) -> None:
        self.generator.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, crops: Sequence[np.ndarray], contexts: Sequence[FrameContext] | None = None
                 ) -> list[np.ndarray]:
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(self.device)
        y = forward_per_image(self.generator, x) if self.per_image_statistics else self.generator(x)
        return list(y.clamp(-1, 1).add(1.0).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())

    def reset(self) -> None:
        return None

    def describe(self) -> str:
        params = sum(p.numel() for p in self.generator.parameters())
        return f"{self.method} ({type(self.generator).__name__}, {params / 1e6:.2f} M parameters, {self.size} px)" + (
            f" from {self.source}" if self.source else "")


@dataclass
class MaskAwareRestorer:
    """A mask-aware generator (:class:`unveil.methods.paired.MaskAwareGenerator`): the mask comes from each crop's
    context (given) or from its segmentation network (predicted), and the output is composited into the visible
    pixels. ``last_masks`` holds the masks of the latest call (float in [0, 1], crop coordinates)."""

    generator: nn.Module  # a MaskAwareGenerator
    size: int
    device: torch.device
    method: str
    source: str = ""
    last_masks: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.generator.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, crops: Sequence[np.ndarray], contexts: Sequence[FrameContext] | None = None
                 ) -> list[np.ndarray]:
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(self.device)
        given = None
        if self.generator.mask_input == "given":
            masks = [c.mask for c in contexts or []]
            if len(masks) != len(crops) or any(m is None for m in masks):
                from unveil.errors import UnveilError

                raise UnveilError(f"The {self.method} restorer takes the occluder mask as input; give it with --mask.")
            given = torch.from_numpy(np.stack(masks)).float()[:, None].to(self.device)
        from unveil.methods.paired import restore_as_inference

        result = restore_as_inference(self.generator, x, given)  # a batch-normed G: each crop alone
        self.last_masks = ([] if result.mask is None else
                           list(result.mask[:, 0].float().cpu().numpy()))
        return list(result.out.clamp(-1, 1).add(1.0).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())

    @property
    def segments(self) -> bool:
        """Whether :meth:`segment` can find occluders (the mask is predicted, not given)."""
        return self.generator.M is not None

    def segment(self, image: np.ndarray) -> np.ndarray:
        """The segmentation network's occluder mask (float in [0, 1]) of an RGB image of any size, e.g. a whole
        frame scaled so that the face has the size the network was trained at."""
        from unveil.nets.segmentation import occluder_probabilities

        return occluder_probabilities(self.generator.M, image, self.device)

    def reset(self) -> None:
        self.last_masks = []

    def describe(self) -> str:
        g = self.generator
        params = sum(p.numel() for p in g.G.parameters())
        masks = {"none": "no mask", "given": "masks given"}
        if g.M is not None:
            masks["predicted"] = (f"masks predicted by its segmentation network "
                                  f"({sum(p.numel() for p in g.M.parameters()) / 1e6:.2f} M)")
        composite = ", composited into the visible pixels" if g.composite and g.mask_input != "none" else ""
        if g.E is not None:
            regions = f", found per cell of a {g.E.regions} x {g.E.regions} grid" if g.E.regions > 1 else ""
            composite += (f"; hidden pixels filled from the {g.E.k} nearest of {len(g.E.images)} clean training "
                          f"crops (exemplars{regions})")
            if g.checks_exemplars and g.exemplar_check_by == "fill":
                composite += f", a marked pixel kept where it matches their fill to within {g.exemplar_check:.0%}"
            elif g.checks_exemplars:
                composite += (f", a marked pixel kept where any of the {len(g.E.images)} has its colour there to "
                              f"within {g.exemplar_check:.0%} (the rest grown by {g.grow} px)")
        return (f"{self.method} ({type(g.G).__name__}, {params / 1e6:.2f} M parameters, {self.size} px; "
                f"{masks[g.mask_input]}{composite})" + (f" from {self.source}" if self.source else ""))
