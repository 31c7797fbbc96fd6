"""The training loop with a tiny CycleGAN: the time limit, subjects, several processes' clocks, a method's choice of
optimisers per step. (What every method must keep, resume, NaN stop, data parallelism, is test_method_contract.)"""

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from unveil.config import Config
from unveil.errors import UnveilError
from unveil.methods.cyclegan import CycleGAN, CycleGANConfig, set_requires_grad
from unveil.synth import generate
from unveil.train.checkpoint import load_checkpoint
from unveil.train.loop import EpochSampler, TrainConfig, train, train_per_subject
from unveil.train.method import MethodBase

from conftest import tiny_config, tiny_prepared

TINY = dict(model=CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks"), n_epochs=2, n_epochs_decay=1,
            load_size=36, crop_size=32, batch_size=2, save_latest_freq=1, n_samples=2)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_prepared(tmp_path_factory.mktemp("tiny"), fraction=0.5)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run / "checkpoints" / "latest.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("net/")}


def _script(samples: Path, run: Path, extra: str = "") -> str:
    return textwrap.dedent(f"""
        from unveil.methods.cyclegan import CycleGAN, CycleGANConfig, set_requires_grad
        from unveil.train.loop import TrainConfig, train
        config = TrainConfig(model=CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks"{extra}), n_epochs=2,
                             n_epochs_decay=1, load_size=36, crop_size=32, batch_size=2, save_latest_freq=1,
                             n_samples=2)
        train({str(samples)!r}, {str(run)!r}, config, resume=True, progress=False)
    """)


@pytest.mark.slow
def test_sigkill_and_resume_end_where_an_uninterrupted_run_ends(samples: Path, tmp_path: Path) -> None:
    reference = train(samples, tmp_path / "reference", TrainConfig(**TINY), progress=False)
    assert [int(h["epoch"]) for h in reference.history] == [1, 2, 3]

    run = tmp_path / "killed"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", _script(samples, run)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    latest = run / "checkpoints" / "latest.safetensors"
    while not latest.exists() and process.poll() is None and time.perf_counter() - started < 300:
        time.sleep(0.05)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 2.0))  # a random moment of the training
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    for checkpoint in (run / "checkpoints").glob("*.safetensors"):
        if not checkpoint.name.startswith(".tmp-"):
            load_checkpoint(checkpoint)  # every visible checkpoint is complete
    resumed = train(samples, run, TrainConfig(**TINY), resume=True, progress=False)
    assert [int(h["epoch"]) for h in resumed.history] == [1, 2, 3]
    for before, after in zip(reference.history, resumed.history, strict=True):  # the killed epoch's means too
        assert {k: v for k, v in before.items() if k != "seconds"} == {k: v for k, v in after.items() if k != "seconds"}
    expected, actual = _weights(tmp_path / "reference"), _weights(run)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_time_limit_stops_mid_epoch_and_resume_ends_where_an_uninterrupted_run_ends(samples: Path, tmp_path: Path,
                                                                                   accumulate: int) -> None:
    options = {**TINY, "accumulate": accumulate, "n_epochs": 1, "n_epochs_decay": 0}  # one epoch: stop inside it
    reference = train(samples, tmp_path / "reference", TrainConfig(**options), progress=False)
    run = tmp_path / "limited"
    stopped = train(samples, run, TrainConfig(**options, time_limit=1e-9), progress=False)  # out of time at once
    assert not stopped.complete and stopped.epochs == 0 and stopped.history == []
    _, meta = load_checkpoint(run / "checkpoints" / "latest.safetensors")
    assert (meta["epoch"], meta["batch"]) == (1, accumulate)  # stopped after the first optimiser step
    resumed = train(samples, run, TrainConfig(**options), resume=True, progress=False)
    assert resumed.complete and resumed.epochs == 1
    for before, after in zip(reference.history, resumed.history, strict=True):
        assert {k: v for k, v in before.items() if k != "seconds"} == {k: v for k, v in after.items() if k != "seconds"}
    expected, actual = _weights(tmp_path / "reference"), _weights(run)
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_time_limit_covers_all_subjects_and_later_ones_are_not_started(samples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    shutil.copytree(samples, folder)
    table = pd.read_parquet(folder / "samples.parquet")
    pd.concat([table, table.assign(subject="S99")]).to_parquet(folder / "samples.parquet")
    results = train_per_subject(folder, tmp_path / "runs", TrainConfig(**TINY, time_limit=1e-9), progress=False)
    assert list(results) == [table["subject"].iloc[0]] and not results[table["subject"].iloc[0]].complete
    assert not (tmp_path / "runs" / "S99").exists()


class _Stepper(MethodBase):
    """Two scalar weights with their own optimisers: ``a`` steps every iteration, ``b`` every third."""

    name, monitor = "stepper", "loss"

    def __init__(self, config, table, root, seed):  # noqa: ANN001
        self.module = torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.ones(1)),
                                              "b": torch.nn.Parameter(torch.ones(1))})
        self.train_set = [{"x": torch.zeros(1)} for _ in range(6)]
        self.seen: list[frozenset[str]] = []

    def optimizers(self):  # noqa: ANN201
        return {name: torch.optim.SGD([p], lr=0.1) for name, p in self.module.items()}

    def stepping(self, iteration: int) -> set[str]:
        return {"a", "b"} if iteration % 3 == 0 else {"a"}

    def train_step(self, batch, step):  # noqa: ANN001, ANN201
        self.seen.append(step.active)
        loss = (self.module["a"] ** 2 + self.module["b"] ** 2).sum()  # both get gradients every batch
        step.backward(loss)
        return {"loss": loss}


