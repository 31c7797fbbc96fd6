"""LPIPS, FID / FastFID / KID and identity distance, each against an independent computation."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from unveil.errors import UnveilError
from unveil.metrics.perceptual import (LPIPS, batched_fid, fast_frechet_distance, fid_inception, frechet_distance,
                                       inception_features, kernel_inception_distance)


@pytest.mark.parametrize(("n", "m", "d"), [(40, 40, 16), (50, 30, 64), (128, 128, 256)])
def test_fast_fid_equals_exact(n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3
    y = rng.normal(size=(m, d)) + 0.5
    assert fast_frechet_distance(x, y) == pytest.approx(frechet_distance(x, y), rel=1e-6)


def test_fid_closed_form() -> None:
    # two Gaussians' samples whose covariances are exactly I and 4I: FID = |mu|^2 + d (1 + 4 - 2 * 2)
    base = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]]) * np.sqrt(3 / 2)  # covariance I (ddof 1)
    assert fast_frechet_distance(base, 2 * base + 3) == pytest.approx(2 * 9 + 2 * 1, rel=1e-9)
    assert batched_fid(base, base + 1, batch=128) == pytest.approx(2.0)


def test_kid_matches_the_formula() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 1

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(6) for j in range(6) if i != j) / 30
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(6)) / 36
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=6)
    assert mean == pytest.approx(xx + yy - 2 * xy) and std == pytest.approx(0, abs=1e-12)


def _lpips_by_hand(features: torch.nn.Sequential, lins: list[torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> float:
    """LPIPS v0.1 from Zhang et al.: scaled input, AlexNet relu1-5, unit-normalised channels, weighted squared
    differences averaged over space, summed over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    x, y = ((2 * a - 1) - shift) / scale, ((2 * b - 1) - shift) / scale
    total = 0.0
    taps = {1: 0, 4: 1, 7: 2, 9: 3, 11: 4}  # ReLU outputs of torchvision's AlexNet features
    for index, layer in enumerate(features[:12]):
        x, y = layer(x), layer(y)
        if index in taps:
            nx = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += float(((nx - ny) ** 2 * lins[taps[index]].view(1, -1, 1, 1)).sum(1).mean())
    return total


def test_lpips_loads_a_torchvision_backbone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    alexnet = torchvision.models.alexnet(weights=None).eval()
    weights = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alexnet.state_dict(), weights)
    metric = LPIPS(weights, net="alex")
    lins = [metric.model.lins[i].model[-1].weight.detach().flatten() for i in range(5)]
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8) for _ in range(2))
    got = metric(list(a), list(b))
    with torch.no_grad():
        for i in range(2):
            ta = torch.from_numpy(a[i]).permute(2, 0, 1)[None].float() / 255
            tb = torch.from_numpy(b[i]).permute(2, 0, 1)[None].float() / 255
            assert got[i] == pytest.approx(_lpips_by_hand(alexnet.features, lins, ta, tb), rel=1e-4)
    assert metric([a[0]], [a[0]])[0] == pytest.approx(0, abs=1e-6)


def test_missing_weights_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNVEIL_WEIGHTS", str(tmp_path))
    with pytest.raises(UnveilError, match="alexnet-owt-7be5be79.pth, not found"):
        LPIPS()
    with pytest.raises(UnveilError, match="pt_inception-2015-12-05-6726825d.pth, not found"):
        fid_inception()


def fid_weights_file(path: Path) -> torch.nn.Module:
    """Write the weights of a randomly initialised FID Inception to ``path`` in the layout pytorch-fid's URL
    serves (taken from the model's blocks); returns that model."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    random_model = fid_inception(random_weights=True)
    inner = random_model.blocks  # InceptionV3 keeps the patched Inception's layers in blocks
    names = {"Conv2d_1a_3x3": inner[0][0], "Conv2d_2a_3x3": inner[0][1], "Conv2d_2b_3x3": inner[0][2],
             "Conv2d_3b_1x1": inner[1][0], "Conv2d_4a_3x3": inner[1][1], "Mixed_5b": inner[2][0],
             "Mixed_5c": inner[2][1], "Mixed_5d": inner[2][2], "Mixed_6a": inner[2][3], "Mixed_6b": inner[2][4],
             "Mixed_6c": inner[2][5], "Mixed_6d": inner[2][6], "Mixed_6e": inner[2][7], "Mixed_7a": inner[3][0],
             "Mixed_7b": inner[3][1], "Mixed_7c": inner[3][2]}
    state = {f"{name}.{k}": v.contiguous() for name, module in names.items() for k, v in module.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    save_file(state, str(path))
    return random_model


def test_fid_inception_loads_a_local_file(tmp_path: Path) -> None:
    random_model = fid_weights_file(tmp_path / "fid.safetensors")
    loaded = fid_inception(tmp_path / "fid.safetensors")
    images = list(np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8))
    a, b = inception_features(random_model, images), inception_features(loaded, images)
    assert a.shape == (3, 2048)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
