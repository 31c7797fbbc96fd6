"""The occlusion segmenter alone (``unveil train segmenter``) and ``unveil experiment automask``: IoU against the
benchmark's true masks, closed-form scores, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.errors import UnveilError
from unveil.experiments.automask import score

from conftest import tiny_config
from test_cli import unveil


@pytest.fixture(scope="module")
def masked_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every frame of a tiny benchmark with face masks (128 px frames), prepared into 40 px face crops."""
    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.synth import generate

    root = tmp_path_factory.mktemp("segmenter")
    manifest = generate(tiny_config(size=128, occluders=["mask"]), root / "bench", workers=1, progress=False)
    prepare(manifest, root / "prepared", PrepareConfig(fraction=1.0, load_size=40), workers=1,
            progress=False)
    return root / "prepared"


def test_scores_are_the_intersection_over_the_union() -> None:
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True  # 16 pixels
    shifted = np.zeros((10, 10), np.float32)
    shifted[2:6, 3:7] = 1  # 12 shared of 20
    grown_truth_area = 36  # the 4x4 square grown by one pixel: 6x6
    scores = score([truth.astype(np.float32), shifted, np.zeros((10, 10), np.float32)], [truth] * 3)
    assert scores["iou"] == pytest.approx([1.0, 12 / 20, 0.0])
    assert scores["iou_grown"] == pytest.approx([16 / grown_truth_area, 16 / grown_truth_area, 0.0])
    assert scores["nothing_found"] == [False, False, True]