@pytest.mark.parametrize("accumulate", [1, 2])
def test_a_method_chooses_which_optimisers_step(samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                accumulate: int) -> None:
    from unveil.methods import registry
    from unveil.train.loop import Trainer

    spec = registry.MethodSpec(name="stepper", summary="", config=Config, method=_Stepper,
                               load=lambda saved, device: None, produces="restorer", data="paired")
    monkeypatch.setitem(registry._REGISTRY, "stepper", spec)
    trainer = Trainer(samples, tmp_path / "run", TrainConfig(method="stepper", n_epochs=1, n_epochs_decay=0,
                                                            accumulate=accumulate, lr_policy="step"))
    trainer.fit(progress=False)
    updates = 6 // accumulate
    a, b = (float(trainer.model[k].detach()) for k in "ab")
    # a: 0.8 per update (grad 2a, lr 0.1). b: 0.8 only at updates 0, 3, ...; had its idle gradients carried over,
    # a step would take 3 x 2b and overshoot.
    assert a == pytest.approx(0.8 ** updates) and b == pytest.approx(0.8 ** len(range(0, updates, 3)))
    assert trainer.updates == updates
    assert trainer.method.seen == [frozenset("ab") if (k // accumulate) % 3 == 0 else frozenset("a")
                                   for k in range(6)]


def test_all_processes_stop_at_rank_zeros_time_limit(samples: Path, tmp_path: Path) -> None:
    """Rank 1's clock never runs out here; it must still stop with rank 0 (else it would wait for rank 0's
    gradients for ever)."""
    script = tmp_path / "ddp_limit.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        if os.environ["RANK"] == "1":
            time.monotonic = lambda: 0.0
        from unveil.methods.cyclegan import CycleGANConfig
        from unveil.train.loop import TrainConfig, train
        config = TrainConfig(model=CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks"), n_epochs=1,
                             n_epochs_decay=0, load_size=36, crop_size=32, batch_size=1, time_limit=1e-9)
        result = train({str(samples)!r}, {str(tmp_path / "run")!r}, config, progress=False)
        os.write(1, f"rank {{os.environ['RANK']}} complete {{result.complete}}\\n".encode())  # one write: no interleaving
    """))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rank 0 complete False" in result.stdout and "rank 1 complete False" in result.stdout
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.safetensors")
    assert (meta["epoch"], meta["batch"]) == (1, 1)


def test_half_batch_gradients_average_to_the_full_batch_gradient() -> None:
    """What the loop does across processes (average the gradients of the halves) equals one process with
    the whole batch, weight by weight, to float precision."""
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks", pool_size=0))
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1

    def gradients(batch: dict) -> dict:
        model.zero_grad(set_to_none=True)
        set_requires_grad(model.discriminators, False)
        total, _, generated = model.generator_losses(batch)
        total.backward()
        set_requires_grad(model.discriminators, True)
        losses = model.discriminator_losses(batch, generated)
        (losses["D_A"] + losses["D_B"]).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    whole = gradients({"A": a, "B": b})
    halves = [gradients({"A": a[i:i + 1], "B": b[i:i + 1]}) for i in range(2)]
    for name, grad in whole.items():
        if name.endswith("bias"):
            continue  # biases right before instance norm have zero gradient in exact arithmetic: noise only
        averaged = (halves[0][name] + halves[1][name]) / 2
        assert (averaged - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def test_sampler_splits_one_permutation_between_processes() -> None:
    whole = EpochSampler(10, seed=3, epoch=2).indices
    parts = [EpochSampler(10, seed=3, epoch=2, rank=r, world=2).indices for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(whole)
    assert [whole[2 * i + r] for i in range(5) for r in range(2)] == [p[i] for i in range(5) for p in parts]
    assert EpochSampler(10, 3, 2, skip=4).indices == whole[4:]
    assert EpochSampler(10, 3, 3).indices != whole


def test_nan_loss_stops_with_a_clear_message(samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unveil.methods import cyclegan

    original = cyclegan.CycleGAN.generator_losses

    def poisoned(self, batch):  # noqa: ANN001, ANN202
        total, parts, generated = original(self, batch)
        parts["cycle_A"] = parts["cycle_A"] * float("nan")
        return total * float("nan"), parts, generated

    monkeypatch.setattr(cyclegan.CycleGAN, "generator_losses", poisoned)
    with pytest.raises(UnveilError, match="The loss cycle_A became nan at epoch 1, batch 0"):
        train(samples, tmp_path / "nan", TrainConfig(**TINY), progress=False)


def test_cli_trains_from_a_manifest(tmp_path: Path) -> None:
    from test_cli import unveil

    manifest = generate(tiny_config(size=64, format="png"), tmp_path / "bench", workers=1, progress=False)
    (tmp_path / "prep.yaml").write_text("crop: none\nfraction: 0.3\nload_size: 36\n")
    (tmp_path / "train.yaml").write_text("model: {ngf: 4, ndf: 4, netG: resnet_6blocks}\nn_epochs: 1\n"
                                         "n_epochs_decay: 0\nload_size: 36\ncrop_size: 32\nbatch_size: 4\n")
    result = unveil("train", "cyclegan", "--manifest", str(tmp_path / "bench" / "manifest.yaml"), "--run",
                    str(tmp_path / "run"), "--prepare-config", str(tmp_path / "prep.yaml"), "--config",
                    str(tmp_path / "train.yaml"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "S01: 1 of 1 epochs" in result.stdout
    assert (tmp_path / "run" / "prepared" / "samples.parquet").is_file()
    assert (tmp_path / "run" / "S01" / "checkpoints" / "epoch_001.safetensors").is_file()
    assert (tmp_path / "run" / "S01" / "samples" / "epoch_001.png").is_file()

    args = ("train", "cyclegan", "--samples", str(tmp_path / "run" / "prepared"), "--run", str(tmp_path / "limited"),
            "--config", str(tmp_path / "train.yaml"), "--quiet")
    unknown = unveil(*args, "--subjects", "S01,S99")
    assert unknown.returncode == 2 and "samples.parquet has no subject S99; it has S01." in unknown.stderr
    limited = unveil(*args, "--subjects", "S01", "--time-limit", "1e-9")
    assert limited.returncode == 0, limited.stderr
    assert "S01: 0 of 1 epochs" in limited.stdout and "stopped by the time limit" in limited.stdout
    assert "--resume continues it" in limited.stdout
    continued = unveil(*args, "--resume")
    assert continued.returncode == 0 and "S01: 1 of 1 epochs" in continued.stdout
    assert "time limit" not in continued.stdout
    del manifest
    missing = unveil("train", "cyclegan", "--run", str(tmp_path / "r2"))
    assert missing.returncode == 2 and "Give --samples" in missing.stderr


def test_a_time_limited_bar_shows_the_time_left_not_an_estimate_of_days() -> None:
    from rich.progress import Progress

    from unveil.progress import DeadlineColumn

    with Progress(disable=True) as bars:
        task = bars.add_task("train", total=1_000_000)  # 1 step per 0.1 s: about 28 hours to go
        bars.advance(task, 1)
        time.sleep(0.1)
        bars.advance(task, 1)
        soon = DeadlineColumn(time.monotonic() + 125).render(bars.tasks[0]).plain
        late = DeadlineColumn(time.monotonic() + 10**7).render(bars.tasks[0]).plain
    assert soon in ("0:02:05 (time limit)", "0:02:04 (time limit)")
    assert "time limit" not in late and late.count(":") == 2
