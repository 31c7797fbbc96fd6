"""Speed of the exemplar fill's nearest-neighbour search (unveil.methods.exemplars) against the plain way, run here
on the same bank and crops: for every crop, the masked squared difference to every bank crop, one at a time, as a
numpy loop would. Both must pick the same neighbours (checked); the fill's search does all pairs with three matrix
products.

    python benchmarks/exemplar_speed.py [--bank 1000] [--side 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from unveil.methods.exemplars import ExemplarFill


def plain_nearest(bank: np.ndarray, crops: np.ndarray, visible: np.ndarray, k: int) -> np.ndarray:
    """The k nearest bank crops of every crop by the mean squared difference over its visible pixels."""
    out = []
    for crop, seen in zip(crops, visible, strict=True):
        distance = np.array([((b - crop) ** 2)[:, seen].mean() for b in bank])
        out.append(np.argsort(distance, kind="stable")[:k])
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=int, default=1000, help="Crops in the bank (the option's default limit).")
    parser.add_argument("--side", type=int, default=64, help="Crop side (retrieval runs at 64 px at most).")
    parser.add_argument("--batch", type=int, default=16, help="Crops per call (restore's batch).")
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    bank = torch.from_numpy(rng.integers(0, 256, (args.bank, 3, args.side, args.side), dtype=np.uint8))
    crops = torch.rand(args.batch, 3, args.side, args.side, generator=torch.Generator().manual_seed(1)) * 2 - 1
    masks = (torch.rand(args.batch, 1, args.side, args.side, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    fill = ExemplarFill(bank, args.k)
    fill.neighbours(crops[:1], masks[:1])  # the bank's float copy is made once
    start = time.perf_counter()
    index = fill.neighbours(crops, masks)[0][:, 0]  # the whole-face region
    ours = time.perf_counter() - start
    start = time.perf_counter()
    plain = plain_nearest(bank.numpy().astype(np.float64) / 255, (crops.numpy() + 1) / 2, masks[:, 0].numpy() < 0.5,
                          args.k)
    reference = time.perf_counter() - start
    same = float((np.sort(index.numpy(), 1) == np.sort(plain, 1)).mean())
    print(f"bank {args.bank} crops of {args.side} px, {args.batch} crops: exemplar fill search {ours * 1000:.1f} ms "
          f"({ours / args.batch * 1000:.2f} ms a crop), plain loop {reference:.2f} s; speed-up x{reference / ours:.0f};"
          f" same neighbours {same:.1%}")


if __name__ == "__main__":
    main()
