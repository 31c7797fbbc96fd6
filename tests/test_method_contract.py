"""Every registered method keeps the loop's promises: killed and resumed it ends bit for bit where an uninterrupted
run ends; a NaN loss stops it with the last good checkpoint; two gloo processes compute the gradients of one
process with the double batch; its checkpoint loads into a working restorer or analysis model."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import toy_method  # noqa: F401 - registers the README's toy method
from unveil.errors import UnveilError
from unveil.methods.registry import get_method, load_model, method_names
from unveil.restorers import FrameContext, Restorer
from unveil.train.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from unveil.train.loop import TrainConfig, train

from conftest import tiny_prepared

TESTS = Path(__file__).resolve().parent

#: Tiny options of each method; choices that make data parallelism exact (no batch norm, no dropout: their
#: statistics and random masks differ between one batch of 2 and two batches of 1).
TINY_MODELS: dict[str, dict[str, Any]] = {
    "cyclegan": {"ngf": 4, "ndf": 4, "netG": "resnet_6blocks"},
    "pix2pix": {"ngf": 4, "ndf": 4, "netG": "resnet_6blocks", "norm": "instance", "no_dropout": True},
    # every part at once: pairs drawn on the clean frames, the predicted mask, L_expr (fer judge) and the hybrid term
    "deoccluder": {"ngf": 4, "ndf": 4, "netG": "resnet_6blocks", "mask_width": 4, "pairs": "synthesized",
                   "per_image": 2, "lambda_expr": 1.0, "expr_target": "clean", "lambda_hybrid": 0.5},
    "classifier": {"width": 4, "norm": "group", "dropout": 0.0},
    "manipulator": {"ngf": 4, "ndf": 4},
    "stylegan2": {"width": 8, "style_dim": 16, "n_mlp": 2, "mbstd_group": 1, "path_regularize": 0.0,
                  "n_samples_grid": 2, "inversion_steps": 20, "inversion_warm_steps": 5},
    "segmenter": {"mask_width": 4, "per_image": 2},
    "toy": {"width": 4},
}
TINY_LOOP = dict(n_epochs=1, n_epochs_decay=1, load_size=36, crop_size=32, batch_size=2, save_latest_freq=1,
                 n_samples=2)


def tiny(method: str, **overrides: Any) -> TrainConfig:
    return TrainConfig(method=method, model=TINY_MODELS[method], **{**TINY_LOOP, **overrides})


def test_every_registered_method_has_tiny_options() -> None:
    assert set(method_names()) == set(TINY_MODELS), "add the new method's tiny options to TINY_MODELS"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_prepared(tmp_path_factory.mktemp("contract"), fraction=0.5)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run).network_state()


@pytest.mark.slow
@pytest.mark.parametrize("method", list(TINY_MODELS))
def test_sigkill_then_resume_is_bit_identical(method: str, samples: Path, tmp_path: Path) -> None:
    reference = train(samples, tmp_path / "reference", tiny(method), progress=False)
    run = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(TESTS)!r})
        import toy_method
        from test_method_contract import tiny
        from unveil.train.loop import train
        train({str(samples)!r}, {str(run)!r}, tiny({method!r}), resume=True, progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest, started = run / "checkpoints" / "latest.safetensors", time.perf_counter()
    while not latest.exists() and process.poll() is None and time.perf_counter() - started < 300:
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 1.0))  # a random moment of the training
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"training ended before it could be killed: {process.stderr.read()}"
    for checkpoint in (run / "checkpoints").glob("*.safetensors"):
        if not checkpoint.name.startswith(".tmp-"):  # a write in progress when killed; resume deletes it
            load_checkpoint(checkpoint)  # every visible checkpoint is complete
    resumed = train(samples, run, tiny(method), resume=True, progress=False)
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in h] for h in (reference.history, resumed.history)]
    assert strip[0] == strip[1]
    expected, actual = _weights(tmp_path / "reference"), _weights(run)
    assert expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)


@pytest.mark.parametrize("method", list(TINY_MODELS))
def test_a_nan_loss_stops_with_the_last_good_checkpoint(method: str, samples: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    kind = get_method(method).method
    original, calls = kind.train_step, []

    def poisoned(self, batch, step):  # noqa: ANN001, ANN202
        losses = original(self, batch, step)
        calls.append(1)
        if len(calls) == 3:  # the third batch: its loss is NaN before any optimiser sees its gradients
            first = next(iter(losses))
            losses[first] = losses[first] * float("nan")
        return losses

    monkeypatch.setattr(kind, "train_step", poisoned)
    with pytest.raises(UnveilError, match=r"became nan at epoch 1, batch 2; training stopped, the last good"):
        train(samples, tmp_path / "run", tiny(method, batch_size=1), progress=False)
    saved = read_checkpoint(tmp_path / "run")
    assert (saved.meta["epoch"], saved.meta["batch"]) == (1, 2)
    assert all(torch.isfinite(v).all() for v in saved.network_state().values() if v.is_floating_point())


_GRADIENTS = """
import os, sys
sys.path.insert(0, {tests!r})
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader
import toy_method
from test_method_contract import tiny
from unveil.train.loop import EpochSampler, Trainer

