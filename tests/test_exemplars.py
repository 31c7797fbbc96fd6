"""The exemplar fill (hidden pixels from the clean training crops nearest by the visible ones) against a brute-force
numpy computation of the masked distances, and in a de-occluder checkpoint end to end."""

from __future__ import annotations

from pathlib import Path

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
    for i in range(3):
        d = _brute_force(bank.numpy(), crops[i].numpy(), masks[i, 0].numpy() > 0.5)
        order = np.argsort(d)[:5]
        assert index[i].tolist() == order.tolist()
        expected = np.exp(-d[order] / d[order[0]])
        np.testing.assert_allclose(weight[i].numpy(), expected / expected.sum(), rtol=1e-4)
    fill = ExemplarFill(bank, k=5)(crops, masks)
    by_hand = (bank[index].float().div(127.5).sub(1) * weight[..., None, None, None]).sum(1)
    assert torch.allclose(fill, by_hand, atol=1e-5) and fill.min() >= -1 and fill.max() <= 1


class _Segmenter(torch.nn.Module):
    """A stand-in segmentation network that returns fixed logits, whatever the crop."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1, -1, -1)


def test_the_exemplar_check_keeps_what_matches_the_clean_face_and_hides_the_occluder() -> None:
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
    checked = MaskAwareGenerator(_Constant(), segmenter, MaskOptions(mask_input="predicted", exemplar_check=0.04),
                                 fill)
    result = restore_as_inference(checked, crop, None)
    assert torch.equal(result.mask.bool(), occluder)  # exactly the occluder: over-marking and haze gone
    hidden = occluder.expand_as(crop)
    assert torch.equal(result.out[~hidden], crop[~hidden])  # every visible pixel the input's, bit for bit
    assert torch.allclose(result.out[hidden], truth[None][hidden], atol=1e-6)  # the occluder: the hidden face
    hazy = restore_as_inference(soft, crop, None)  # without the check the visible pixels are blended
    assert not torch.equal(hazy.out[~hidden], crop[~hidden])
    with pytest.raises(ValidationError):
        MaskOptions(exemplar_check=1.0)


def test_exemplars_need_a_mask() -> None:
    with pytest.raises(ValidationError, match="need a mask"):
        MaskOptions(mask_input="none", exemplars=3)
    with pytest.raises(ValueError, match="uint8"):
        ExemplarFill(torch.zeros(2, 3, 8, 8), k=1)


def test_a_deoccluder_checkpoint_keeps_its_bank_and_restores_from_it(tiny_bench: Path) -> None:  # noqa: F811
    """One short training run with exemplars: the checkpoint holds the subject's clean crops, the restorer fills the
    hidden pixels from them (k = 1: every hidden pixel is that of one bank crop) and keeps the visible ones."""
    from unveil.methods.registry import load_restorer
    from unveil.train.loop import TrainConfig, train

    config = TrainConfig(method="deoccluder", model={"ngf": 8, "ndf": 8, "netG": "unet_64", "pairs": "synthesized",
                                                     "occluders": "semg", "mask_width": 8, "exemplars": 1},
                         n_epochs=1, n_epochs_decay=0, load_size=72, crop_size=64, batch_size=4, save_epoch_freq=100)
    result = train(tiny_bench, tiny_bench.parent / "exemplar-run", config, progress=False)
    restorer = load_restorer(result.run_dir / "checkpoints" / "latest.safetensors", "cpu")
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
