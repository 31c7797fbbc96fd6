"""Adversarial pieces shared by the image-to-image methods: GAN losses (LSGAN, vanilla, WGAN-GP), the
gradient penalty and the image history pool of Shrivastava et al., as the reference CycleGAN code uses them."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from unveil.errors import UnveilError

GanMode = Literal["lsgan", "vanilla", "wgangp"]


class GANLoss(nn.Module):
    """Loss of a discriminator's output map against "real" or "fake".

    ``lsgan``: mean squared error to 1 / 0; ``vanilla``: binary cross-entropy with logits; ``wgangp``: the
    Wasserstein critic loss (-mean for real, +mean for fake; add :func:`gradient_penalty`).
    """

    def __init__(self, gan_mode: GanMode | str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if gan_mode not in ("lsgan", "vanilla", "wgangp"):
            raise UnveilError(f"Unknown GAN loss '{gan_mode}'; choose lsgan, vanilla or wgangp.")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(real_label))
        self.register_buffer("fake_label", torch.tensor(fake_label))
        self.loss = nn.MSELoss() if gan_mode == "lsgan" else nn.BCEWithLogitsLoss() if gan_mode == "vanilla" else None

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        if self.gan_mode == "wgangp":
            return -prediction.mean() if target_is_real else prediction.mean()
        target = (self.real_label if target_is_real else self.fake_label).to(prediction.dtype)
        return self.loss(prediction, target.expand_as(prediction))  # type: ignore[misc]


def gradient_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     kind: str = "mixed", constant: float = 1.0, weight: float = 10.0,
                     alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``weight * E[(||grad D(x)||_2 - constant)^2]`` at ``x`` = real, fake or a random mix
    of both (Gulrajani et al. 2017); ``alpha`` (one per image) fixes the mix, e.g. drawn per sample by a dataset."""
    if kind == "real":
        points = real
    elif kind == "fake":
        points = fake
    elif kind == "mixed":
        if alpha is None:
            alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
        alpha = alpha.to(real.dtype).reshape(-1, 1, 1, 1)
        points = alpha * real + (1 - alpha) * fake
    else:
        raise UnveilError(f"Unknown gradient-penalty kind '{kind}'; choose real, fake or mixed.")
    points = points.detach().requires_grad_(True)
    output = discriminator(points)
    (grads,) = torch.autograd.grad(output, points, grad_outputs=torch.ones_like(output), create_graph=True)
    norms = (grads.flatten(1) + 1e-16).norm(2, dim=1)
    return weight * ((norms - constant) ** 2).mean()


class ImagePool:
    """A history of generated images (size 50 in CycleGAN): the discriminator sees a mix of current and past
    fakes, which steadies training. With ``pool_size`` 0 it passes images through."""

    def __init__(self, pool_size: int = 50, rng: random.Random | None = None) -> None:
        if pool_size < 0:
            raise UnveilError(f"The pool size must be at least 0, not {pool_size}.")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.rng = rng or random.Random(0)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """For each image: while the pool fills, store and return it; then with probability 1/2 return a stored
        image and store the new one in its place, else return the new one."""
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() > 0.5:
                k = self.rng.randrange(self.pool_size)
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state(self) -> dict[str, torch.Tensor]:
        """Pool contents and generator state as tensors (for checkpoints)."""
        state: dict[str, torch.Tensor] = {"rng": torch.tensor(list(_encode_rng(self.rng)), dtype=torch.float64)}
        if self.images:
            state["images"] = torch.cat(self.images, 0).cpu()
        return state

    def load_state(self, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        images = state.get("images")
        self.images = [] if images is None else [im.unsqueeze(0).to(device) for im in images]
        self.rng.setstate(_decode_rng(state["rng"].tolist()))


def _encode_rng(rng: random.Random) -> list[float]:
    version, internal, gauss = rng.getstate()
    return [float(version), float(-1 if gauss is None else 1), float(gauss or 0.0), *map(float, internal)]


def _decode_rng(values: list[float]) -> tuple:
    version, has_gauss, gauss, *internal = values
    return (int(version), tuple(int(v) for v in internal), gauss if has_gauss > 0 else None)
