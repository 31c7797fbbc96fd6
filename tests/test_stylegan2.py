"""StyleGAN2 (seed 003): the network against the reference port's sizes and against per-image reference
computations, the converter on its files and on bad ones, masked inversion against a hidden truth the generator
itself drew, and the inpaint command's errors."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_cli import unveil

from unveil.errors import UnveilError
from unveil.methods.inversion import InversionRestorer, Projector, ProjectorConfig, lr_at, noise_regularization
from unveil.methods.stylegan2 import convert_stylegan2
from unveil.methods.registry import load_restorer
from unveil.nets.stylegan2 import Generator, ModulatedConv2d, make_kernel, upfirdn2d
from unveil.restorers import FrameContext

def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("multiplier", "millions"), [(2, 30.03), (1, 24.77)])
def test_generator_at_256_px_has_the_reference_parameter_count(multiplier: int, millions: float) -> None:
    generator = Generator(256, channel_multiplier=multiplier)
    assert round(_count(generator) / 1e6, 2) == millions
    assert generator.n_latent == 14  # 2 * log2(256) - 2 W+ latents
    names = set(generator.state_dict())
    assert {"style.8.weight", "input.input", "conv1.conv.modulation.bias", "to_rgb1.conv.weight", "noises.noise_12",
            "convs.11.noise.weight", "to_rgbs.5.upsample.kernel", "convs.0.conv.blur.kernel"} <= names


def test_upfirdn2d_closed_forms() -> None:
    kernel = make_kernel([1, 3, 3, 1])
    assert torch.allclose(kernel.sum(), torch.tensor(1.0))
    delta = torch.zeros(1, 1, 9, 9)
    delta[0, 0, 4, 4] = 1
    blurred = upfirdn2d(delta, kernel, pad=(1, 2))  # 9 + 3 - 4 + 1 = 9: the filter's response around the delta
    assert blurred.shape[-1] == 9 and torch.allclose(blurred[0, 0, 2:6, 2:6], kernel)  # padded index 5 = 2 + 3
    assert torch.allclose(blurred.sum(), torch.tensor(1.0))
    constant = torch.full((1, 2, 8, 8), 0.5)
    up = upfirdn2d(constant, kernel * 4, up=2, pad=(2, 1))  # the generator's 2x up-sampling keeps a constant
    assert up.shape[-1] == 16 and torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.5))
    x = torch.randn(1, 1, 8, 8)
    assert torch.equal(upfirdn2d(x, torch.ones(1, 1), down=2), x[..., ::2, ::2])


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_convolution_equals_per_image_modulated_weights(upsample: bool) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, style_dim=4, upsample=upsample)
    x, style = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    out = conv(x, style)
    s = conv.modulation(style)
    for i in range(3):  # the paper's equations 1-3 for one image, with its own weights
        w = conv.scale * conv.weight[0] * s[i].view(1, -1, 1, 1)
        w = w / torch.sqrt(w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        if upsample:
            ref = F.conv_transpose2d(x[i:i + 1], w.transpose(0, 1), stride=2)
            ref = conv.blur(ref)
        else:
            ref = F.conv2d(x[i:i + 1], w, padding=1)
        assert torch.allclose(out[i:i + 1], ref, atol=1e-5)
    assert out.shape[-1] == (16 if upsample else 8)


def _released(path: Path, generator: Generator, **extra: object) -> Path:
    torch.save({"g_ema": generator.state_dict(), "latent_avg": torch.randn(generator.style_dim), **extra}, path)
    return path


def test_converted_weights_generate_the_same_images(tmp_path: Path) -> None:
    torch.manual_seed(1)
    original = Generator(16, style_dim=32, n_mlp=2, channel_multiplier=1).eval()
    target = convert_stylegan2(_released(tmp_path / "g.pt", original), tmp_path / "g.safetensors")
    restorer = load_restorer(target, device="cpu")
    assert isinstance(restorer, InversionRestorer) and restorer.size == 16
    z = torch.randn(2, 32)
    with torch.no_grad():
        expected = original.synthesis(original.broadcast(original.mapping(z)), original.fixed_noise())
        actual = restorer.generator.synthesis(restorer.generator.broadcast(restorer.generator.mapping(z)),
                                              restorer.generator.fixed_noise())
    assert torch.equal(expected, actual)


def test_converter_refuses_pickled_objects_and_unknown_layouts(tmp_path: Path) -> None:
    generator = Generator(16, style_dim=32, n_mlp=2)
    pickled = _released(tmp_path / "args.pt", generator, args=argparse.Namespace(size=16))
    result = unveil("convert", "stylegan2", str(pickled), str(tmp_path / "out.safetensors"))
    assert result.returncode == 2 and "never does" in result.stderr and "Traceback" not in result.stderr
    state = {k: v for k, v in generator.state_dict().items() if not k.startswith("to_rgb1.")}
    torch.save({"g_ema": state}, tmp_path / "partial.pt")
    with pytest.raises(UnveilError, match="missing to_rgb1"):
        convert_stylegan2(tmp_path / "partial.pt", tmp_path / "out.safetensors")
    torch.save({"generator": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UnveilError, match="missing g_ema, style.1.weight"):
        convert_stylegan2(tmp_path / "other.pt", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_projector_schedule_matches_the_reference_formula() -> None:
    assert lr_at(0.0, 0.1, 0.25, 0.05) == 0.0  # ramp-up from zero
    assert math.isclose(lr_at(0.5, 0.1, 0.25, 0.05), 0.1)
    assert math.isclose(lr_at(0.875, 0.1, 0.25, 0.05), 0.1 * (0.5 - 0.5 * math.cos(0.5 * math.pi)))
    smooth = torch.ones(1, 1, 16, 16)
    assert noise_regularization([smooth]).item() > 1.0  # a constant map is maximally self-correlated
    white = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    assert noise_regularization([white]).item() < 1e-2


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(3)
    return Generator(16, style_dim=32, n_mlp=2, width=32).eval().requires_grad_(False)


def _checkpoint(generator: Generator, path: Path) -> Path:
    """A stylegan2 checkpoint holding only ``generator`` (16 px, width 32), as a trained run's g_ema."""
    from unveil.train.checkpoint import save_checkpoint
    from unveil.train.config import TrainConfig

    config = TrainConfig(method="stylegan2", model={"width": 32, "style_dim": 32, "n_mlp": 2}, load_size=16,
                         crop_size=16)
    return save_checkpoint(path, {f"net/g_ema.{k}": v for k, v in generator.state_dict().items()},
                           {"method": "stylegan2", "config": config.model_dump(mode="json"), "outputs": {"size": 16}})


