"""StyleGAN2 (Karras et al. 2020) as seed 003 uses it: a face generator that already knows there is a nose and a
mouth under a mask, inverted per image by :mod:`unveil.methods.inversion`. Its restorer is that inversion.

Training (``unveil train stylegan2`` on any prepared clean crops, ``domain_b``: the benchmark's normal frames, a
labelled photo folder): the non-saturating logistic loss, lazy R1 on real images (gamma 10, every 16 critic
steps), optional path-length regularisation (weight 2, every 4 generator steps, half batch), style mixing (0.9),
Adam 0.002 with betas (0, 0.99) corrected for the lazy intervals, and an exponential moving average of the
generator (half-life ``ema_kimg`` thousand images), which is what samples and inversion use. As in every GAN
here, the loop steps critic and generator from one batch. :func:`convert_stylegan2` reads released weights.
"""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from unveil.config import Config
from unveil.data.datasets import Augment, LabelledDataset, select
from unveil.errors import UnveilError
from unveil.methods.cyclegan import set_requires_grad
from unveil.methods.registry import MethodSpec, register
from unveil.nets.layers import wide
from unveil.nets.stylegan2 import Discriminator, Generator
from unveil.train.method import MethodBase

if TYPE_CHECKING:
    import os

    from unveil.train.config import TrainConfig
    from unveil.train.method import Step


class StyleGAN2Config(Config):
    """Options of StyleGAN2 (config F and the reference PyTorch port's training defaults)."""

    channel_multiplier: int = Field(default=2, ge=1, description="Scales the feature maps above 32 px (config F: 2).")
    width: int = Field(default=512, ge=8, description="Feature maps up to 32 px (config F: 512); the others scale "
                                                      "with it.")
    style_dim: int = Field(default=512, ge=8, description="Width of z, w and the mapping network.")
    n_mlp: int = Field(default=8, ge=1, description="Layers of the mapping network.")
    lr_mlp: float = Field(default=0.01, gt=0, description="Learning-rate multiplier of the mapping network.")
    lr: float = Field(default=0.002, gt=0)
    r1: float = Field(default=10.0, ge=0, description="R1 penalty weight gamma on real images.")
    d_reg_every: int = Field(default=16, ge=1, description="Critic steps between lazy R1 terms.")
    g_reg_every: int = Field(default=4, ge=1, description="Generator steps between path-length terms.")
    path_regularize: float = Field(default=2.0, ge=0, description="Path-length weight (0: off).")
    path_batch_shrink: int = Field(default=2, ge=1, description="The path-length batch is the batch over this.")
    mixing: float = Field(default=0.9, ge=0, le=1, description="Probability of style mixing per batch.")
    ema_kimg: float = Field(default=10.0, gt=0, description="Half-life of the generator average, thousand images.")
    ema_rampup: float | None = Field(default=None, gt=0, description="Half-life at most this fraction of the images "
                                                                     "seen so far (short runs; None: off).")
    mbstd_group: int = Field(default=4, ge=1, description="Images per minibatch standard-deviation group of the "
                                                          "critic (1: each image judged alone).")
    n_samples_grid: int = Field(default=8, ge=1, description="Fixed latents in the per-epoch sample grid.")
    inversion_steps: int = Field(default=1000, ge=1, description="Projector steps of this run's restorer (unveil "
                                                                 "restore); unveil inpaint takes --steps.")
    inversion_warm_steps: int = Field(default=200, ge=1, description="Its steps for later frames of a video.")


