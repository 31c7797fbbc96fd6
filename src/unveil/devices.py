"""Where models run: one choice (``auto``, ``cpu``, ``cuda``) for training, restoring and analysing."""

from __future__ import annotations

import torch

from unveil.errors import UnveilError


def select_device(choice: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA device ``local_rank`` when PyTorch sees one, else the CPU; ``cuda``: the same, but an error
    without one; ``cpu``: the CPU. Under torchrun each process takes the GPU of its local rank."""
    if choice not in ("auto", "cpu", "cuda"):
        raise UnveilError(f"Unknown device '{choice}'; choose auto, cpu or cuda.")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UnveilError("--device cuda was asked for, but PyTorch sees no CUDA device here.")
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
