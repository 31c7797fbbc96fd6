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


class _ChannelJudge:
    """A stand-in AU reader with a closed form: AU k is the mean of colour channel k, over 255."""

    aus = ["AU01", "AU02", "AU12"]

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(image, np.float64).mean(axis=(0, 1)) / 255 for image in images])


class _ChannelEditor:
    """A stand-in manipulator with known edits: raising AU k by c lifts channel k by ``gain[k] * c``, and AU12
    also lifts channel 0 by ``leak * c`` (a correlated AU drawn along); G(x, 0) is exact."""

    aus = ["AU01", "AU02", "AU12"]
    gain, leak = np.array([1.0, 0.2, 0.8]), 0.3

    def __call__(self, images: list[np.ndarray], changes: np.ndarray) -> list[np.ndarray]:
        out = []
        for image, c in zip(images, changes, strict=True):
            lift = self.gain * c + np.array([self.leak * c[2], 0.0, 0.0])
            out.append((np.asarray(image, np.float64) + 255 * lift).astype(np.float64))
        return out


def test_the_manipulation_measure_reads_each_edit_against_its_closed_form() -> None:
    from unveil.experiments.manipulation import ManipulationConfig, measure_edits

    faces = [np.full((8, 8, 3), 10.0 * i) for i in range(4)]
    config = ManipulationConfig(manipulator="m", judge="j", activation=0.5)
    frame, examples = measure_edits(_ChannelEditor(), _ChannelJudge(), faces, config)
    rows = frame.set_index("AU")
    # moved = gain * 0.5; share = gain; others = mean over the two other AUs of their absolute moves
    assert rows["moved"].to_numpy() == pytest.approx([0.5, 0.1, 0.4])
    assert rows["share"].to_numpy() == pytest.approx([1.0, 0.2, 0.8])
    assert rows["others"].to_numpy() == pytest.approx([0.0, 0.0, 0.15 / 2])
    assert rows.loc["AU12", "worst_other"] == "AU01"
    assert rows["reconstruction_others"].to_numpy() == pytest.approx(0.0)
    # the bar: share >= 0.5 and others < 0.1 (AU02 moves too little)
    assert rows["passes"].tolist() == [True, False, True]
    assert len(examples) == 3 and all(len(e) == 3 for e in examples)
    strict = config.model_copy(update={"pass_others": 0.05})
    assert measure_edits(_ChannelEditor(), _ChannelJudge(), faces, strict)[0]["passes"].tolist() == [True, False,
                                                                                                      False]


def test_the_manipulation_experiment_runs_on_a_trained_manipulator(trained, tmp_path: Path) -> None:  # noqa: ANN001
    """The command end to end on the tiny grid manipulator, judged by a tiny grid classifier; then bad input."""
    from unveil.train.config import resolve_train_config
    from unveil.train.loop import train

    root, _, result = trained
    judge = train(root / "grid", tmp_path / "judge", resolve_train_config(
        "classifier", preset="seed002", flags={"n_epochs": 1, "device": "cpu", "batch_size": 8},
        model_flags={"width": 4}), progress=False)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "unveil", "experiment", "manipulation", str(root / "grid"),
                               "-o", str(tmp_path / "out"), *args], capture_output=True, text=True)

    done = run("-m", str(result.run_dir), "--judge", str(judge.run_dir), "--split", "train", "--neutral-below",
               "0.5", "--activation", "1", "-q")
    assert done.returncode == 0, done.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert table["AU"].tolist() == [f"AU{d}" for d in range(1, 10)]
    assert ((table["share"] - table["moved"]).abs() < 1e-6).all()  # activation 1: share = move
    assert (tmp_path / "out" / "grid.png").stat().st_size > 0 and "passes" in done.stdout
    for args, message in ((["-m", str(tmp_path / "nothing"), "--judge", str(judge.run_dir)], "does not exist"),
                          (["-m", str(judge.run_dir), "--judge", str(judge.run_dir)], "is no manipulator"),
                          (["-m", str(result.run_dir), "--judge", str(judge.run_dir), "--split", "nope"],
                           "No face of split 'nope'")):
        failed = run(*args)
        assert failed.returncode == 2 and message in failed.stderr and len(failed.stderr.strip().splitlines()) == 1


def test_a_frozen_au_judge_can_read_the_edits_and_never_trains(trained, tmp_path: Path) -> None:  # noqa: ANN001
    """lambda_expr: a classifier checkpoint reads G's edits against their targets; its weights stay as they were
    and outside the manipulator's checkpoint; an emotion signal is refused in one sentence."""
    from unveil.errors import UnveilError
    from unveil.train.checkpoint import read_checkpoint
    from unveil.train.config import resolve_train_config
    from unveil.train.loop import train

    root, _, _ = trained
    judge = train(root / "grid", tmp_path / "judge", resolve_train_config(
        "classifier", preset="seed002", flags={"n_epochs": 1, "device": "cpu", "batch_size": 8},
        model_flags={"width": 4}), progress=False)
    judge_file = judge.run_dir / "checkpoints" / "latest.safetensors"
    before = read_checkpoint(judge_file).tensors
    flags = {"n_epochs": 1, "n_epochs_decay": 0, "batch_size": 4, "device": "cpu"}
    config = resolve_train_config("manipulator", preset="cpu", flags=flags,
                                  model_flags={"ngf": 4, "ndf": 4, "lambda_expr": 10.0, "expr_judge": str(judge_file)})
    result = train(root / "grid", tmp_path / "em", config, progress=False)
    record = result.history[-1]
    assert record["G_expr"] > 0 and record["val_expr"] > 0
    saved = read_checkpoint(result.run_dir / "checkpoints" / "latest.safetensors")
    assert not any("judge" in name or name.startswith("net.") for name in saved.tensors)
    after = read_checkpoint(judge_file).tensors
    assert all(torch.equal(before[k], after[k]) for k in before)
    import shutil

    shutil.copy(judge_file, tmp_path / "copy.safetensors")
    for reader in (judge.run_dir, tmp_path / "copy.safetensors"):  # the judge in the loss, by any path, is refused
        failed = subprocess.run([sys.executable, "-m", "unveil", "experiment", "manipulation", str(root / "grid"),
                                 "-o", str(tmp_path / "out"), "-m", str(result.run_dir), "--judge", str(reader),
                                 "--split", "train", "--neutral-below", "0.5", "-q"], capture_output=True, text=True)
        assert failed.returncode == 2 and "in the manipulator's own loss" in failed.stderr
    assert not (tmp_path / "out" / "results.csv").exists()
    emotion = resolve_train_config("manipulator", preset="cpu", flags=flags, model_flags={
        "ngf": 4, "ndf": 4, "lambda_expr": 1.0, "expr_judge": str(judge_file), "expr_signal": "emotion"})
    with pytest.raises(UnveilError, match="reads AUs against the edit's targets"):
        train(root / "grid", tmp_path / "em2", emotion, progress=False)
