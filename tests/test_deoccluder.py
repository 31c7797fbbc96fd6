"""Seed 001's de-occluder and what every paired method shares: the expression-consistency loss against an
independent computation, mask-aware compositing that keeps visible pixels exactly, the segmentation network,
occluders beyond the face box, and training from pairs drawn on the subject's own normal frames that restores
the benchmark's real sensor frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unveil.data.datasets import IGNORE
from unveil.errors import UnveilError
from unveil.methods.deoccluder import Deoccluder, DeoccluderConfig
from unveil.methods.expression import ExpressionLoss, ExpressionOptions
from unveil.methods.paired import MaskAwareGenerator, MaskOptions
from unveil.nets.segmentation import OcclusionSegmenter, grow_mask
from unveil.restorers import FrameContext, GeneratorRestorer, MaskAwareRestorer

from test_cli import unveil


class _Constant(nn.Module):
    """A 'generator' that paints every pixel 0.5, whatever its input channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 3, *x.shape[-2:]), 0.5)


def test_compositing_keeps_visible_pixels_exactly() -> None:
    restorer = MaskAwareGenerator(_Constant(), None, MaskOptions(mask_input="given", mask_grow=0))
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:9, 2:12] = 1
    out = restorer(a, mask).out
    hidden = mask.bool().expand_as(a)
    assert torch.equal(out[~hidden], a[~hidden])
    assert torch.all(out[hidden] == 0.5)
    grown = MaskAwareGenerator(_Constant(), None, MaskOptions(mask_input="given", mask_grow=1))(a, mask).out
    assert torch.all(grown[:, :, 3, 1:13] == 0.5) and torch.equal(grown[:, :, 10], a[:, :, 10])  # one pixel more
    with pytest.raises(UnveilError, match="give it with --mask"):
        restorer(a)


def test_the_segmentation_network_learns_from_the_output_only_when_asked() -> None:
    """Its own loss trains it; the hybrid term may too (mask_gradient), other losses never do."""
    segmenter = OcclusionSegmenter(width=4)
    restorer = MaskAwareGenerator(nn.Conv2d(4, 3, 1), segmenter, MaskOptions(mask_input="predicted"))
    a = torch.rand(1, 3, 16, 16) * 2 - 1
    restorer(a).out.sum().backward()
    assert all(p.grad is None for p in segmenter.parameters())
    restorer(a, mask_gradient=True).out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in segmenter.parameters())


def test_grow_mask_and_the_segmenter_take_any_size() -> None:
    mask = torch.zeros(1, 1, 7, 9)
    mask[0, 0, 3, 4] = 1
    assert int(grow_mask(mask, 2).sum()) == 25 and int(grow_mask(mask, 0).sum()) == 1
    assert sum(p.numel() for p in OcclusionSegmenter(width=16).parameters()) == 439_393  # the README's 0.44 M
    net = OcclusionSegmenter(width=4)
    for shape in ((37, 53), (64, 64)):
        assert net(torch.zeros(1, 3, *shape)).shape == (1, 1, *shape)


def test_a_restorer_that_takes_masks_refuses_frames_without_one() -> None:
    restorer = MaskAwareRestorer(MaskAwareGenerator(_Constant(), None, MaskOptions(mask_input="given")), 16,
                                 torch.device("cpu"), "deoccluder")
    crops = [np.zeros((16, 16, 3), np.uint8)]
    with pytest.raises(UnveilError, match="takes the occluder mask as input; give it with --mask"):
        restorer(crops, [FrameContext(0)])
    mask = np.zeros((16, 16), np.float32)
    mask[:8] = 1
    (out,) = restorer(crops, [FrameContext(0, mask)])
    assert (out[:7] == round((0.5 + 1) * 127.5)).all() and (out[9:] == 0).all()  # mask grown by 1 pixel
    assert "masks given" in restorer.describe()


def test_expression_loss_is_the_judges_cross_entropy() -> None:
    """Against the FER network run directly: cross-entropy over the data set's classes, gradients to the image."""
    from unveil.analysis.fer import load_mini_xception, to_fer_input

    loss = ExpressionLoss(ExpressionOptions(lambda_expr=1.0), emotions=["neutral", "happiness", "anger"])
    torch.manual_seed(0)
    images = (torch.rand(4, 3, 40, 40) * 2 - 1).requires_grad_(True)
    labels = torch.tensor([0, 1, IGNORE, 2])
    value = loss(images, {"emotion": labels})
    net = load_mini_xception()
    with torch.no_grad():
        logits = net(to_fer_input(images))[:, [6, 3, 0]]  # FER order: anger 0, happiness 3, neutral 6
    assert float(value.detach()) == pytest.approx(float(F.cross_entropy(logits, labels, ignore_index=IGNORE)), rel=1e-5)
    value.backward()
    assert images.grad is not None and images.grad[2].abs().sum() == 0 and images.grad[0].abs().sum() > 0
    clean = ExpressionLoss(ExpressionOptions(lambda_expr=1.0, expr_target="clean"))
    with torch.no_grad():
        own = net(to_fer_input(images))
    entropy = -(torch.softmax(own, 1) * torch.log_softmax(own, 1)).sum(1).mean()  # the judge agrees with itself
    assert float(clean(images.detach(), {"B": images.detach()})) == pytest.approx(float(entropy), rel=1e-5)


