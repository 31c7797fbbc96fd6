"""The exemplar fill (hidden pixels from the clean training crops nearest by the visible ones) against a brute-force
numpy computation of the masked distances, and in a de-occluder checkpoint end to end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from unveil.methods.exemplars import ExemplarFill
from unveil.methods.paired import MaskAwareGenerator, MaskOptions, restore_as_inference

from test_deoccluder import _Constant, tiny_bench  # noqa: F401 - the module's tiny prepared benchmark


def _bank(n: int, side: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, side, side), dtype=np.uint8))


def _brute_force(bank: np.ndarray, crop: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Mean squared difference in [0, 1] units over the visible pixels, per bank crop (numpy, no shortcuts)."""
    visible = ~hidden
    return np.array([((b.astype(float) / 255 - (crop + 1) / 2) ** 2)[:, visible].mean() for b in bank])


@pytest.mark.parametrize("side", [16, 96])  # 96: retrieval at 64 px, the fill at 96
def test_the_nearest_crop_fills_the_hidden_pixels(side: int) -> None:
    bank = _bank(6, side)
    fill = ExemplarFill(bank, k=1)
    truth = bank[4].float().div(127.5).sub(1)
    mask = torch.zeros(1, 1, side, side)
    mask[..., side // 4: side // 2, :] = 1  # a band hidden under a 'cable' of noise
    crop = torch.where(mask.bool(), torch.rand(1, 3, side, side) * 2 - 1, truth[None])
    out = fill(crop, mask)
    assert torch.allclose(out[0], truth, atol=1e-6)  # the crop whose visible pixels match, whole
    restored = MaskAwareGenerator(_Constant(), None, MaskOptions(mask_input="given", mask_grow=0), fill)
    result = restore_as_inference(restored, crop, mask)
    hidden = mask.bool().expand_as(crop)
    assert torch.equal(result.out[~hidden], crop[~hidden])  # visible pixels: the input's
    assert torch.allclose(result.out[hidden], truth[None][hidden], atol=1e-6)
    assert torch.all(restore_as_inference(restored, crop, mask, exemplars=False).out[hidden] == 0.5)  # G's own


def test_neighbours_and_weights_match_a_brute_force_computation() -> None:
    bank = _bank(40, 16, seed=1)
    crops = torch.rand(3, 3, 16, 16) * 2 - 1
    masks = (torch.rand(3, 1, 16, 16) < 0.4).float()
    index, weight = ExemplarFill(bank, k=5).neighbours(crops, masks)
    assert index.shape == weight.shape == (3, 1, 5)  # one region: the whole face
    for i in range(3):
        d = _brute_force(bank.numpy(), crops[i].numpy(), masks[i, 0].numpy() > 0.5)
        order = np.argsort(d)[:5]
        assert index[i, 0].tolist() == order.tolist()
        expected = np.exp(-d[order] / d[order[0]])
        np.testing.assert_allclose(weight[i, 0].numpy(), expected / expected.sum(), rtol=1e-4)
    fill = ExemplarFill(bank, k=5)(crops, masks)
    by_hand = (bank[index[:, 0]].float().div(127.5).sub(1) * weight[:, 0, :, None, None, None]).sum(1)
    assert torch.allclose(fill, by_hand, atol=1e-5) and fill.min() >= -1 and fill.max() <= 1


def _gaussian_regions(regions: int, side: int) -> np.ndarray:
    """(regions^2, side, side): exp(-d^2 / 2 cell^2) around each cell's centre, d the distance in pixels (numpy)."""
    cell = side / regions
    y, x = np.mgrid[0:side, 0:side] + 0.5
    centres = [((i + 0.5) * cell, (j + 0.5) * cell) for i in range(regions) for j in range(regions)]
    return np.stack([np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * cell ** 2)) for cy, cx in centres])


