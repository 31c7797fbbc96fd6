"""pix2pix: the reference's networks and losses, paired training on the benchmark's hidden truth, restoring a video,
and the one-sentence errors around it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from unveil.data.video import probe
from unveil.errors import UnveilError
from unveil.methods.pix2pix import Pix2Pix, Pix2PixConfig
from unveil.methods.registry import load_restorer
from unveil.nets import count_parameters
from unveil.synth import generate
from unveil.train.config import resolve_train_config
from unveil.train.loop import TrainConfig, train

from conftest import tiny_config, tiny_prepared
from test_cli import unveil


def test_reference_network_sizes() -> None:
    model = Pix2Pix(Pix2PixConfig())  # unet_256, ngf 64; D on (A, B): 6 channels
    # The reference prints 54.414 M for G and 2.769 M for D with its pix2pix defaults.
    assert round(count_parameters(model.G) / 1e6, 3) == 54.414
    assert round(count_parameters(model.D) / 1e6, 3) == 2.769
    assert model.D.model[0].in_channels == 6


class _ConstantD(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 1, 2, 2)


def test_losses_in_closed_form() -> None:
    model = Pix2Pix(Pix2PixConfig(ngf=4, ndf=4, netG="resnet_6blocks", l1_hidden_weight=3.0, l1_visible_weight=0.5))
    model.D = _ConstantD()  # logit 0 everywhere: the vanilla GAN loss is ln 2 for real and fake
    fake, real = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1  # the top half hidden
    fake[..., :2, :], fake[..., 2:, :] = 0.2, 0.4  # |error| 0.2 hidden, 0.4 visible
    assert float(model.l1(fake, real, mask)) == pytest.approx((3.0 * 0.2 + 0.5 * 0.4) / 2)
    assert float(model.l1(fake, real, None)) == pytest.approx(0.3)
    batch = {"A": torch.zeros(2, 3, 32, 32), "B": torch.zeros(2, 3, 32, 32), "mask": torch.zeros(2, 1, 32, 32)}
    parts, result = model.generator_losses(batch)
    fake_b = result.out
    assert float(parts["G_GAN"]) == pytest.approx(math.log(2))
    assert float(parts["G_L1"].detach()) == pytest.approx(100 * 0.5 * float(fake_b.detach().abs().mean()), rel=1e-5)
    d = model.discriminator_loss(batch, fake_b)
    assert float(d["D_fake"]) == pytest.approx(math.log(2)) and float(d["D_real"]) == pytest.approx(math.log(2))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pix2pix")
    samples = tiny_prepared(root, fraction=0.5)
    config = TrainConfig(method="pix2pix", model={"ngf": 8, "ndf": 8, "netG": "resnet_6blocks"}, n_epochs=6,
                         n_epochs_decay=2, load_size=36, crop_size=32, batch_size=2, save_epoch_freq=100)
    train(samples, root / "run", config, progress=False)
    return samples, root / "run"


def test_training_on_pairs_restores_the_hidden_face(trained: tuple[Path, Path]) -> None:
    """On the frames training never saw, G(A) is closer to the hidden truth than A inside the occluder."""
    from unveil.data.manifest import load_manifest
    from unveil.evaluate.restoration import restoration_scores

    samples, run = trained
    manifest = load_manifest(samples.parent / "bench" / "manifest.yaml")
    scores = restoration_scores(run, manifest, samples, "S01", every=2).mean(numeric_only=True)
    print(scores.filter(like="mask"))
    assert scores["l1_mask_restored"] < 0.6 * scores["l1_mask_input"]
    assert scores["psnr_mask_restored"] > scores["psnr_mask_input"] + 3
    history = pd.read_csv(run / "history.csv")
    assert {"G_GAN", "G_L1", "D_fake", "D_real", "val_L1", "val_L1_hidden", "val_L1_visible"} <= set(history.columns)
    assert (run / "samples" / "epoch_008.png").is_file()


def test_restore_a_video_with_a_pix2pix_checkpoint(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    manifest = generate(tiny_config(size=64, format="mp4"), tmp_path / "bench", workers=1, progress=False)
    video = manifest.resolve(next(r for r in manifest.recordings if r.condition == "occluded").media)
    result = unveil("restore", str(run / "checkpoints" / "latest.safetensors"), str(video), "-o",
                    str(tmp_path / "out.mp4"), "--crop", "none", "-q")
    assert result.returncode == 0, result.stderr
    assert probe(tmp_path / "out.mp4").n_frames == probe(video).n_frames


def test_paired_training_needs_clean_crops(trained: tuple[Path, Path], tmp_path: Path) -> None:
    samples, _ = trained
    (tmp_path / "normal.yaml").write_text("domain_a: {condition: normal}\n")  # normal frames have no clean twins
    result = unveil("train", "pix2pix", "--samples", str(samples), "--run", str(tmp_path / "run"), "--config",
                    str(tmp_path / "normal.yaml"), "-q")
    assert result.returncode == 2 and "Paired training needs occluded samples with clean twins" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_classifier_checkpoint_cannot_restore(tmp_path: Path) -> None:
    from unveil.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "cnn.safetensors", {"net/x": torch.zeros(1)}, {"method": "classifier"})
    with pytest.raises(UnveilError, match="holds a classifier model, which does not restore; give a checkpoint of "
                                          "cyclegan or .*pix2pix"):  # (or a method another test registered)
        load_restorer(path)
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    result = unveil("restore", str(path), str(image), "-o", str(tmp_path / "out.png"))
    assert result.returncode == 2 and "which does not restore" in result.stderr
    unknown = save_checkpoint(tmp_path / "x.safetensors", {"net/x": torch.zeros(1)}, {"method": "stylegan9"})
    result = unveil("restore", str(unknown), str(image), "-o", str(tmp_path / "out.png"))
    assert result.returncode == 2 and "Unknown method 'stylegan9'; the registered methods are cyclegan, pix2pix" \
        in result.stderr


def test_a_yaml_model_block_merges_into_the_preset(tmp_path: Path) -> None:
    """The case a user hit: --preset cpu with a YAML holding only model: {lambda_mc: 0.5} kept ngf 64."""
    (tmp_path / "mc.yaml").write_text("model: {lambda_mc: 0.5}\n")
    config = resolve_train_config("cyclegan", preset="cpu", config=tmp_path / "mc.yaml", flags={"n_epochs": 1})
    assert (config.model.ngf, config.model.netG, config.model.lambda_mc) == (24, "resnet_6blocks", 0.5)
    assert (config.n_epochs, config.n_epochs_decay, config.crop_size) == (1, 1, 128)
    flags = resolve_train_config("cyclegan", preset="cpu", config=tmp_path / "mc.yaml", model_flags={"ngf": 16})
    assert (flags.model.ngf, flags.model.lambda_mc) == (16, 0.5)  # flags win over the file, the file over the preset
    (tmp_path / "other.yaml").write_text("model: {lambda_L1: 50}\n")
    with pytest.raises(UnveilError, match="'lambda_L1' is not a cyclegan option \\(it is an option of pix2pix\\)"):
        resolve_train_config("cyclegan", config=tmp_path / "other.yaml")
    with pytest.raises(UnveilError, match="Unknown method 'pix3pix'; the registered methods are"):
        resolve_train_config("pix3pix")


def test_the_cli_writes_the_merged_options(trained: tuple[Path, Path], tmp_path: Path) -> None:
    samples, _ = trained
    (tmp_path / "mc.yaml").write_text("model: {lambda_mc: 0.5}\nload_size: 36\ncrop_size: 32\n")
    result = unveil("train", "cyclegan", "--samples", str(samples), "--run", str(tmp_path / "run"), "--preset", "cpu",
                    "--config", str(tmp_path / "mc.yaml"), "--time-limit", "1e-9", "--lambda_A", "5", "-q")
    assert result.returncode == 0, result.stderr
    import yaml

    written = yaml.safe_load((tmp_path / "run" / "S01" / "config.yaml").read_text())
    assert written["model"]["ngf"] == 24 and written["model"]["lambda_mc"] == 0.5 and written["model"]["lambda_A"] == 5
    assert written["method"] == "cyclegan" and written["crop_size"] == 32