class SeededImages(LabelledDataset):
    """Clean crops, each with a seed for its latents and noise maps: per-sample randomness, so one batch of 2 and
    two processes with 1 each draw the same z and noise."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = super().__getitem__(index)
        item["seed"] = torch.tensor(random.Random(f"{self.seed}/{self.epoch}/{index}/latent").getrandbits(62))
        return item


def per_sample_normal(seeds: torch.Tensor, tag: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """One standard-normal draw of ``shape`` per seed (and ``tag``), stacked: (len(seeds), *shape)."""
    def stream(seed: int) -> torch.Generator:  # a stable hash: Python's hash() of a str changes per process
        digest = hashlib.blake2b(f"{seed}/{tag}".encode(), digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest, "little") % 2 ** 63)

    draws = [torch.randn(shape, generator=stream(seed)) for seed in seeds.tolist()]
    return torch.stack(draws).to(device)


class StyleGAN2(nn.Module):
    """G, D and the averaged generator ``g_ema`` (one state dict for checkpoints)."""

    def __init__(self, config: StyleGAN2Config, size: int) -> None:
        super().__init__()
        kw = {"style_dim": config.style_dim, "n_mlp": config.n_mlp, "channel_multiplier": config.channel_multiplier,
              "lr_mlp": config.lr_mlp, "width": config.width}
        self.G = Generator(size, **kw)
        self.D = Discriminator(size, channel_multiplier=config.channel_multiplier, width=config.width,
                               stddev_group=config.mbstd_group)
        self.g_ema = Generator(size, **kw)
        self.g_ema.load_state_dict(self.G.state_dict())
        self.g_ema.requires_grad_(False)


def d_logistic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-wide(real)).mean() + F.softplus(wide(fake)).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real images (Mescheder et al. 2018), outside mixed precision."""
    real = wide(real.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class StyleGAN2Method(MethodBase):
    name = "stylegan2"
    monitor = "G"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        self.config, c = config, config.model
        size = config.crop_size
        if 2 ** int(math.log2(size)) != size or not 8 <= size <= 1024:
            raise UnveilError(f"StyleGAN2 trains at a power-of-two crop size from 8 to 1024, not {size}.")
        criteria = config.domain_b if set(config.domain_b) <= set(table.columns) else {}
        rows = select(table, criteria, "train", limit=config.max_dataset_size)
        if rows.empty:
            raise UnveilError(f"No training rows match domain_b {config.domain_b} for StyleGAN2 to learn from.")
        augment = Augment(config.load_size, config.crop_size, config.flip, train=True)
        self.train_set = SeededImages(root, rows, [], augment, seed=seed)
        self.module = StyleGAN2(c, size)
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        self.grid_z = torch.randn(c.n_samples_grid, c.style_dim, generator=generator)
        self.mean_path_length = torch.zeros(())
        self.ema_at = 0  # the update count g_ema last followed

    def describe(self) -> dict[str, Any]:
        return {"size": self.config.crop_size}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config.model

        def adam(net: nn.Module, every: int) -> torch.optim.Adam:
            ratio = every / (every + 1)  # lazy regularisation: the reference's corrected lr and betas
            return torch.optim.Adam(net.parameters(), lr=c.lr * ratio, betas=(0.0, 0.99 ** ratio))

        return {"G": adam(self.module.G, c.g_reg_every), "D": adam(self.module.D, c.d_reg_every)}

    @torch.no_grad()
    def update_ema(self, images_seen: int) -> None:
        """g_ema <- beta g_ema + (1 - beta) G, beta from the half-life in images (ramped up when asked)."""
        c = self.config.model
        half_life = c.ema_kimg * 1000
        if c.ema_rampup is not None:
            half_life = min(half_life, max(images_seen, 1) * c.ema_rampup)
        beta = 0.5 ** (self.config.batch_size / max(half_life, 1e-8))
        for ema, live in zip(self.module.g_ema.parameters(), self.module.G.parameters(), strict=True):
            ema.lerp_(live.detach(), 1 - beta)
        for ema, live in zip(self.module.g_ema.buffers(), self.module.G.buffers(), strict=True):
            ema.copy_(live)

    def _inputs(self, seeds: torch.Tensor, iteration: int, tag: str) -> dict[str, Any]:
        """z, noise maps, and a second z with its crossover layer when this batch mixes styles (per batch, as the
        reference), all drawn from the samples' seeds."""
        c, G = self.config.model, self.module.G
        device = next(G.parameters()).device
        rng = random.Random(f"{self.seed}/{iteration}/{tag}/mixing")
        inputs: dict[str, Any] = {"z": per_sample_normal(seeds, f"{tag}/z", (c.style_dim,), device),
                                  "noise": [per_sample_normal(seeds, f"{tag}/noise{i}", tuple(n.shape[1:]), device)
                                            for i, n in enumerate(G.fixed_noise())]}
        if c.mixing > 0 and rng.random() < c.mixing:
            inputs["mix_z"] = per_sample_normal(seeds, f"{tag}/mix", (c.style_dim,), device)
            inputs["crossover"] = rng.randint(1, G.n_latent - 1)
        return inputs

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        c, G, D = self.config.model, self.module.G, self.module.D
        real, seeds = batch["image"], batch["seed"].cpu()
        if step.iteration and step.iteration != self.ema_at:  # G stepped since (once per update, not per
            self.update_ema(step.iteration * self.config.batch_size)  # accumulated batch)
            self.ema_at = step.iteration
        with step.autocast():
            with torch.no_grad():
                fake = G(**self._inputs(seeds, step.iteration, "D"))
            real_score, fake_score = D(real), D(fake)
        parts = {"D": d_logistic_loss(real_score, fake_score), "real_score": wide(real_score).mean(),
                 "fake_score": wide(fake_score).mean()}
        loss_d = parts["D"]
        if c.r1 > 0 and step.iteration % c.d_reg_every == 0:
            parts["r1"] = r1_penalty(D, real)
            loss_d = loss_d + c.r1 / 2 * parts["r1"] * c.d_reg_every
        step.backward(loss_d)
        set_requires_grad([D], False)
        with step.autocast():
            fake = G(**self._inputs(seeds, step.iteration, "G"))
            parts["G"] = F.softplus(-wide(D(fake))).mean()
        loss_g = parts["G"]
        if c.path_regularize > 0 and step.iteration % c.g_reg_every == 0:
            parts["path"], parts["path_length"] = self.path_penalty(len(real), real.device)
            loss_g = loss_g + c.path_regularize * c.g_reg_every * parts["path"]
        step.backward(loss_g)
        set_requires_grad([D], True)
        return {k: v.detach() for k, v in parts.items()}

    def path_penalty(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Path-length regularisation: the image change per unit w change should be the same everywhere (its
        running mean kept across steps), in float32."""
        c, G = self.config.model, self.module.G
        n = max(1, batch // c.path_batch_shrink)
        w = G.mapping(torch.randn(n, c.style_dim, device=device))
        latent = G.broadcast(w).clone()
        images = G.synthesis(latent)
        noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * noise).sum(), latent, create_graph=True)
        lengths = grad.pow(2).sum(2).mean(1).sqrt()
        self.mean_path_length = self.mean_path_length.to(device)
        mean = self.mean_path_length + 0.01 * (lengths.mean().detach() - self.mean_path_length)
        self.mean_path_length = mean
        return (lengths - mean).pow(2).mean() + 0 * images[0, 0, 0, 0], lengths.mean().detach()

    def sample_rows(self, items: list[dict[str, Any]]) -> list[torch.Tensor]:
        """The averaged generator on fixed latents (one row), then the live generator on the same latents."""
        device = next(self.module.parameters()).device
        z = self.grid_z.to(device)
        return [self.module.g_ema(z), self.module.G(z)]

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"mean_path_length": self.mean_path_length.detach().reshape(1)}

    def load_extra_state(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        if "mean_path_length" in tensors:
            self.mean_path_length = tensors["mean_path_length"].to(device).reshape(())


# -- released weights -----------------------------------------------------------------------------------------
def _generator_state(state: dict[str, Any], source: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The ``g_ema`` tensors and ``latent_avg`` of a released file (nested, ``g_ema.``-prefixed or bare)."""
    latent_avg = state.get("latent_avg")
    if isinstance(state.get("g_ema"), dict):
        g = state["g_ema"]
    elif any(k.startswith("g_ema.") for k in state):
        g = {k[6:]: v for k, v in state.items() if k.startswith("g_ema.")}
    else:
        g = {k: v for k, v in state.items() if k != "latent_avg"}
    bad = [k for k, v in g.items() if not isinstance(v, torch.Tensor)]
    if bad or "style.1.weight" not in g or "input.input" not in g:
        missing = [k for k in ("g_ema", "style.1.weight", "input.input", "to_rgb1.conv.weight") if k not in g
                   and k not in state]
        raise UnveilError(f"{source} is not a StyleGAN2 generator in the rosinality/stylegan2-pytorch layout; "
                          f"missing {', '.join(missing) or 'tensor values'}.")
    return g, latent_avg if isinstance(latent_avg, torch.Tensor) else None


def convert_stylegan2(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Read released StyleGAN2 weights (a PyTorch file read tensors-only, or safetensors) and write an unveil
    checkpoint of method ``stylegan2`` whose restorer is latent inversion; returns the written path."""
    from unveil.metrics.perceptual import load_state_dict
    from unveil.train.checkpoint import save_checkpoint
    from unveil.train.config import TrainConfig

    src = Path(source)
    if not src.is_file():
        raise UnveilError(f"The StyleGAN2 file {src} does not exist.")
    try:
        state = (load_state_dict(src) if src.suffix == ".safetensors" else
                 torch.load(src, map_location="cpu", weights_only=True))
    except UnveilError:
        raise
    except Exception:  # noqa: BLE001 - pickles with objects (e.g. argparse options) are refused alike
        raise UnveilError(f"{src} needs arbitrary Python objects unpickled, which unveil never does (it could run "
                          "code); save its g_ema state dict (and latent_avg) alone, or as safetensors.") from None
    if not isinstance(state, dict):
        raise UnveilError(f"{src} holds no state dict.")
    g, latent_avg = _generator_state(state, src)
    n_mlp = sum(1 for k in g if k.startswith("style.") and k.endswith(".weight"))
    style_dim = int(g["style.1.weight"].shape[0])
    size = 2 ** (sum(1 for k in g if k.startswith("to_rgbs.") and k.endswith(".conv.weight")) + 2)
    if size < 8:
        raise UnveilError(f"{src} holds no to_rgbs layers; it is not a StyleGAN2 generator of 8 px or more.")
    last = int(g[f"convs.{2 * (int(math.log2(size)) - 2) - 1}.conv.weight"].shape[1])
    multiplier = max(1, last // {8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}[size])
    options = StyleGAN2Config(channel_multiplier=multiplier, style_dim=style_dim, n_mlp=n_mlp)
    generator = Generator(size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=multiplier)
    expected = generator.state_dict()
    missing = [k for k in expected if k not in g]
    wrong = [k for k in expected if k in g and tuple(g[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        named = missing[:5] if missing else [f"{k} {tuple(g[k].shape)}" for k in wrong[:5]]
        raise UnveilError(f"{src} does not fit a {size} px StyleGAN2 (channel multiplier {multiplier}): "
                          f"{'missing' if missing else 'wrong shapes of'} {', '.join(named)}.")
    generator.load_state_dict({k: g[k] for k in expected})
    tensors = {f"net/g_ema.{k}": v for k, v in generator.state_dict().items()}
    d = state.get("d")
    if isinstance(d, dict) and d:  # the discriminator too, when released with it (a perceptual space for inversion)
        discriminator = Discriminator(size, channel_multiplier=multiplier)
        try:
            discriminator.load_state_dict(d)
        except (RuntimeError, TypeError) as error:
            raise UnveilError(f"{src} holds a discriminator 'd' that does not fit a {size} px StyleGAN2 "
                              f"({str(error).splitlines()[0]}).") from None
        tensors.update({f"net/D.{k}": v for k, v in discriminator.state_dict().items()})
    if latent_avg is not None:
        tensors["extra/latent_avg"] = latent_avg.reshape(1, -1).float()
    config = TrainConfig(method="stylegan2", model=options.model_dump(), load_size=size, crop_size=size)
    meta = {"method": "stylegan2", "config": config.model_dump(mode="json"),
            "outputs": {"size": size, "converted_from": src.name, "generator_only": True}}
    return save_checkpoint(target, tensors, meta)


def load_generator(saved: Any, device: torch.device) -> tuple[Generator, torch.Tensor | None]:
    """The averaged generator of a stylegan2 checkpoint (trained or converted) and its released mean latent."""
    options = StyleGAN2Config(**saved.config["model"])
    size = int(saved.outputs["size"])
    generator = Generator(size, style_dim=options.style_dim, n_mlp=options.n_mlp,
                          channel_multiplier=options.channel_multiplier, lr_mlp=options.lr_mlp, width=options.width)
    state = {k[6:]: v for k, v in saved.network_state().items() if k.startswith("g_ema.")}
    generator.load_state_dict(state)
    latent_avg = saved.tensors.get("extra/latent_avg")
    return generator.to(device).eval().requires_grad_(False), latent_avg


def load_discriminator(saved: Any, device: torch.device) -> Discriminator | None:
    """The trained discriminator of a stylegan2 checkpoint, when it holds one (a converted file may not)."""
    state = {k[2:]: v for k, v in saved.network_state().items() if k.startswith("D.")}
    if not state:
        return None
    options = StyleGAN2Config(**saved.config["model"])
    discriminator = Discriminator(int(saved.outputs["size"]), channel_multiplier=options.channel_multiplier,
                                  width=options.width, stddev_group=options.mbstd_group)
    discriminator.load_state_dict(state)
    return discriminator.to(device).eval().requires_grad_(False)


def load_restorer(saved: Any, device: torch.device) -> Any:
    """The restorer of a stylegan2 checkpoint: masked latent inversion with the default projector."""
    from unveil.methods.inversion import ProjectorConfig, inversion_from

    options = StyleGAN2Config(**saved.config["model"])
    return inversion_from(saved, device, ProjectorConfig(steps=options.inversion_steps,
                                                         warm_steps=options.inversion_warm_steps))


#: A CPU-budget preset: 64 px, an eighth of config F's width (64 feature maps up to 32 px), a 256-wide style
#: through 4 mapping layers, batch 16, R1 gamma 0.1 (StyleGAN2-ADA's rule 0.0002 * size^2 / batch gives 0.05 at
#: 64 px; the reference's 10 is for 1024 px and kept samples shapeless here for 500 steps), path length off, a
#: short EMA half-life ramped up (about 1.5 s a step on 2 cores).
CPU_PRESET: dict[str, Any] = {"model": {"width": 64, "style_dim": 256, "n_mlp": 4, "path_regularize": 0.0,
                                        "r1": 0.1, "ema_kimg": 2.0, "ema_rampup": 0.05},
                              "n_epochs": 30, "n_epochs_decay": 0, "load_size": 72, "crop_size": 64, "batch_size": 16,
                              "flip": True, "save_epoch_freq": 5}
#: The reference setting at 256 px: config F, batch 16 per process, constant learning rate.
PAPER_PRESET: dict[str, Any] = {"n_epochs": 100, "n_epochs_decay": 0, "load_size": 256, "crop_size": 256,
                                "batch_size": 16, "flip": True}

register(MethodSpec(
    name="stylegan2", summary="Seed 003's StyleGAN2 (config F, non-saturating loss, lazy R1, path length, EMA); "
                              "restores by masked W+ latent inversion.",
    config=StyleGAN2Config, method=StyleGAN2Method, load=load_restorer, produces="restorer", data="images",
    presets={"cpu": CPU_PRESET, "paper": PAPER_PRESET}, per_subject=False, report=()))
