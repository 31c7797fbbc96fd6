"""GAN losses, gradient penalty, image pool and the CycleGAN objective, against closed forms."""

import random

import pytest
import torch
from torch import nn

from unveil.methods.cyclegan import CycleGAN, CycleGANConfig
from unveil.methods.gan import GANLoss, ImagePool, gradient_penalty
from unveil.nets import count_parameters


def test_gan_losses_closed_form() -> None:
    p = torch.tensor([[-1.0, 0.5], [2.0, 0.0]])
    assert GANLoss("lsgan")(p, True).item() == pytest.approx(((p - 1) ** 2).mean().item())
    assert GANLoss("lsgan")(p, False).item() == pytest.approx((p**2).mean().item())
    assert GANLoss("vanilla")(p, True).item() == pytest.approx(torch.log1p(torch.exp(-p)).mean().item())
    assert GANLoss("vanilla")(p, False).item() == pytest.approx(torch.log1p(torch.exp(p)).mean().item())
    assert GANLoss("wgangp")(p, True).item() == pytest.approx(-p.mean().item())


def test_gradient_penalty_of_a_linear_critic() -> None:
    """D(x) = <w, x> has gradient w everywhere, so the penalty is weight * (||w|| - 1)^2."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.full((1, 12), 0.5))  # ||w|| = sqrt(12) / 2
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    expected = 10.0 * (12**0.5 / 2 - 1) ** 2
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected, rel=1e-5)


def test_image_pool() -> None:
    assert torch.equal(ImagePool(0).query(x := torch.randn(3, 1, 2, 2)), x)
    pool = ImagePool(4, random.Random(0))
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as they are
    later = torch.arange(10.0, 410.0).reshape(400, 1, 1, 1)
    out = pool.query(later)
    swapped = (out.flatten() != later.flatten()).float().mean().item()
    assert 0.35 < swapped < 0.65  # about half the time an older image comes back instead of the new one
    assert (out < 10).any()  # including the very first ones
    restored = ImagePool(4, random.Random(123))
    restored.load_state(pool.state())
    probe = torch.randn(50, 1, 1, 1)
    assert torch.equal(pool.query(probe), restored.query(probe))


def tiny(**options: object) -> CycleGAN:
    config = CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks", **options)
    return CycleGAN(config, seed=0)


def test_default_cyclegan_size_and_optimisers() -> None:
    model = CycleGAN()
    assert count_parameters(model) == 2 * 11_378_179 + 2 * 2_764_737
    optimisers = model.make_optimizers()
    assert optimisers["G"].defaults["betas"] == (0.5, 0.999) and optimisers["G"].defaults["lr"] == 2e-4


def test_generator_objective_adds_up() -> None:
    torch.manual_seed(0)
    model = tiny(lambda_A=7.0, lambda_B=3.0, lambda_identity=0.5)
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    total, parts, fakes = model.generator_losses(batch)
    l1 = nn.L1Loss()
    assert parts["cycle_A"].item() == pytest.approx(7.0 * l1(fakes["rec_A"], batch["A"]).item(), rel=1e-5)
    assert parts["cycle_B"].item() == pytest.approx(3.0 * l1(fakes["rec_B"], batch["B"]).item(), rel=1e-5)
    assert parts["idt_A"].item() == pytest.approx(3.0 * 0.5 * l1(model.G_A(batch["B"]), batch["B"]).item(), rel=1e-5)
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)


def test_minimal_change_term() -> None:
    torch.manual_seed(1)
    model = tiny(lambda_mc=2.0, mc_visible_only=True)
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    batch = {"A": a, "B": a.clone(), "mask": torch.ones(1, 1, 32, 32)}
    _, parts, fakes = model.generator_losses(batch)
    assert parts["mc"].item() == 0.0  # everything hidden: nothing to keep
    batch["mask"] = torch.zeros(1, 1, 32, 32)
    _, parts, fakes = model.generator_losses(batch)
    assert parts["mc"].item() == pytest.approx(2.0 * (fakes["fake_B"] - a).abs().mean().item(), rel=1e-5)


def test_discriminator_loss_uses_real_and_fake() -> None:
    torch.manual_seed(2)
    model = tiny(pool_size=0)
    batch = {"A": torch.rand(2, 3, 32, 32), "B": torch.rand(2, 3, 32, 32)}
    _, _, fakes = model.generator_losses(batch)
    losses = model.discriminator_losses(batch, fakes)
    d_real, d_fake = model.D_A(batch["B"]), model.D_A(fakes["fake_B"])
    expected = 0.5 * (((d_real - 1) ** 2).mean() + (d_fake**2).mean())
    assert losses["D_A"].item() == pytest.approx(expected.item(), rel=1e-5)
