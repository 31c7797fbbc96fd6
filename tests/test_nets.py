"""The networks against the reference implementation: parameter counts, shapes, receptive field, init."""

import pytest
import torch
from torch import nn

from unveil.errors import UnveilError
from unveil.nets import count_parameters, define_D, define_G, init_weights


def test_parameter_counts_match_the_reference() -> None:
    assert count_parameters(define_G(3, 3, 64, "resnet_9blocks", "instance")) == 11_378_179
    assert count_parameters(define_D(3, 64, "basic", norm="instance")) == 2_764_737


@pytest.mark.parametrize(("name", "size"), [("resnet_9blocks", 64), ("resnet_6blocks", 96), ("unet_128", 128),
                                            ("unet_256", 256)])
def test_generators_keep_the_image_size_and_range(name: str, size: int) -> None:
    net = define_G(3, 3, 8, name)
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3, size, size) and out.abs().max() <= 1


def test_patchgan_sees_70_by_70_patches() -> None:
    """Perturb one input pixel: the output cells that change are those whose 70x70 field contains it."""
    net = define_D(3, 8, "basic", norm="none").eval()
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    out = net(x)
    assert out.shape == (1, 1, 30, 30)
    out[0, 0, 15, 15].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1)).sum(dim=1)).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)).sum(dim=0)).flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_pixel_discriminator_judges_pixels() -> None:
    out = define_D(3, 8, "pixel")(torch.randn(1, 3, 20, 24))
    assert out.shape == (1, 1, 20, 24)


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_initialisations(init_type: str) -> None:
    conv = init_weights(nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64)), init_type, 0.02)
    weight, bias = conv[0].weight.detach(), conv[0].bias.detach()
    assert torch.all(bias == 0)
    fan_in = 64 * 9
    expected_std = {"normal": 0.02, "xavier": 0.02 * (2 / (fan_in + fan_in)) ** 0.5,
                    "kaiming": (2 / fan_in) ** 0.5, "orthogonal": None}[init_type]
    if expected_std is not None:
        assert weight.std().item() == pytest.approx(expected_std, rel=0.05)
    else:  # rows of the flattened weight are orthogonal, scaled by the gain
        flat = weight.reshape(64, -1)
        torch.testing.assert_close(flat @ flat.T, 0.02**2 * torch.eye(64), atol=1e-6, rtol=0)
    assert conv[1].weight.mean().item() == pytest.approx(1.0, abs=0.01)


def test_bad_names_are_one_sentence() -> None:
    with pytest.raises(UnveilError, match="Unknown generator 'resnet_12'"):
        define_G(netG="resnet_12")
    with pytest.raises(UnveilError, match="Unknown discriminator"):
        define_D(netD="huge")
    with pytest.raises(UnveilError, match="Unknown normalisation"):
        define_G(norm="group")
    with pytest.raises(UnveilError, match="multiples of 128"):
        define_G(3, 3, 8, "unet_128")(torch.randn(1, 3, 100, 100))
