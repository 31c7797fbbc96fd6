"""The Expression Manipulator (seed 002): where its condition enters, its attention composite, the critic's two
heads, one generator step per four critic steps, and its checkpoint as a command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unveil.nets.manipulator import FusionUnit, ManipulatorDiscriminator, ManipulatorGenerator


@pytest.mark.parametrize("size", [128, 96])
def test_the_condition_enters_the_bottleneck_and_three_fusion_units_at_their_scales(size: int) -> None:
    g = ManipulatorGenerator(n_aus=17, ngf=64)
    seen: list[tuple[int, int]] = []
    for unit in g.fusions:
        unit.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0].shape[-1], inputs[0].shape[1])))
    bottleneck: list[torch.Size] = []
    g.bottleneck.register_forward_hook(lambda m, inputs, out: bottleneck.append(inputs[0].shape))
    out = g(torch.randn(2, 3, size, size), torch.randn(2, 17))
    assert out.shape == (2, 3, size, size) and out.abs().max() <= 1
    assert bottleneck[0][1:] == (512 + 17, size // 16, size // 16)  # 512 channels at S/16 plus the tiled c
    assert seen == [(size // 8, 512), (size // 4, 256), (size // 2, 128)]  # encoder features of each scale
    assert all(u.high[0].in_channels == u.high[0].out_channels + 17 for u in g.fusions)  # each takes c too
    assert isinstance(g.fusions[0], FusionUnit) and {m.kernel_size for m in (g.fusions[0].k3[0], g.fusions[0].k5[0])
                                                     } == {(3, 3), (5, 5)}


def test_attention_keeps_the_input_where_the_map_is_one() -> None:
    g = ManipulatorGenerator(n_aus=3, ngf=8, attention=True)
    with torch.no_grad():
        g.mask[0].weight.zero_()
        g.mask[0].bias.fill_(50.0)  # sigmoid(50) = 1 to float precision: A = 1 everywhere
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    out, attention = g.parts(x, torch.tensor([[0.7, 0.0, 0.0]]))
    assert attention is not None and torch.allclose(attention, torch.ones_like(attention))
    assert torch.allclose(out, x)  # A * x + (1 - A) * C


def test_the_critic_has_a_patch_map_and_one_estimate_per_au() -> None:
    d = ManipulatorDiscriminator(n_aus=9, size=128, ndf=8)
    critic, aus = d(torch.randn(3, 3, 128, 128))
    assert critic.shape == (3, 1, 2, 2) and aus.shape == (3, 9)  # six stride-2 stages: 128 -> 2 px
    assert sum(isinstance(m, torch.nn.Conv2d) for m in d.body) == 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from unveil.synth.mnist_grid import GridConfig, write_grid_set
    from unveil.train.config import resolve_train_config
    from unveil.train.loop import Trainer

    root = tmp_path_factory.mktemp("manipulator")
    classes = np.repeat(np.arange(10, dtype=np.uint8), 4)
    digits = np.broadcast_to((classes * 20 + 10)[:, None, None], (40, 28, 28)).astype(np.uint8)
    np.savez(root / "mnist.npz", x_train=digits, y_train=classes, x_test=digits, y_test=classes)
    write_grid_set(root / "grid", GridConfig(train=32, val=8, unlabelled=4, test_per_digit=1, noise="none",
                                             mnist=str(root / "mnist.npz")), progress=False)
    config = resolve_train_config("manipulator", preset="cpu", flags={"n_epochs": 1, "n_epochs_decay": 0,
                                                                      "batch_size": 4, "device": "cpu"},
                                  model_flags={"ngf": 4, "ndf": 4})
    trainer = Trainer(root / "grid", root / "run", config, progress=False)
    result = trainer.fit(progress=False)
    return root, trainer, result


def test_the_generator_steps_once_every_four_critic_steps(trained) -> None:  # noqa: ANN001
    _, trainer, result = trained
    steps = {name: int(next(iter(o.state.values()))["step"]) for name, o in trainer.optimizers.items()}
    assert steps == {"D": 8, "G": 2}  # 32 labelled grids (the 4 unlabelled are left out), batch 4
    record = result.history[-1]
    assert {"D_gp", "D_au", "G_au", "G_rec", "G_cycle", "val_au_fake", "val_rec"} <= set(record)
    # G's terms are averaged over the two batches that computed them, not over all eight
    assert record["G_rec"] == pytest.approx(record["val_rec"], rel=0.5)


def test_a_checkpoint_edits_an_image_and_refuses_unknown_aus(trained, tmp_path: Path) -> None:  # noqa: ANN001
    root, _, result = trained
    image = sorted((root / "grid" / "images").glob("test_*.png"))[0]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "unveil", "manipulate", str(image), "-m", str(result.run_dir),
                               *args], capture_output=True, text=True)

    assert run("-o", str(tmp_path / "one"), "--au", "3=1").returncode == 0
    assert run("-o", str(tmp_path / "row"), "--each-au", "1").returncode == 0
    import cv2

    assert cv2.imread(str(tmp_path / "one.png")).shape == (96, 96, 3)
    assert cv2.imread(str(tmp_path / "row.png")).shape == (96, 96 * 10, 3)  # the input and nine edits
    for args, message in ((["--au", "99=0.5"], "not trained on 99; it knows AU1"),
                          (["--au", "3=1.5"], "must lie in [-1, 1]"),
                          (["--au", "3=x"], "--au takes AU=VALUE")):
        failed = run("-o", str(tmp_path / "bad"), *args)
        assert failed.returncode == 2 and message in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.png").exists()