def test_regional_neighbours_match_a_brute_force_weighted_distance() -> None:
    bank, side, regions = _bank(30, 16, seed=2), 16, 4
    crops = torch.rand(2, 3, side, side) * 2 - 1
    masks = (torch.rand(2, 1, side, side) < 0.5).float()
    index, weight = ExemplarFill(bank, k=3, regions=regions).neighbours(crops, masks)
    assert index.shape == (2, regions * regions, 3)
    spatial = _gaussian_regions(regions, side)
    for i in range(2):
        visible = masks[i, 0].numpy() < 0.5
        squared = ((bank.numpy().astype(float) / 255 - (crops[i].numpy() + 1) / 2) ** 2).sum(1)  # (N, s, s)
        for r in range(regions * regions):
            w = spatial[r] * visible
            d = (squared * w).sum((1, 2)) / (3 * w.sum())
            order = np.argsort(d)[:3]
            assert index[i, r].tolist() == order.tolist()
            expected = np.exp(-d[order] / d[order[0]])
            np.testing.assert_allclose(weight[i, r].numpy(), expected / expected.sum(), rtol=1e-4)


def test_regions_take_the_mouth_from_the_frame_whose_visible_lips_match() -> None:
    """The upper ten rows show bank crop 1, the two rows at the bottom crop 3, the four between are hidden. Over the
    whole face crop 1 is nearest (ten matching rows against two) and fills everything; by regions, the bottom row of
    regions takes crop 3 and the fill of the hidden rows next to it moves towards crop 3."""
    side = 16
    bank = _bank(6, side, seed=4)
    upper, lower = bank[1].float().div(127.5).sub(1), bank[3].float().div(127.5).sub(1)
    crop = upper.clone()[None]
    crop[..., 14:, :] = lower[:, 14:, :]
    mask = torch.zeros(1, 1, side, side)
    mask[..., 10:14, :] = 1
    crop = torch.where(mask.bool(), torch.ones_like(crop), crop)  # a white cable over rows 10-13
    whole = ExemplarFill(bank, k=1)
    assert whole.neighbours(crop, mask)[0].flatten().tolist() == [1]
    assert torch.allclose(whole(crop, mask)[0], upper, atol=1e-6)
    regional = ExemplarFill(bank, k=1, regions=4)
    index = regional.neighbours(crop, mask)[0].reshape(4, 4)
    assert index[0].tolist() == [1] * 4 and index[3].tolist() == [3] * 4  # top row of regions: 1; bottom row: 3
    fill = regional(crop, mask)[0]
    row = 13  # the hidden row next to the visible lips
    assert (fill[:, row] - lower[:, row]).abs().mean() < (fill[:, row] - upper[:, row]).abs().mean()
    with pytest.raises(ValueError, match="regions"):
        ExemplarFill(bank, k=1, regions=0)