def test_masked_inversion_recovers_hidden_pixels_the_generator_drew(generator: Generator) -> None:
    """The target is the generator's own image, so the hidden truth is known: fitting only the visible pixels
    must bring the hidden ones far closer than the mean-latent start is."""
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        truth = generator.synthesis(generator.broadcast(generator.mapping(z)), generator.fixed_noise())
    hidden = torch.zeros(2, 1, 16, 16)
    hidden[..., 9:15, 3:13] = 1  # a face mask's place: lower middle
    config = ProjectorConfig(steps=300, perceptual="none", n_mean_latent=2000, noise_regularize=1e3)
    projector = Projector(generator, config, None, torch.device("cpu"), progress=False)
    result = projector.project(truth, hidden)
    with torch.no_grad():
        start = generator.synthesis(generator.broadcast(projector.w_mean.expand(2, -1)), generator.fixed_noise())

    def hidden_error(images: torch.Tensor) -> float:
        return float(((images - truth).pow(2) * hidden).sum() / (hidden.sum() * 3))

    assert hidden_error(result.images) < 0.25 * hidden_error(start)
    assert result.latents.shape == (2, generator.n_latent, 32)
    # the same image gives the same result alone as in a batch (one Adam over independent terms, per-image noise),
    # up to float32 rounding of batched convolutions over 300 steps (less than a grey level)
    alone = projector.project(truth[1:], hidden[1:])
    assert float((alone.images - result.images[1:]).abs().max()) < 2 / 255


def test_restorer_keeps_visible_pixels_and_warm_starts_video_frames(generator: Generator) -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.float32)
    mask[8:, 4:12] = 1
    config = ProjectorConfig(steps=40, warm_steps=1, perceptual="none", n_mean_latent=500)
    restorer = InversionRestorer(generator, torch.device("cpu"), config)
    first, second = restorer([crop, crop], [FrameContext(0, mask), FrameContext(1, mask)])
    assert np.array_equal(first[mask == 0], crop[mask == 0]) and not np.array_equal(first, crop)
    # frame 1 took one step from frame 0's latents, so it stays near frame 0's fill; a cold start of one step
    # would sit at the mean face
    cold = InversionRestorer(generator, torch.device("cpu"), config.model_copy(update={"steps": 1}))
    cold_fill = cold([crop], [FrameContext(0, mask)])[0]
    hidden = mask == 1
    near = np.abs(second[hidden].astype(int) - first[hidden]).mean()
    assert near < np.abs(cold_fill[hidden].astype(int) - first[hidden]).mean()
    assert "stylegan2 inversion" in restorer.describe() and "perceptual: none" in restorer.describe()


