"""Checkpoints as safetensors: weights, optimiser and scheduler states, image pools and every RNG, enough to
resume a run exactly. Nothing is ever unpickled: a file that is not safetensors is refused.

Nested states are flattened into named tensors (``optim/G/state/0/exp_avg``) plus JSON metadata for the
non-tensor parts (param groups, epochs, the config). Files are written atomically.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from unveil.errors import UnveilError
from unveil.files import atomic_path

_META_KEY = "unveil"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-able ``metadata`` to ``path`` atomically."""
    target = Path(path)
    flat = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    meta = {_META_KEY: json.dumps({"format": FORMAT_VERSION, **metadata})}
    with atomic_path(target) as tmp:
        save_file(flat, str(tmp), metadata=meta)
    return target


def load_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse anything else without executing it."""
    file = Path(path)
    if not file.is_file():
        raise UnveilError(f"The checkpoint {file} does not exist.")
    with file.open("rb") as handle:
        head = handle.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header; its first byte may be 0x80 too,
    # so a file is called a pickle only when it is not shaped like safetensors
    shaped = len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= file.stat().st_size - 8
    if not shaped and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise UnveilError(f"{file} is a pickle (or a zip of pickles); unveil only loads safetensors checkpoints "
                          "and never unpickles files, which could run code.")
    try:
        tensors = load_file(str(file), device=str(device))
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UnveilError(f"{file} is not a readable safetensors checkpoint ({exc}).") from None
    if raw is None:
        raise UnveilError(f"{file} is a safetensors file but not an unveil checkpoint (no unveil metadata).")
    metadata = json.loads(raw)
    if metadata.get("format") != FORMAT_VERSION:
        raise UnveilError(f"{file} has checkpoint format {metadata.get('format')}; this unveil reads {FORMAT_VERSION}.")
    return tensors, metadata


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk: its tensors, its metadata (method, config, outputs, training position)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.meta.get("method"))

    @property
    def config(self) -> dict[str, Any]:
        """The run's TrainConfig as JSON (the method's options under ``model``)."""
        return dict(self.meta.get("config") or {})

    @property
    def outputs(self) -> dict[str, Any]:
        """What the method recorded for inference beyond its config (``Method.describe``)."""
        return dict(self.meta.get("outputs") or {})

    def network_state(self) -> dict[str, torch.Tensor]:
        """The state dict of the method's networks (the ``net/`` tensors)."""
        return {k[4:]: v for k, v in self.tensors.items() if k.startswith("net/")}


def read_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """A checkpoint file, or a run folder's ``checkpoints/latest.safetensors``; see :func:`load_checkpoint`."""
    file = Path(path)
    if file.is_dir():
        file = file / "checkpoints" / "latest.safetensors"
    tensors, meta = load_checkpoint(file, device)
    return Checkpoint(file, tensors, meta)


def flatten_state(prefix: str, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state dict into ``tensors`` under ``prefix/...``; return the rest
    (JSON-able, tensors replaced by ``{"__tensor__": name}``)."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state
        return {"__tensor__": prefix}
    if isinstance(state, dict):
        return {"__dict__": [[_key(k), flatten_state(f"{prefix}/{k}", v, tensors)] for k, v in state.items()]}
    if isinstance(state, list | tuple):
        return [flatten_state(f"{prefix}/{i}", v, tensors) for i, v in enumerate(state)]
    if isinstance(state, float | int | str | bool) or state is None:
        return state
    raise UnveilError(f"Cannot store a {type(state).__name__} at {prefix} in a checkpoint.")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {_unkey(k): unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def _key(key: Any) -> Any:
    return {"int": key} if isinstance(key, int) else key


def _unkey(key: Any) -> Any:
    return key["int"] if isinstance(key, dict) else key


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The torch (CPU and CUDA), NumPy and Python random states."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, py_gauss = random.getstate()
    tensors["rng/python"] = torch.tensor(internal, dtype=torch.int64)
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [version, py_gauss]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(tensors["rng/torch"].to(torch.uint8).cpu())
    cuda = sorted(k for k in tensors if k.startswith("rng/cuda/"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8).cpu() for k in cuda])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_gauss = meta["python"]
    random.setstate((version, tuple(int(v) for v in tensors["rng/python"].tolist()), py_gauss))