class _Segmenter(torch.nn.Module):
    """A stand-in segmentation network that returns fixed logits, whatever the crop."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1, -1, -1)


@pytest.mark.parametrize("check_by", ["fill", "bank"])
def test_the_exemplar_check_keeps_what_matches_the_clean_face_and_hides_the_occluder(check_by: str) -> None:
    # The person's clean faces in [0, 0.5]; the occluder is white, so it differs from them by at least a quarter of
    # the range. The network over-marks (the occluder band and a visible band below it) and leaves a 0.2 haze on
    # every other pixel, as the demo's networks do on the benchmark's real sensors.
    side = 16
    bank = torch.from_numpy(np.random.default_rng(3).integers(0, 128, (6, 3, side, side), dtype=np.uint8))
    truth = bank[2].float().div(127.5).sub(1)
    occluder = torch.zeros(1, 1, side, side, dtype=torch.bool)
    occluder[..., 3:6, :] = True
    crop = torch.where(occluder, torch.ones(1, 3, side, side), truth[None])
    probability = torch.full((1, 1, side, side), 0.2)
    probability[..., 3:9, :] = 0.9  # rows 6-8: visible face the network takes for occluder
    segmenter = _Segmenter(torch.logit(probability))
    fill = ExemplarFill(bank, k=1)
    soft = MaskAwareGenerator(_Constant(), segmenter, MaskOptions(mask_input="predicted"), fill)
    options = MaskOptions(mask_input="predicted", exemplar_check=0.04, exemplar_check_by=check_by, mask_grow=0)
    checked = MaskAwareGenerator(_Constant(), segmenter, options, fill)
    result = restore_as_inference(checked, crop, None)
    assert torch.equal(result.mask.bool(), occluder)  # exactly the occluder: over-marking and haze gone
    hidden = occluder.expand_as(crop)
    assert torch.equal(result.out[~hidden], crop[~hidden])  # every visible pixel the input's, bit for bit
    assert torch.allclose(result.out[hidden], truth[None][hidden], atol=1e-6)  # the occluder: the hidden face
    hazy = restore_as_inference(soft, crop, None)  # without the check the visible pixels are blended
    assert not torch.equal(hazy.out[~hidden], crop[~hidden])
    grown = MaskAwareGenerator(_Constant(), segmenter, options.model_copy(update={"mask_grow": 1}), fill)
    ring = torch.zeros_like(occluder)
    ring[..., 2:7, :] = True  # checked against the bank, the mask is grown by mask_grow; against the fill, not
    assert torch.equal(restore_as_inference(grown, crop, None).mask.bool(), ring if check_by == "bank" else occluder)
    with pytest.raises(ValidationError):
        MaskOptions(exemplar_check=1.0)


@pytest.mark.parametrize(("n", "side"), [(5, 16), (300, 96)])  # 96 px, 300 crops, 8 at once: in pixel chunks
def test_the_colour_distance_is_the_nearest_bank_colour_at_each_pixel(n: int, side: int) -> None:
    bank = _bank(n, side, seed=7)
    crop = torch.rand(8, 3, side, side) * 2 - 1
    values = (crop.numpy() + 1) / 2  # the brute force: every crop, every bank crop, every pixel
    expected = np.abs(bank.numpy()[None].astype(float) / 255 - values[:, None]).max(2).min(1)
    distance = ExemplarFill(bank, k=1).colour_distance(crop)
    assert distance.shape == (8, 1, side, side)
    np.testing.assert_allclose(distance[:, 0].numpy(), expected, atol=1e-6)


def test_the_bank_check_keeps_an_open_mouth_that_the_nearest_faces_do_not_show() -> None:
    # Two clean frames of a person, alike but for the mouth (rows 12-13: lips closed, dark; open, white teeth) and a
    # faint difference around the eyes (rows 0-1) that makes the closed-mouth frame the nearest to the crop. The
    # crop shows the open mouth under a white cable (rows 4-6); the network marks cable and teeth alike.
    side = 16
    face = np.random.default_rng(5).integers(60, 120, (3, side, side)).astype(np.uint8)
    closed, opened = face.copy(), face.copy()
    closed[:, 12:14, 4:12] = 30
    opened[:, 12:14, 4:12] = 250
    opened[:, 0:2, :] += 20
    bank = torch.from_numpy(np.stack([closed, opened]))
    crop = torch.from_numpy(opened).float().div(127.5).sub(1)[None]
    crop[..., 0:2, :] = torch.from_numpy(face[:, 0:2, :]).float().div(127.5).sub(1)  # eyes as the closed frame's
    cable = torch.zeros(1, 1, side, side, dtype=torch.bool)
    cable[..., 4:7, :] = True
    crop = torch.where(cable, torch.ones_like(crop), crop)
    teeth = torch.zeros_like(cable)
    teeth[..., 12:14, 4:12] = True
    probability = torch.where(cable | teeth, 0.9, 0.1)
    segmenter = _Segmenter(torch.logit(probability))
    fill = ExemplarFill(bank, k=1)
    assert fill.neighbours(crop, (cable | teeth).float())[0].flatten().tolist() == [0]  # the closed mouth is nearest

    def restored(check_by: str):  # noqa: ANN202
        options = MaskOptions(mask_input="predicted", exemplar_check=0.06, exemplar_check_by=check_by, mask_grow=0)
        return restore_as_inference(MaskAwareGenerator(_Constant(), segmenter, options, fill), crop, None)

    by_bank, by_fill = restored("bank"), restored("fill")
    assert torch.equal(by_bank.mask.bool(), cable)  # the teeth: some clean frame of the person shows them there
    assert torch.equal(by_bank.out[teeth.expand_as(crop)], crop[teeth.expand_as(crop)])  # the open mouth, as filmed
    assert torch.equal(by_fill.mask.bool(), cable | teeth)  # the fill's closed lips differ: hidden, and closed
    assert (by_fill.out[teeth.expand_as(crop)] < 0).all()
    assert by_bank.mask[cable].all()  # the cable's white is nowhere on the person's faces at those rows


def test_exemplars_need_a_mask() -> None:
    with pytest.raises(ValidationError, match="need a mask"):
        MaskOptions(mask_input="none", exemplars=3)
    with pytest.raises(ValueError, match="uint8"):
        ExemplarFill(torch.zeros(2, 3, 8, 8), k=1)


def _tiny_deoccluder(samples: Path, name: str, **options: object) -> Path:
    """A de-occluder trained one short epoch on ``samples`` with these mask ``options``; its checkpoint."""
    from unveil.train.loop import TrainConfig, train

    config = TrainConfig(method="deoccluder", model={"ngf": 8, "ndf": 8, "netG": "unet_64", "pairs": "synthesized",
                                                     "occluders": "semg", "mask_width": 8, **options},
                         n_epochs=1, n_epochs_decay=0, load_size=72, crop_size=64, batch_size=4, save_epoch_freq=100)
    return train(samples, samples.parent / name, config, progress=False).run_dir / "checkpoints" / "latest.safetensors"


@pytest.fixture(scope="module")
def exemplar_checkpoint(tiny_bench: Path) -> Path:  # noqa: F811
    return _tiny_deoccluder(tiny_bench, "exemplar-run", exemplars=1)


def test_a_deoccluder_checkpoint_keeps_its_bank_and_restores_from_it(tiny_bench: Path,  # noqa: F811
                                                                     exemplar_checkpoint: Path) -> None:
    """One short training run with exemplars: the checkpoint holds the subject's clean crops, the restorer fills the
    hidden pixels from them (k = 1: every hidden pixel is that of one bank crop) and keeps the visible ones."""
    from unveil.methods.registry import load_restorer

    restorer = load_restorer(exemplar_checkpoint, "cpu")
    bank = restorer.generator.E.images
    clean = pd.read_parquet(tiny_bench / "samples.parquet")
    assert len(bank) == ((clean["condition"] == "normal") & (clean["split"] == "train")).sum()
    assert bank.shape[-1] == 64 and "nearest of" in restorer.describe()
    crops = [np.ascontiguousarray(b.permute(1, 2, 0).numpy()) for b in bank[:2]]
    crops[0][20:40] = (255, 0, 0)  # a red band over a clean crop of the bank
    out = restorer(crops)
    hidden = restorer.last_masks[0] >= 0.5
    nearest = np.argmin(_brute_force(bank.numpy(), crops[0].transpose(2, 0, 1) / 127.5 - 1, hidden))
    expected = bank[nearest].permute(1, 2, 0).numpy().astype(float)  # k = 1: that crop, whole
    soft = restorer.last_masks[0][..., None]
    composite = np.clip(np.rint(soft * expected + (1 - soft) * crops[0]), 0, 255)
    assert np.abs(out[0].astype(int) - composite).max() <= 1
    untouched = restorer.last_masks[0] == 0
    assert np.array_equal(out[0][untouched], crops[0][untouched])


def test_restore_time_options_replace_the_checkpoints_and_no_other(tiny_bench: Path,  # noqa: F811
                                                                   exemplar_checkpoint: Path, tmp_path: Path) -> None:
    """``load_restorer(..., options)`` and ``unveil restore --set`` change how the trained networks are used (the
    exemplar check, the retrieval regions), never the networks, never the file; anything else is one sentence."""
    from unveil.errors import UnveilError
    from unveil.methods.registry import load_restorer

    saved = exemplar_checkpoint.read_bytes()
    restorer = load_restorer(exemplar_checkpoint, "cpu", {"exemplar_regions": "3", "exemplar_check": "0.05"})
    assert (restorer.generator.E.regions, restorer.generator.exemplar_check) == (3, 0.05)
    assert "a 3 x 3 grid" in restorer.describe() and "to within 5%" in restorer.describe()
    own = load_restorer(exemplar_checkpoint, "cpu").generator  # the checkpoint's own values
    assert (own.E.regions, own.exemplar_check) == (1, 0.0)
    assert exemplar_checkpoint.read_bytes() == saved
    with pytest.raises(UnveilError, match=r"netG cannot be changed at restore time for deoccluder \(its restore-time "
                                          r"options: composite, .*exemplar_regions\)"):
        load_restorer(exemplar_checkpoint, "cpu", {"netG": "unet_128"})
    with pytest.raises(UnveilError, match="'exemplar_check' is invalid"):
        load_restorer(exemplar_checkpoint, "cpu", {"exemplar_check": "1.5"})
    plain = _tiny_deoccluder(tiny_bench, "plain-run")
    with pytest.raises(UnveilError, match="keeps no exemplar bank"):
        load_restorer(plain, "cpu", {"exemplars": "4"})

    from test_cli import unveil

    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    for setting, message in (("netG=unet_128", "netG cannot be changed at restore time"),
                             ("exemplar_check", "--set takes NAME=VALUE")):
        result = unveil("restore", str(exemplar_checkpoint), str(image), "-o", str(tmp_path / "out.png"),
                        "--crop", "none", "--set", setting, "-q")
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.png").exists()
    result = unveil("restore", str(exemplar_checkpoint), str(image), "-o", str(tmp_path / "out.png"), "--crop", "none",
                    "--set", "exemplar_check=0.05", "--set", "exemplar_regions=3", "-q")
    assert result.returncode == 0 and cv2.imread(str(tmp_path / "out.png")).shape == (64, 64, 3)


def test_pix2pix_on_given_pairs_keeps_the_clean_twins(tiny_bench: Path) -> None:  # noqa: F811
    """Given pairs: the bank holds the hidden clean twins of the occluded training crops, not the occluded crops."""
    from unveil.data.datasets import load_image
    from unveil.data.faces import square_resize
    from unveil.methods.registry import load_restorer
    from unveil.train.loop import TrainConfig, train

    config = TrainConfig(method="pix2pix", model={"ngf": 8, "ndf": 8, "netG": "unet_64", "mask_input": "given",
                                                  "exemplars": 2, "exemplar_bank": 5},
                         n_epochs=1, n_epochs_decay=0, load_size=72, crop_size=64, batch_size=4, save_epoch_freq=100,
                         max_dataset_size=8)
    result = train(tiny_bench, tiny_bench.parent / "pix2pix-exemplar-run", config, progress=False)
    bank = load_restorer(result.run_dir / "checkpoints" / "latest.safetensors", "cpu").generator.E.images
    rows = pd.read_parquet(tiny_bench / "samples.parquet")
    twins = rows[(rows["condition"] == "occluded") & (rows["split"] == "train")]["clean"].iloc[:8].tolist()
    assert len(bank) == 5  # exemplar_bank: evenly spaced
    first, last = (square_resize(load_image(tiny_bench / twins[i]), 64) for i in (0, -1))
    assert np.array_equal(bank[0].permute(1, 2, 0).numpy(), first)
    assert np.array_equal(bank[-1].permute(1, 2, 0).numpy(), last)