def test_inpaint_refuses_a_mask_of_another_size_and_writes_nothing(generator: Generator, tmp_path: Path) -> None:
    checkpoint = _checkpoint(generator, tmp_path / "g.safetensors")
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "mask.png"), np.zeros((20, 20), np.uint8))
    out = str(tmp_path / "out.png")
    result = unveil("inpaint", str(image), "-g", str(checkpoint), "-o", out, "--mask", str(tmp_path / "mask.png"),
                    "--steps", "2")
    assert result.returncode == 2 and "is 20x20 pixels but the image" in result.stderr
    assert not (tmp_path / "out.png").exists()
    result = unveil("inpaint", str(image), "-g", str(checkpoint), "-o", out, "--steps", "2")  # auto: no face there
    assert result.returncode == 2 and "No face was found" in result.stderr
    mask = np.zeros((32, 32), np.uint8)
    mask[16:, 8:24] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    result = unveil("inpaint", str(image), "-g", str(checkpoint), "-o", out, "--mask", str(tmp_path / "mask.png"),
                    "--steps", "3", "--side-by-side", "--perceptual", "none")
    assert result.returncode == 0, result.stderr
    written = cv2.imread(str(tmp_path / "out.png"))
    assert written.shape == (32, 96, 3) and np.all(written[:16, 64:] == 128)  # visible pixels exact


def test_mask_removal_experiment_scores_every_variant_against_the_clean_crops(generator: Generator,
                                                                               tmp_path: Path) -> None:
    from conftest import tiny_config

    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.experiments.mask_removal import MaskRemovalConfig, run_mask_removal
    from unveil.synth import generate

    manifest = generate(tiny_config(occluders=["mask"]), tmp_path / "bench", workers=1, progress=False)
    prepare(manifest, tmp_path / "prepared", PrepareConfig(crop="none", fraction=0.3, load_size=32, val_fraction=0.5),
            workers=1, progress=False)
    from test_segmenter import _segmenter_checkpoint

    checkpoint = _checkpoint(generator, tmp_path / "g.safetensors")
    blind = _segmenter_checkpoint(tmp_path / "blind.safetensors", hidden=False)  # finds no occluder anywhere
    options = MaskRemovalConfig(arms={"inversion": str(checkpoint)}, segmenter=str(blind), count=3, steps=2,
                                starts=2, identity=False, perceptual="none", device="cpu")
    results = run_mask_removal(options, tmp_path / "prepared", tmp_path / "out", progress=False)
    arms = list(dict.fromkeys(results["arm"]))
    assert arms == ["occluded (S)", "inversion (mean start)", "inversion (2 starts)",
                    "inversion (mean start, landmark mask)", "inversion (mean start, network mask)", "clean (G)"]
    by_arm = results.groupby("arm")["psnr_mask"]
    assert np.isinf(by_arm.min()["clean (G)"]) and np.isfinite(by_arm.max()["occluded (S)"])
    # nothing found hidden: every pixel kept, so inside the true mask it scores exactly what the input does
    assert np.array_equal(results.loc[results["arm"] == "inversion (mean start, network mask)", "psnr_mask"],
                          results.loc[results["arm"] == "occluded (S)", "psnr_mask"])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| inversion (2 starts) |" in table and "Test crops: 3" in table
    grid = cv2.imread(str(tmp_path / "out" / "grid.png"))
    assert grid.shape[1] == 6 * 34  # one 32 px column (plus border) per arm


def test_encoder_learns_w_from_occluded_samples_and_starts_inversion_there(generator: Generator,
                                                                          tmp_path: Path) -> None:
    from unveil.methods.inversion import add_encoder, encoder_start, load_encoder, load_inversion
    from unveil.train.checkpoint import read_checkpoint

    plain = _checkpoint(generator, tmp_path / "g.safetensors")
    with pytest.raises(UnveilError, match="has no inversion encoder"):
        load_inversion(plain, ProjectorConfig(start="encoder", n_mean_latent=100), device="cpu")
    path, losses = add_encoder(plain, tmp_path / "with_encoder.safetensors", steps=250, batch_size=16, device="cpu",
                               progress=False)
    assert np.mean(losses[:10]) > 0.8  # guessing the mean w scores about 1
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:10])
    encoder = load_encoder(read_checkpoint(path), generator)
    z = torch.randn(8, 32, generator=torch.Generator().manual_seed(11))  # faces it never saw
    with torch.no_grad():
        w = generator.mapping(z)
        images = generator.synthesis(generator.broadcast(w))
    hidden = torch.zeros(8, 1, 16, 16)
    hidden[..., 9:15, 3:13] = 1
    guess = encoder_start(encoder, generator, images, hidden)[:, 0]
    mean = generator.mean_latent(2000, torch.Generator().manual_seed(0))[0]
    assert (guess - w).pow(2).sum(1).mean() < 0.7 * (mean - w).pow(2).sum(1).mean()