torch.set_default_dtype(torch.float64)  # exact arithmetic: float32 rounding, amplified by instance norm, is not
trainer = Trainer({samples!r}, {run!r}, tiny({method!r}, batch_size={batch}))  # what data parallelism changes
sampler = EpochSampler(len(trainer.train_set), 0, 1, trainer.rank, trainer.world)
trainer.train_set.set_epoch(1)
batch = next(iter(DataLoader(trainer.train_set, batch_size={batch}, sampler=sampler)))
trainer.step({{k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}},
             update=False)
trainer._average_gradients(frozenset(trainer.optimizers))
if trainer.rank == 0:
    save_file({{n: p.grad.contiguous() for n, p in trainer.model.named_parameters() if p.grad is not None}}, {out!r})
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", list(TINY_MODELS))
def test_two_gloo_processes_compute_the_gradients_of_one_with_the_double_batch(method: str, samples: Path,
                                                                              tmp_path: Path) -> None:
    outputs = {}
    for world, batch in ((1, 2), (2, 1)):
        script = tmp_path / f"grad{world}.py"
        outputs[world] = tmp_path / f"grad{world}.safetensors"
        script.write_text(_GRADIENTS.format(tests=str(TESTS), samples=str(samples), run=str(tmp_path / f"r{world}"),
                                            method=method, batch=batch, out=str(outputs[world])))
        command = ([sys.executable, str(script)] if world == 1 else
                   [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)])
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = load_file(str(outputs[1])), load_file(str(outputs[2]))
    assert one.keys() == two.keys() and one
    largest = max(float(g.abs().max()) for g in one.values())
    for name, grad in one.items():
        scale = float(grad.abs().max())
        if name.endswith("bias") and scale < 1e-9 * largest:
            continue  # a bias right before instance norm: zero gradient in exact arithmetic, rounding noise only
        assert float((two[name] - grad).abs().max()) <= 1e-9 * max(scale, 1e-12), name


@pytest.mark.parametrize("method", list(TINY_MODELS))
def test_checkpoint_loads_into_a_working_model(method: str, samples: Path, tmp_path: Path) -> None:
    train(samples, tmp_path / "run", tiny(method, n_epochs=1, n_epochs_decay=0), progress=False)
    spec = get_method(method)
    model = load_model(tmp_path / "run", device="cpu")
    rng = np.random.default_rng(0)
    if spec.produces == "restorer":
        assert isinstance(model, Restorer) and model.method == method
        crops = [rng.integers(0, 256, (model.size, model.size, 3), dtype=np.uint8) for _ in range(2)]
        out = model(crops, [FrameContext(i) for i in range(2)])
        assert [o.shape for o in out] == [(model.size, model.size, 3)] * 2 and out[0].dtype == np.uint8
        again = load_model(tmp_path / "run", device="cpu")(crops, [FrameContext(i) for i in range(2)])
        assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))  # deterministic
        assert method in model.describe()
    elif spec.produces == "manipulator":
        crops = [rng.integers(0, 256, (model.size, model.size, 3), dtype=np.uint8) for _ in range(2)]
        changes = np.stack([model.condition({model.aus[0]: 0.5})] * 2)
        out = model(crops, changes)
        assert [o.shape for o in out] == [(model.size, model.size, 3)] * 2 and out[0].dtype == np.uint8
        crops = [crops, changes]  # what the changed checkpoint below is called with
    elif spec.produces == "occluder masks":
        crops = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]  # any size
        out = model.probabilities_of(crops)
        assert [o.shape for o in out] == [(40, 56)] * 2 and all(((o >= 0) & (o <= 1)).all() for o in out)
        assert np.array_equal(model(crops)[0], (out[0] > 0.5).astype(np.float32))
    else:
        crops = [rng.integers(0, 256, (model.load_size, model.load_size, 3), dtype=np.uint8) for _ in range(2)]
        out = model(crops)
        assert out.shape == (2, len(model.aus) + len(model.emotions)) and np.isfinite(out).all()
    # the weights in the file are what the model computes with: other weights, another output
    saved = read_checkpoint(tmp_path / "run")
    changed = {k: (v + 0.5 if k.startswith("net/") and v.is_floating_point() else v) for k, v in saved.tensors.items()}
    save_checkpoint(tmp_path / "changed.safetensors", changed, saved.meta)
    changed_model = load_model(tmp_path / "changed.safetensors", device="cpu")
    other = (changed_model(*crops) if spec.produces == "manipulator" else changed_model.probabilities_of(crops)
             if spec.produces == "occluder masks" else changed_model(crops))
    assert not all(np.array_equal(a, b) for a, b in zip(out, other, strict=True))
