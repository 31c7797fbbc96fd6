"""Masked latent inversion of a StyleGAN2 generator (seed 003): find the W+ latents (and noise maps) whose image
matches the visible pixels of a face, then take the generator's pixels where the face is hidden.

The projector follows the reference PyTorch port's ``projector.py``: Adam from the mean latent of 10,000 random
z, learning rate 0.1 with a cosine ramp-down over the last quarter and a linear ramp-up over the first 5 %,
Gaussian noise on the latents decaying to zero by 75 % of the steps, and the noise maps kept decorrelated
(regulariser 1e5) and renormalised. The loss is seed 003's: mean squared error on the visible pixels plus
lambda (0.8) times a perceptual distance of the masked images. Each image is optimised on its own (a batch
of images is one Adam over independent terms), so results do not depend on the batch.

Perceptual spaces, best first: LPIPS on VGG16 (``vgg16-397923af.pth`` found as for the LPIPS metric), VGG16's
conv1-conv2 features (the seed's; the same file), the trained discriminator's first blocks (a network unveil
has: every ``unveil train stylegan2`` run and the released files that include ``d``), or none (pixels only).
The choice is said in :meth:`InversionRestorer.describe`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from unveil.config import Config
from unveil.errors import UnveilError
from unveil.nets.stylegan2 import Discriminator, Generator
from unveil.progress import progress_bar
from unveil.restorers import FrameContext

if TYPE_CHECKING:
    from unveil.train.checkpoint import Checkpoint

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
Perceptual = Literal["auto", "lpips", "vgg", "discriminator", "none"]
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # images (n, 3, h, w) in [-1, 1] -> (n,)


class ProjectorConfig(Config):
    """Options of the masked W+ projector (the reference projector's schedule, seed 003's loss)."""

    steps: int = Field(default=1000, ge=1, description="Adam steps per image (the first frame of a video).")
    warm_steps: int = Field(default=200, ge=1, description="Steps for later video frames, which start from the "
                                                           "previous frame's latents.")
    lr: float = Field(default=0.1, gt=0)
    lr_rampup: float = Field(default=0.05, ge=0, le=1, description="Fraction of steps of the linear warm-up.")
    lr_rampdown: float = Field(default=0.25, gt=0, le=1, description="Fraction of steps of the cosine ramp-down.")
    latent_noise: float = Field(default=0.05, ge=0, description="Latent noise at the start, times the w spread.")
    noise_ramp: float = Field(default=0.75, gt=0, le=1, description="Fraction of steps after which it is zero.")
    noise_regularize: float = Field(default=1e5, ge=0, description="Weight of the noise maps' autocorrelation.")
    mse: float = Field(default=1.0, ge=0, description="Weight of the visible pixels' mean squared error.")
    perceptual_weight: float = Field(default=0.8, ge=0, description="lambda of the perceptual distance (seed 003).")
    perceptual: Perceptual = Field(default="auto", description="Perceptual space; auto takes the best available.")
    starts: int = Field(default=1, ge=1, description="Starts per image: the mean latent (or the encoder's), then "
                                                     "random w; the best final loss is kept.")
    start: Literal["mean", "encoder"] = Field(default="mean", description="The first start: the mean w (the "
                                              "reference projector) or the encoder's guess (a checkpoint with one).")
    n_mean_latent: int = Field(default=10_000, ge=1, description="Random z whose mean w is the start.")
    seed: int = Field(default=0, ge=0, description="Seeds the noise maps, the random starts and the latent noise.")
    warm_start: bool = Field(default=True, description="Video frames start from the previous frame's latents "
                                                       "(False: each frame from scratch, for comparison).")


def lr_at(t: float, lr: float, rampdown: float, rampup: float) -> float:
    """The projector's learning rate at progress ``t`` in [0, 1): cosine ramp-down, linear ramp-up."""
    ramp = min(1.0, (1 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return lr * ramp


def noise_regularization(noises: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per image: squared autocorrelation of each noise map with its one-pixel shifts, over a pyramid down to
    8x8 (keeps the noise maps from carrying the image)."""
    total = torch.zeros(noises[0].shape[0], device=noises[0].device)
    for noise in noises:
        size = noise.shape[2]
        while True:
            total = total + (noise * torch.roll(noise, 1, dims=3)).mean((1, 2, 3)).pow(2) \
                + (noise * torch.roll(noise, 1, dims=2)).mean((1, 2, 3)).pow(2)
            if size <= 8:
                break
            noise = noise.reshape(noise.shape[0], 1, size // 2, 2, size // 2, 2).mean((3, 5))
            size //= 2
    return total


@torch.no_grad()
def normalize_noises(noises: Sequence[torch.Tensor]) -> None:
    for noise in noises:
        mean = noise.mean((1, 2, 3), keepdim=True)
        std = noise.std((1, 2, 3), keepdim=True)
        noise.sub_(mean).div_(std)


def _normalized(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


def feature_distance(extract: Callable[[torch.Tensor], list[torch.Tensor]]) -> Distance:
    """Mean over layers of the squared difference of unit-normalised feature vectors (LPIPS without its learned
    layer weights)."""

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = extract(a), extract(b)
        return sum(((_normalized(x) - _normalized(y)) ** 2).sum(1).mean((1, 2)) for x, y in zip(fa, fb, strict=True)
                   ) / len(fa)

    return distance


def vgg_features(weights: str | None, device: torch.device) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """VGG16's relu1_2 and relu2_2 activations (seed 003's conv2), ImageNet-normalised input from [-1, 1]."""
    import torchvision

    from unveil.metrics.perceptual import LPIPS_BACKBONES, find_weights, load_state_dict

    file = find_weights(weights, LPIPS_BACKBONES["vgg"], "The VGG perceptual loss")
    net = torchvision.models.vgg16(weights=None).features[:9]
    state = load_state_dict(file)
    net.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")
                         and int(k.split(".")[1]) < 9})
    net.to(device).eval().requires_grad_(False)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def extract(x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - mean) / std
        relu1 = net[:4](x)
        return [relu1, net[4:](relu1)]

    return extract


def discriminator_features(discriminator: Discriminator, blocks: int = 3
                           ) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """The first ``blocks`` residual blocks of a trained StyleGAN2 discriminator (a face-trained feature space)."""
    discriminator.eval().requires_grad_(False)

    def extract(x: torch.Tensor) -> list[torch.Tensor]:
        found, out = [], x
        for block in list(discriminator.convs)[:blocks + 1]:
            out = block(out)
            found.append(out)
        return found[1:]

    return extract


def make_perceptual(choice: Perceptual, device: torch.device, discriminator: Discriminator | None = None,
                    weights: str | None = None) -> tuple[str, Distance | None]:
    """The perceptual distance asked for (``auto``: the best available) and its name for reports."""
    if choice in ("auto", "lpips"):
        try:
            from unveil.metrics.perceptual import LPIPS

            model = LPIPS(weights, net="vgg", device=str(device)).model.requires_grad_(False)
            return "LPIPS (VGG16)", lambda a, b: model(a, b).flatten()
        except UnveilError:
            if choice == "lpips":
                raise
    if choice in ("auto", "vgg"):
        try:
            return "VGG16 conv1-2 features", feature_distance(vgg_features(weights, device))
        except UnveilError:
            if choice == "vgg":
                raise
    if choice in ("auto", "discriminator"):
        if discriminator is not None:
            return "the StyleGAN2 discriminator's features (no VGG16 weights found)", feature_distance(
                discriminator_features(discriminator.to(device)))
        if choice == "discriminator":
            raise UnveilError("This StyleGAN2 checkpoint holds no discriminator for the perceptual loss; choose "
                              "--perceptual lpips, vgg or none.")
    return "none (visible pixels only; no VGG16 weights and no discriminator found)", None


@dataclass
class Projection:
    """What a projection found per image: its image in [-1, 1], W+ latents, noise maps and final loss."""

    images: torch.Tensor  # (n, 3, S, S)
    latents: torch.Tensor  # (n, n_latent, style_dim)
    noises: list[torch.Tensor]  # per layer (n, 1, h, w)
    losses: torch.Tensor  # (n,)


class Projector:
    """Projects images (with their hidden-pixel masks) into a generator's W+ space."""

    def __init__(self, generator: Generator, config: ProjectorConfig, distance: Distance | None,
                 device: torch.device, progress: bool = True, encoder: LatentEncoder | None = None) -> None:
        self.generator, self.config, self.distance, self.device = generator, config, distance, device
        self.progress, self.encoder = progress, encoder
        if config.start == "encoder" and encoder is None:
            raise UnveilError("This StyleGAN2 checkpoint has no inversion encoder; add one with 'unveil "
                              "train-encoder', or start from the mean.")
        self.generator.to(device).eval().requires_grad_(False)
        self.w_mean, self.w_std = generator.mean_latent(config.n_mean_latent,
                                                        torch.Generator().manual_seed(config.seed))

    def streams(self, target: torch.Tensor) -> list[torch.Generator]:
        """One random stream per image, seeded by the seed and the image's pixels: an image gets the same noise
        maps, starts and latent noise in any batch and on every call."""
        streams = []
        for image in target.detach().float().cpu().numpy():
            digest = hashlib.blake2b(image.tobytes(), digest_size=8, key=str(self.config.seed).encode()).digest()
            streams.append(torch.Generator().manual_seed(int.from_bytes(digest, "little") % 2 ** 63))
        return streams

    def _normal(self, streams: Sequence[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in streams]).to(self.device)

    def losses(self, images: torch.Tensor, target: torch.Tensor, visible: torch.Tensor,
               noises: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per image: seed 003's masked MSE + lambda * perceptual, plus the noise regulariser."""
        c = self.config
        mse = ((images - target).pow(2) * visible).sum((1, 2, 3)) / (visible.sum((1, 2, 3)) * 3).clamp(min=1)
        loss = c.mse * mse + c.noise_regularize * noise_regularization(noises)
        if self.distance is not None and c.perceptual_weight > 0:
            loss = loss + c.perceptual_weight * self.distance(images * visible, target * visible)
        return loss

    def project(self, target: torch.Tensor, hidden: torch.Tensor, start: torch.Tensor | None = None,
                noises: Sequence[torch.Tensor] | None = None, steps: int | None = None, label: str = "Inverting"
                ) -> Projection:
        """Optimise W+ (and noise) for ``target`` (n, 3, S, S) in [-1, 1], ignoring ``hidden`` (n, 1, S, S; 1 =
        hidden); from ``start`` latents and ``noises`` (a previous frame's), else from the mean latent (and
        ``starts - 1`` random w per image; the best final loss is kept)."""
        c, G = self.config, self.generator
        steps = steps or c.steps
        n = len(target)
        repeat = c.starts if start is None else 1
        streams = self.streams(target)
        streams = streams + [torch.Generator().manual_seed(int(torch.randint(2 ** 62, (), generator=g)))
                             for _ in range(repeat - 1) for g in streams]  # start k of image i: [k * n + i]
        if start is None:
            w = self.w_mean.expand(n * repeat, -1).clone()
            if repeat > 1:
                with torch.no_grad():
                    w[n:] = G.mapping(self._normal(streams[n:], (G.style_dim,)))
            latent = G.broadcast(w).clone()
            if c.start == "encoder":
                latent[:n] = encoder_start(self.encoder, G, target.to(self.device), hidden.to(self.device).float())
        else:
            latent = start.detach().clone().to(self.device)
        target_r = target.to(self.device).repeat(repeat, 1, 1, 1)
        visible = (1 - hidden.to(self.device).float()).repeat(repeat, 1, 1, 1)
        if noises is None:
            noises = [self._normal(streams, tuple(noise.shape[1:])) for noise in G.fixed_noise()]
        else:
            noises = [noise.detach().clone().to(self.device) for noise in noises]
        latent.requires_grad_(True)
        for noise in noises:
            noise.requires_grad_(True)
        optimizer = torch.optim.Adam([latent, *noises], lr=c.lr)
        with progress_bar(steps, label, self.progress) as advance:
            for i in range(steps):
                t = i / steps
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(t, c.lr, c.lr_rampdown, c.lr_rampup)
                strength = self.w_std * c.latent_noise * max(0.0, 1 - t / c.noise_ramp) ** 2
                shaken = latent + self._normal(streams, tuple(latent.shape[1:])) * strength if strength else latent
                loss = self.losses(G.synthesis(shaken, noises), target_r, visible, noises)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
                normalize_noises(noises)
                advance(1)
        with torch.no_grad():
            images = G.synthesis(latent, noises)
            final = self.losses(images, target_r, visible, noises)
        best = final.view(repeat, n).argmin(0) * n + torch.arange(n, device=final.device)  # per image, its best start
        return Projection(images[best], latent.detach()[best], [noise.detach()[best] for noise in noises], final[best])


@dataclass
class InversionRestorer:
    """``unveil restore`` by masked inversion: each crop's mask (given, or found by a ``segmenter`` network or
    from landmarks with ``auto_mask``) marks what to ignore; the generator's pixels fill it, the visible ones are
    kept (no mask: the whole crop is projected and the generator's image returned). Across the frames of a video
    each frame starts from the previous one's latents and noise (``warm_steps``)."""

    generator: Generator
    device: torch.device
    config: ProjectorConfig = field(default_factory=ProjectorConfig)
    discriminator: Discriminator | None = None
    perceptual_weights: str | None = None
    auto_mask: str | None = None  # an occluder whose mask landmarks give (see unveil.data.automask), or None
    segmenter: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None  # a SegmenterModel: masks of crops
    source: str = ""
    encoder: LatentEncoder | None = None
    progress: bool = False  # a bar per projection (``unveil restore`` shows one over frames instead)
    method: str = "stylegan2"
    last_masks: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.size = self.generator.size
        self.perceptual_name, distance = make_perceptual(self.config.perceptual, self.device, self.discriminator,
                                                         self.perceptual_weights)
        self.projector = Projector(self.generator, self.config, distance, self.device, self.progress, self.encoder)
        self.previous: Projection | None = None
        self.previous_index = -1

    def reset(self) -> None:
        self.previous = None

    def masks(self, crops: Sequence[np.ndarray], contexts: Sequence[FrameContext] | None) -> list[np.ndarray] | None:
        """Each crop's hidden pixels: given in its context, else found by the ``segmenter``, else from landmarks
        (``auto_mask``), else None."""
        given = [c.mask for c in contexts or []]
        if len(given) == len(crops) and all(m is not None for m in given):
            return [np.asarray(m, np.float32) for m in given]  # type: ignore[misc]
        if self.segmenter is not None:
            return self.segmenter(list(crops))
        if self.auto_mask is None:
            return None
        from unveil.data.automask import occluder_mask

        return [occluder_mask(crop, self.auto_mask) for crop in crops]

    def __call__(self, crops: Sequence[np.ndarray], contexts: Sequence[FrameContext] | None = None
                 ) -> list[np.ndarray]:
        """With masks: fit the visible pixels, fill the hidden ones. Without: project the whole crop and return
        the generator's image (what it never learnt to draw, e.g. an occluder, is left out)."""
        if not crops:
            return []
        masks = self.masks(crops, contexts)
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if masks is None:
            m = torch.zeros(len(crops), 1, self.size, self.size)
        else:
            m = torch.from_numpy(np.stack(masks)).float()[:, None]
            if m.shape[-1] != self.size:
                m = F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)
        indices = [c.index for c in contexts] if contexts is not None and len(contexts) == len(crops) else None
        if indices is None or not self.config.warm_start or all(i == 0 for i in indices):
            result = self.projector.project(x, m).images  # independent images: one batch
            self.previous = None
        else:  # video frames in order: each frame from the previous one's latents and noise
            out = []
            for k, index in enumerate(indices):
                warm = self.previous is not None and index == self.previous_index + 1
                previous = self.previous if warm else None
                self.previous = self.projector.project(
                    x[k:k + 1], m[k:k + 1], start=previous.latents if previous else None,
                    noises=previous.noises if previous else None,
                    steps=self.config.warm_steps if warm else self.config.steps, label=f"Inverting frame {index}")
                self.previous_index = index
                out.append(self.previous.images)
            result = torch.cat(out)
        result = result.cpu()
        if masks is None:
            m = torch.ones_like(m)  # every pixel from the generator
        composite = m * result + (1 - m) * x
        self.last_masks = [mask[0].numpy() for mask in m]
        return list(composite.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy())

    def describe(self) -> str:
        params = sum(p.numel() for p in self.generator.parameters())
        return (f"stylegan2 inversion ({params / 1e6:.2f} M parameters, {self.size} px, {self.config.steps} steps, "
                f"{self.config.starts} start(s) from the {self.config.start}, perceptual: {self.perceptual_name})"
                + (f" from {self.source}" if self.source else ""))


def load_inversion(checkpoint: str | os.PathLike[str], config: ProjectorConfig | None = None,
                   device: str = "auto", auto_mask: str | None = None, perceptual_weights: str | None = None
                   ) -> InversionRestorer:
    """An inversion restorer from a stylegan2 checkpoint (``unveil train stylegan2`` or ``unveil convert
    stylegan2``), with the checkpoint's discriminator as perceptual space when it has one and no VGG16 is found."""
    from unveil.devices import select_device
    from unveil.train.checkpoint import read_checkpoint

    saved = read_checkpoint(checkpoint)
    if saved.method != "stylegan2":
        raise UnveilError(f"{saved.path} holds a {saved.method} model; inversion needs a StyleGAN2 generator "
                          "('unveil train stylegan2' or 'unveil convert stylegan2' makes one).")
    return inversion_from(saved, select_device(device), config or ProjectorConfig(), auto_mask, perceptual_weights)


def inversion_from(saved: Checkpoint, device: torch.device, config: ProjectorConfig, auto_mask: str | None = None,
                   perceptual_weights: str | None = None) -> InversionRestorer:
    """The inversion restorer of a read stylegan2 checkpoint: its generator, its discriminator (a perceptual space
    when no VGG16 is found) and its start encoder when it has one."""
    from unveil.methods.stylegan2 import load_discriminator, load_generator

    generator, _ = load_generator(saved, device)
    return InversionRestorer(generator, device, config, load_discriminator(saved, device), perceptual_weights,
                             auto_mask, source=str(saved.path), encoder=load_encoder(saved, generator))


def _image_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UnveilError(f"The folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        return files
    if not path.is_file():
        raise UnveilError(f"{path} does not exist.")
    return [path]


def inpaint(source: str | os.PathLike[str], generator: str | os.PathLike[str], out: str | os.PathLike[str],
            mask: str | os.PathLike[str] = "auto", config: ProjectorConfig | None = None, device: str = "auto",
            perceptual_weights: str | None = None, side_by_side: bool = False, batch_size: int = 8,
            segmenter: str | os.PathLike[str] | None = None) -> list[Path]:
    """Fill the hidden part of each face image (an image or a folder) by masked inversion and write PNGs to
    ``out`` (a file for one image, else a folder). ``mask``: ``auto`` (found by the ``segmenter`` run's network
    when one is given, else from landmarks, a face mask), or a mask image (255 = hidden) for one image, or a
    folder of masks named as the images. With ``side_by_side`` each output is input | mask | result."""
    from unveil.data.datasets import load_image
    from unveil.files import ensure_dir, write_image_atomic

    files = _image_files(Path(source))
    restorer = load_inversion(generator, config, device, "mask", perceptual_weights)
    restorer.projector.progress = True
    masks_from = None if str(mask) == "auto" else Path(mask)
    if masks_from is not None and not masks_from.exists():
        raise UnveilError(f"The mask {masks_from} does not exist; give a mask image, a folder of masks, or 'auto'.")
    if segmenter is not None and masks_from is not None:
        raise UnveilError("A segmenter finds the masks of --mask auto; give it or a mask file, not both.")
    if segmenter is not None:
        from unveil.restore import use_segmenter

        use_segmenter(restorer, segmenter)
    target = Path(out)
    single = len(files) == 1 and not Path(source).is_dir()
    if single:
        target = target.with_suffix(".png")
        ensure_dir(target.parent)
    else:
        ensure_dir(target)
    written = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images, masks = [], []
        for file in chunk:
            image = load_image(file)
            if masks_from is None:
                hidden = restorer.masks([image], None)[0]  # type: ignore[index] - auto_mask is set
            else:
                mask_file = masks_from / file.name if masks_from.is_dir() else masks_from
                if masks_from.is_dir() and not mask_file.is_file():
                    matches = [p for p in masks_from.glob(file.stem + ".*") if p.suffix.lower() in IMAGE_SUFFIXES]
                    mask_file = matches[0] if matches else mask_file
                hidden = load_image(mask_file, gray=True).astype(np.float32) / 255
                if hidden.shape != image.shape[:2]:
                    raise UnveilError(f"The mask {mask_file} is {hidden.shape[1]}x{hidden.shape[0]} pixels but the "
                                      f"image {file} is {image.shape[1]}x{image.shape[0]}.")
            images.append(image)
            masks.append(hidden)
        results = restore_at_own_size(restorer, images, masks)
        for file, image, hidden, result in zip(chunk, images, masks, results, strict=True):
            picture = result if not side_by_side else np.concatenate(
                [image, np.repeat((hidden[..., None] > 0.5) * np.uint8(255), 3, axis=2), result], axis=1)
            path = target if single else target / (file.stem + ".png")
            write_image_atomic(path, picture)
            written.append(path)
    return written


def restore_at_own_size(restorer: InversionRestorer, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]
                        ) -> list[np.ndarray]:
    """Invert images of any size: each is resized to the generator's square, and the generator's pixels, resized
    back, fill the hidden pixels; visible pixels stay exactly as they were."""
    import cv2

    size = restorer.size
    crops = [cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in images]
    small = [cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA) for m in masks]
    restored = restorer(crops, [FrameContext(0, m) for m in small])
    out = []
    for image, hidden, result in zip(images, masks, restored, strict=True):
        h, w = image.shape[:2]
        big = cv2.resize(result, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        m = (hidden > 0.5).astype(np.float32)[..., None]
        out.append(np.round(m * big + (1 - m) * image).astype(np.uint8))
    return out


class LatentEncoder(nn.Module):
    """A small CNN from an occluded face (hidden pixels zeroed) and its mask to a w latent: the inversion's start
    when the mean face is a poor one (seed 003's failures: a start of the wrong sex, age or pose). Its output is
    the offset from the generator's mean w in units of the w spread."""

    def __init__(self, size: int, style_dim: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(4, width, 3, padding=1), nn.LeakyReLU(0.2)]
        channels, side = width, size
        while side > 4:
            wider = min(channels * 2, 256)
            layers += [nn.Conv2d(channels, wider, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels, side = wider, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * 16, style_dim)
        self.size = size
        self.register_buffer("w_mean", torch.zeros(1, style_dim))  # the generator's, set when trained
        self.register_buffer("w_scale", torch.tensor(1.0))  # the spread of w per coordinate

    def forward(self, image: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image * (1 - hidden), hidden], 1)
        return self.head(self.features(x).flatten(1))


def drawn_masks(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random occluders for encoder training (n, 1, size, size): a lower-face block (a mask's place) of random
    height and width, a random rectangle anywhere, or nothing, a third each."""
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        kind = int(torch.randint(3, (), generator=generator))
        u = torch.rand(4, generator=generator).tolist()
        if kind == 0:
            top, half = int(size * (0.4 + 0.2 * u[0])), int(size * (0.2 + 0.2 * u[1]))
            bottom, centre = int(size * (0.85 + 0.15 * u[2])), size // 2 + int(size * 0.1 * (u[3] - 0.5))
            masks[i, 0, top:bottom, max(0, centre - half):centre + half] = 1
        elif kind == 1:
            h, w = int(size * (0.15 + 0.35 * u[0])), int(size * (0.15 + 0.35 * u[1]))
            y, x = int((size - h) * u[2]), int((size - w) * u[3])
            masks[i, 0, y:y + h, x:x + w] = 1
    return masks


def train_encoder(generator: Generator, steps: int = 2000, batch_size: int = 16, lr: float = 1e-3, seed: int = 0,
                  device: torch.device | str = "cpu", progress: bool = True) -> tuple[LatentEncoder, list[float]]:
    """Fit a :class:`LatentEncoder` to the generator's own samples with drawn occluders (the true w known);
    returns it and the loss (mean squared w error in spread units) per step."""
    device = torch.device(device)
    generator = generator.to(device).eval().requires_grad_(False)
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    encoder = LatentEncoder(generator.size, generator.style_dim).to(device)
    w_mean, w_std = generator.mean_latent(10_000, rng)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    losses = []
    with progress_bar(steps, "Training the inversion encoder", progress) as advance:
        for _ in range(steps):
            with torch.no_grad():
                w = generator.mapping(torch.randn(batch_size, generator.style_dim, generator=rng).to(device))
                images = generator.synthesis(generator.broadcast(w))
            hidden = drawn_masks(batch_size, generator.size, rng).to(device)
            target = (w - w_mean) / w_std * math.sqrt(generator.style_dim)  # unit variance per coordinate
            loss = F.mse_loss(encoder(images, hidden), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            advance(1)
    encoder.w_mean.copy_(w_mean)
    encoder.w_scale.fill_(w_std / math.sqrt(generator.style_dim))
    return encoder.eval().cpu(), losses


def encoder_start(encoder: LatentEncoder, generator: Generator, target: torch.Tensor, hidden: torch.Tensor
                  ) -> torch.Tensor:
    """W+ starts (n, n_latent, d) from the encoder's w for each occluded target."""
    device = target.device
    with torch.no_grad():
        offset = encoder.to(device)(target, hidden)
        w = encoder.w_mean.to(device) + offset * encoder.w_scale.to(device)
    return generator.broadcast(w).clone()


def add_encoder(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], steps: int = 2000,
                batch_size: int = 16, seed: int = 0, device: str = "auto", progress: bool = True
                ) -> tuple[Path, list[float]]:
    """Train an inversion encoder for a stylegan2 checkpoint and write the checkpoint with it (``encoder/``
    tensors) to ``out``; ``--start encoder`` then uses it."""
    from unveil.devices import select_device
    from unveil.methods.stylegan2 import load_generator
    from unveil.train.checkpoint import read_checkpoint, save_checkpoint

    saved = read_checkpoint(checkpoint)
    if saved.method != "stylegan2":
        raise UnveilError(f"{saved.path} holds a {saved.method} model; the encoder inverts a stylegan2 generator.")
    chosen = select_device(device)
    generator, _ = load_generator(saved, chosen)
    encoder, losses = train_encoder(generator, steps, batch_size, seed=seed, device=chosen, progress=progress)
    tensors = {k: v for k, v in saved.tensors.items() if not k.startswith("encoder/")}
    tensors.update({f"encoder/{k}": v for k, v in encoder.state_dict().items()})
    meta = dict(saved.meta)
    meta["outputs"] = {**saved.outputs, "encoder": {"steps": steps, "batch_size": batch_size,
                                                    "final_loss": float(np.mean(losses[-50:]))}}
    meta.pop("format", None)
    return save_checkpoint(out, tensors, meta), losses


def load_encoder(saved: object, generator: Generator) -> LatentEncoder | None:
    """The inversion encoder stored with a stylegan2 checkpoint (see :func:`add_encoder`), or None."""
    state = {k[len("encoder/"):]: v for k, v in saved.tensors.items() if k.startswith("encoder/")}  # type: ignore[attr-defined]
    if not state:
        return None
    encoder = LatentEncoder(generator.size, generator.style_dim)
    encoder.load_state_dict(state)
    return encoder.eval().requires_grad_(False)