def test_expression_loss_names_what_the_judge_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(UnveilError, match="does not know the label class boredom"):
        ExpressionLoss(ExpressionOptions(lambda_expr=1.0), emotions=["neutral", "boredom"])
    with pytest.raises(UnveilError, match="reads no AUs"):
        ExpressionLoss(ExpressionOptions(lambda_expr=1.0, expr_signal="aus"), aus=["AU12"])
    with pytest.raises(UnveilError, match="does not exist"):
        ExpressionLoss(ExpressionOptions(lambda_expr=1.0, expr_judge=str(tmp_path / "judge.hdf5")))
    (tmp_path / "broken.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(UnveilError, match="is not a readable Keras HDF5 file"):
        ExpressionLoss(ExpressionOptions(lambda_expr=1.0, expr_judge=str(tmp_path / "broken.hdf5")))


def test_the_judge_is_never_saved_and_never_trained() -> None:
    model = Deoccluder(DeoccluderConfig(ngf=4, ndf=4, netG="resnet_6blocks", mask_width=4))
    loss = ExpressionLoss(ExpressionOptions(lambda_expr=1.0), emotions=["happiness"])
    names = set(model.state_dict())
    assert {n.split(".")[0] for n in names} == {"G", "M", "D", "gan_loss"}  # gan_loss: its label buffers
    assert list(loss.judge.parameters()) == [] and loss.judge.state_dict() == {}  # nothing to save or optimise
    loss.judge.train()
    assert not loss.judge.judge.net.training  # batch norm keeps FER2013's statistics


def test_restore_fills_an_occluder_that_leaves_the_face_box(tmp_path: Path) -> None:
    """A cable from the face down off the frame: inside the box the restorer works, outside it the given mask's
    pixels are inpainted from their surroundings; every other pixel is the input's; --outside keep leaves it."""
    from unveil.restore import restore

    frame = np.tile(np.linspace(60, 180, 96, dtype=np.uint8)[None, :, None], (96, 1, 3))  # a smooth gradient
    cable = np.zeros((96, 96), np.uint8)
    cv2.line(cable, (48, 40), (70, 95), 255, 3)
    occluded = frame.copy()
    occluded[cable > 0] = (200, 30, 30)
    cv2.imwrite(str(tmp_path / "in.png"), cv2.cvtColor(occluded, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), cable)
    identity = GeneratorRestorer(nn.Identity(), 32, torch.device("cpu"), "identity")
    box = (24.0, 16.0, 48.0, 48.0)  # the cable leaves it at the bottom
    restore(identity, tmp_path / "in.png", tmp_path / "out.png", box=box, mask=tmp_path / "mask.png",
            composite="mask", progress=False)
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB).astype(int)
    below = np.zeros_like(cable, bool)
    below[70:] = cable[70:] > 0  # the cable under the box
    assert np.abs(out[below] - frame[below].astype(int)).max(axis=1).mean() < 20  # red gone: close to the gradient
    untouched = cv2.dilate(cable, np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(out[untouched], occluded[untouched])
    restore(identity, tmp_path / "in.png", tmp_path / "keep.png", box=box, mask=tmp_path / "mask.png",
            composite="mask", outside="keep", progress=False)
    kept = cv2.cvtColor(cv2.imread(str(tmp_path / "keep.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(kept[below], occluded[below])


class _ColourSegmenter(GeneratorRestorer):
    """An identity restorer whose "segmentation network" marks every strongly red or blue pixel: it finds the
    cable, and also a purple shirt it was never trained on (what a network trained on face crops does)."""

    segments = True

    def segment(self, image: np.ndarray) -> np.ndarray:
        r, b = image[..., 0].astype(int), image[..., 2].astype(int)
        return ((r > 150) & (image[..., 1] < 80) | (b > 150) & (image[..., 1] < 80)).astype(np.float32)


def test_a_clean_frame_of_the_camera_keeps_the_shirt_and_removes_the_cable(tmp_path: Path) -> None:
    from unveil.restore import restore

    frame = np.tile(np.linspace(60, 180, 96, dtype=np.uint8)[None, :, None], (96, 1, 3))
    frame[80:, 10:86] = (120, 60, 200)  # a purple shirt, in the normal recording too
    cable = np.zeros((96, 96), np.uint8)
    cv2.line(cable, (48, 40), (70, 79), 255, 3)  # from the face down to the shirt
    occluded = frame.copy()
    occluded[cable > 0] = (200, 30, 30)
    for name, image in (("in.png", occluded), ("clean.png", frame)):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    restorer = _ColourSegmenter(nn.Identity(), 32, torch.device("cpu"), "identity")
    box = (24.0, 16.0, 48.0, 48.0)  # the cable leaves it at the bottom
    shirt = np.zeros(cable.shape, bool)
    shirt[86:, 14:82] = True  # the shirt, a few pixels away from the cable's end
    outputs = {}
    for name, reference in (("with", tmp_path / "clean.png"), ("without", None)):
        restore(restorer, tmp_path / "in.png", tmp_path / f"{name}.png", box=box, reference=reference, progress=False)
        outputs[name] = cv2.cvtColor(cv2.imread(str(tmp_path / f"{name}.png")), cv2.COLOR_BGR2RGB).astype(int)
    assert not np.array_equal(outputs["without"][shirt], occluded[shirt])  # the shirt taken for an occluder
    assert np.array_equal(outputs["with"][shirt], occluded[shirt])  # the clean frame says it was always there
    below = np.zeros_like(cable, bool)
    below[66:78] = cable[66:78] > 0  # the cable under the box, above the shirt
    assert np.abs(outputs["with"][below] - frame[below].astype(int)).max(axis=1).mean() < 25  # red gone
    with pytest.raises(UnveilError, match="same camera"):
        cv2.imwrite(str(tmp_path / "small.png"), frame[:50])
        restore(restorer, tmp_path / "in.png", tmp_path / "bad.png", box=box, reference=tmp_path / "small.png",
                progress=False)


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sEMG benchmark (64 px frames, one subject) prepared into 72 px crops of whole frames."""
    from conftest import tiny_prepared

    return tiny_prepared(tmp_path_factory.mktemp("deoccluder"), fraction=0.5, load_size=72)


@pytest.mark.slow
def test_pairs_drawn_on_normal_frames_restore_the_real_sensor_frames(tiny_bench: Path) -> None:
    """Trained only on the subject's normal frames with sEMG drawn on them (the benchmark's look, for a test this
    small), the de-occluder restores the benchmark's own sensor frames: closer to their hidden truth inside the
    sensors than the input, and its segmentation network finds the sensors."""
    from unveil.data.manifest import load_manifest
    from unveil.evaluate.restoration import restoration_scores
    from unveil.train.loop import TrainConfig, train

    config = TrainConfig(method="deoccluder", model={"ngf": 8, "ndf": 8, "netG": "unet_64", "pairs": "synthesized",
                                                     "occluders": "semg", "mask_width": 8, "lambda_hybrid": 0.2},
                         n_epochs=8, n_epochs_decay=2, load_size=72, crop_size=64, batch_size=4, save_epoch_freq=100)
    result = train(tiny_bench, tiny_bench.parent / "run", config, progress=False)
    assert result.history[-1]["val_mask_iou"] > 0.5  # on drawn sensors it has not trained on
    manifest = load_manifest(tiny_bench.parent / "bench" / "manifest.yaml")
    scores = restoration_scores(tiny_bench.parent / "run", manifest, tiny_bench, "S01", every=2).mean(numeric_only=True)
    print(scores.filter(like="mask"))
    assert scores["l1_mask_restored"] < 0.7 * scores["l1_mask_input"]
    assert scores["l1_visible_restored"] < 0.05  # composited: the visible face is (nearly) the input's


def test_bad_deoccluder_options_are_one_sentence(tiny_bench: Path, tmp_path: Path) -> None:
    result = unveil("train", "deoccluder", "--samples", str(tiny_bench), "--run", str(tmp_path / "run"),
                    "--pairs", "synthesized", "--occluders", "semg,scarf", "-q")
    assert result.returncode == 2 and "Unknown pair occluder 'scarf'" in result.stderr
    result = unveil("train", "deoccluder", "--samples", str(tiny_bench), "--run", str(tmp_path / "run"),
                    "--pairs", "synthesized", "--lambda_expr", "1", "--expr_judge", str(tmp_path / "none.hdf5"), "-q")
    assert result.returncode == 2 and "none.hdf5 does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