def test_a_segmenter_trained_on_drawn_masks_finds_the_benchmarks_masks(masked_samples: Path, tmp_path: Path) -> None:
    """Trained only on masks drawn on the clean frames (the true occluded frames never seen), it finds the
    benchmark's own masks; the experiment scores it and the landmark polygon against the true masks."""
    run = tmp_path / "seg"
    result = unveil("train", "segmenter", "--samples", str(masked_samples), "-o", str(run), "--n_epochs", "20",
                    "--n_epochs_decay", "10", "--load_size", "40", "--crop_size", "32", "--batch_size", "8",
                    "--mask_width", "8", "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "val_mask_iou" in result.stdout
    out = tmp_path / "exp"
    result = unveil("experiment", "automask", str(masked_samples), "-o", str(out), "--segmenter", f"net={run}",
                    "--split", "all", "--count", "40", "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    results = pd.read_csv(out / "results.csv")
    means = results.groupby("source")["iou"].mean()
    assert list(means.index) == ["landmarks", "net"] and len(results) == 80
    assert means["landmarks"] > 0.75  # measured 0.83
    assert means["net"] > 0.5  # measured 0.67 after 30 tiny epochs on 52 frames at 32 px (0.93 on the README's run)
    assert (out / "grid.png").is_file() and "| net |" in (out / "table.md").read_text()


def test_refusals_are_one_sentence(masked_samples: Path, tmp_path: Path) -> None:
    from unveil.methods.segmenter import load_segmenter
    from unveil.train.loop import TrainConfig, train

    classifier = train(masked_samples, tmp_path / "cls", TrainConfig(
        method="classifier", model={"width": 4}, n_epochs=1, n_epochs_decay=0, load_size=36, crop_size=32,
        batch_size=4), progress=False)
    with pytest.raises(UnveilError, match="holds no segmentation network"):
        load_segmenter(classifier.run_dir)
    result = unveil("experiment", "automask", str(masked_samples), "-o", str(tmp_path / "x"), "--occluder",
                    "sensors", "--split", "all")
    assert result.returncode == 2 and "No occluded 'sensors' rows" in result.stderr
    result = unveil("experiment", "automask", str(masked_samples), "-o", str(tmp_path / "x"), "--segmenter", "net")
    assert result.returncode == 2 and "--segmenter takes NAME=CHECKPOINT" in result.stderr


def _segmenter_checkpoint(path: Path, hidden: bool) -> Path:
    """A segmenter checkpoint whose network calls every pixel hidden (or none): its head's weights zero, its bias
    +-20, so what it finds is known without training."""
    import torch

    from unveil.methods.segmenter import Segmenter, SegmenterConfig
    from unveil.train.checkpoint import save_checkpoint
    from unveil.train.config import TrainConfig

    model = Segmenter(SegmenterConfig(mask_width=4))
    with torch.no_grad():
        model.M.head.weight.zero_()
        model.M.head.bias.fill_(20.0 if hidden else -20.0)
    config = TrainConfig(method="segmenter", model={"mask_width": 4}, load_size=36, crop_size=32)
    return save_checkpoint(path, {f"net/{k}": v for k, v in model.state_dict().items()},
                           {"method": "segmenter", "config": config.model_dump(mode="json"),
                            "outputs": {"face_size": 32}})


def test_inpaint_takes_its_auto_masks_from_a_segmenter(tmp_path: Path) -> None:
    """On a grey image the landmarks find no face; a segmenter that calls every pixel hidden hands inversion a
    full mask (the side-by-side's middle panel all white), one that finds nothing leaves the image as it was."""
    import cv2
    import torch

    from test_stylegan2 import _checkpoint
    from unveil.nets.stylegan2 import Generator

    torch.manual_seed(3)
    generator = _checkpoint(Generator(16, style_dim=32, n_mlp=2, width=32).eval(), tmp_path / "g.safetensors")
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    for hidden in (True, False):
        segmenter = _segmenter_checkpoint(tmp_path / f"seg{hidden}.safetensors", hidden)
        out = tmp_path / f"out{hidden}.png"
        result = unveil("inpaint", str(image), "-g", str(generator), "-o", str(out), "--segmenter", str(segmenter),
                        "--steps", "2", "--side-by-side", "--perceptual", "none")
        assert result.returncode == 0, result.stderr
        written = cv2.imread(str(out))
        assert np.all(written[:, 32:64] == (255 if hidden else 0))
        assert np.all(written[:, 64:] == 128) != hidden  # nothing hidden: every pixel kept
    result = unveil("inpaint", str(image), "-g", str(generator), "-o", str(tmp_path / "x.png"), "--segmenter",
                    str(segmenter), "--mask", str(image))
    assert result.returncode == 2 and "not both" in result.stderr


def test_restore_hands_inversion_the_segmenters_masks(tmp_path: Path) -> None:
    """``unveil restore`` with --segmenter: the inversion restorer inverts with the network's masks (all hidden /
    none hidden, known without training); a restorer that is not inversion refuses it in one sentence."""
    import cv2
    import torch
    from torch import nn

    from test_stylegan2 import _checkpoint
    from unveil.methods.inversion import ProjectorConfig, load_inversion
    from unveil.nets.stylegan2 import Generator
    from unveil.restore import restore
    from unveil.restorers import GeneratorRestorer

    torch.manual_seed(3)
    generator = _checkpoint(Generator(16, style_dim=32, n_mlp=2, width=32).eval(), tmp_path / "g.safetensors")
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    for hidden in (True, False):
        inversion = load_inversion(generator, ProjectorConfig(steps=2, perceptual="none", n_mean_latent=100), "cpu")
        segmenter = _segmenter_checkpoint(tmp_path / f"seg{hidden}.safetensors", hidden)
        restore(inversion, image, tmp_path / f"out{hidden}.png", crop="none", segmenter=segmenter, progress=False)
        assert len(inversion.last_masks) == 1 and np.all(inversion.last_masks[0] == float(hidden))
    plain = GeneratorRestorer(nn.Identity(), 32, torch.device("cpu"), "pix2pix")
    with pytest.raises(UnveilError, match="a pix2pix restorer finds its own"):
        restore(plain, image, tmp_path / "x.png", crop="none", segmenter=segmenter, progress=False)
    assert not (tmp_path / "x.png").exists()
