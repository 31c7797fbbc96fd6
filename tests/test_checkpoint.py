"""Checkpoints: exact resume of weights, optimiser and RNG; pickles are refused without being run."""

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from unveil.errors import UnveilError
from unveil.train.checkpoint import (flatten_state, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                                     unflatten_state)


def _train(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 4)
        opt.zero_grad()
        loss = (net(x) - x.sum(1, keepdim=True)).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_resume_continues_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    _train(net, opt, 5)
    tensors = {f"model/{k}": v for k, v in net.state_dict().items()}
    skeleton = flatten_state("optim", opt.state_dict(), tensors)
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    save_checkpoint(tmp_path / "c.safetensors", tensors, {"optim": skeleton, "rng": rng_meta, "epoch": 5})
    uninterrupted = _train(net, opt, 5)

    torch.manual_seed(123)
    fresh = torch.nn.Linear(4, 1)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.5)
    loaded, meta = load_checkpoint(tmp_path / "c.safetensors")
    fresh.load_state_dict({k.removeprefix("model/"): v for k, v in loaded.items() if k.startswith("model/")})
    fresh_opt.load_state_dict(unflatten_state(meta["optim"], loaded))
    set_rng_state(loaded, meta["rng"])
    assert meta["epoch"] == 5 and fresh_opt.param_groups[0]["lr"] == 0.01
    assert _train(fresh, fresh_opt, 5) == uninterrupted


def test_python_and_numpy_generators_are_restored() -> None:
    tensors, meta = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(tensors, meta)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class Payload:
    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path("/tmp/unveil-pwned").touch, ())


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_a_pickle_with_a_payload_is_refused_and_never_run(tmp_path: Path, writer: str) -> None:
    marker = Path("/tmp/unveil-pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "model.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"weights": Payload()}))
    else:
        torch.save({"weights": Payload()}, path)
    with pytest.raises(UnveilError, match="never unpickles"):
        load_checkpoint(path)
    assert not marker.exists()


def test_other_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(UnveilError, match="not a readable safetensors checkpoint"):
        load_checkpoint(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(UnveilError, match="not an unveil checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")


def test_a_header_length_whose_first_byte_is_0x80_is_still_read(tmp_path: Path) -> None:
    """A safetensors header length is little-endian: 128, 384, ... bytes start with 0x80 like a pickle does."""
    for padding in range(300):  # metadata lengths that move the header length across several multiples of 256
        path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(1)}, {"pad": "x" * padding})
        if path.read_bytes()[:1] == b"\x80":
            _, meta = load_checkpoint(path)
            assert meta["pad"] == "x" * padding
            return
    pytest.fail("no metadata length gave a header starting with 0x80")
