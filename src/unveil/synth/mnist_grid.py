"""Seed 002's MNIST-grid toy set: 96x96 images of a 3x3 grid in which digit d (1-9) stands for "action unit" d.

Algorithm 1 of the seed: each digit is present with probability 0.2, at its own cell; then, when 2 is present and 3
is not, 3 is added with probability 0.7, and vice versa (a built-in correlation, as AU6 with AU12). The label is the
9-vector of presences. Noise levels add Gaussian noise to every pixel (pixels in [0, 1]): medium mu 0.5, sigma 1;
hard mu 1, sigma 5. The uncorrelated test set shows one digit per image, 1,000 per digit, from MNIST's test digits.

A set is written as a labelled samples folder that ``unveil train classifier`` reads: the noise-free grids as PNGs,
``samples.parquet`` (``AU1``-``AU9`` = the digits, empty on unlabelled rows, whose truth stays in ``truth_AU*``
for diagnostics; ``split`` train / val / unlabelled / test) and, per row, the
noise's mean, sigma, seed and clipping, so every image has one fixed noise draw that any loader reproduces
(:func:`unveil.data.datasets.pixel_noise`), without storing 32-bit noise images.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from unveil.config import Config
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.progress import progress_bar

SIZE, CELL = 96, 32
DIGITS = tuple(range(1, 10))
LABELS = tuple(f"AU{d}" for d in DIGITS)  # digit d is "AU d" (the seed's framing), so the AU tools read them
NOISE_LEVELS: dict[str, tuple[float, float]] = {"none": (0.0, 0.0), "medium": (0.5, 1.0), "hard": (1.0, 5.0)}
MNIST_ENV = "UNVEIL_MNIST"
MNIST_CACHE = Path.home() / ".cache" / "unveil" / "mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"  # the same four arrays


class GridConfig(Config):
    """Options of ``unveil synth mnist-grid``."""

    train: int = Field(default=3000, ge=1, description="Labelled grids to train on (the seed: 3,000 or 30,000).")
    val: int = Field(default=300, ge=0, description="Labelled grids for early stopping.")
    unlabelled: int = Field(default=9000, ge=0, description="Grids whose labels are withheld (pseudo-labelling).")
    test_per_digit: int = Field(default=1000, ge=1, description="Uncorrelated test images per digit.")
    noise: Literal["none", "medium", "hard"] = "medium"
    clip: bool = Field(default=False, description="Clip noisy pixels to [0, 1], as an 8-bit image file would "
                                                  "(the seed does not say; off keeps the noise as drawn).")
    p_active: float = Field(default=0.2, ge=0, le=1, description="Probability that a digit is present.")
    p_follow: float = Field(default=0.7, ge=0, le=1, description="Probability that 3 joins 2 (and 2 joins 3).")
    seed: int = Field(default=0, ge=0)
    mnist: str | None = Field(default=None, description="mnist.npz (x_train, y_train, x_test, y_test); default: "
                                                        f"${MNIST_ENV}, then {MNIST_CACHE}, then a download.")


def find_mnist(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$UNVEIL_MNIST``, else the cache (downloaded there once when online); one sentence when none."""
    if path is not None:
        if not Path(path).is_file():
            raise UnveilError(f"The MNIST file {path} does not exist; give mnist.npz (x_train, y_train, x_test, "
                              "y_test).")
        return Path(path)
    if os.environ.get(MNIST_ENV):
        return find_mnist(os.environ[MNIST_ENV])
    if not MNIST_CACHE.is_file():
        try:
            with atomic_path(MNIST_CACHE) as tmp, urllib.request.urlopen(MNIST_URL, timeout=20) as response:
                tmp.write_bytes(response.read())
        except OSError:
            raise UnveilError(f"No MNIST file: give --mnist PATH/mnist.npz, set {MNIST_ENV}, or put it at "
                              f"{MNIST_CACHE} (the download from {MNIST_URL} failed).") from None
    return MNIST_CACHE


def load_mnist(path: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The four MNIST arrays (28x28 uint8 digits, uint8 labels)."""
    file = find_mnist(path)
    try:
        with np.load(file) as data:
            arrays = {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (KeyError, ValueError, OSError) as error:
        raise UnveilError(f"{file} is not an MNIST npz with x_train, y_train, x_test and y_test ({error}).") from None
    if arrays["x_train"].shape[1:] != (28, 28):
        raise UnveilError(f"{file} holds {arrays['x_train'].shape[1:]} images, not MNIST's 28x28.")
    return arrays


def grid_labels(n: int, rng: np.random.Generator, p_active: float = 0.2, p_follow: float = 0.7) -> np.ndarray:
    """(n, 9) presences by Algorithm 1: each digit with ``p_active``; then 3 joins a lone 2 (or 2 a lone 3) with
    ``p_follow``."""
    labels = (rng.random((n, 9)) <= p_active).astype(np.uint8)
    follow = rng.random(n) < p_follow
    two, three = labels[:, 1].copy(), labels[:, 2].copy()
    labels[:, 2] |= (two & (1 - three) & follow).astype(np.uint8)
    labels[:, 1] |= (three & (1 - two) & follow).astype(np.uint8)
    return labels


def one_digit_labels(per_digit: int) -> np.ndarray:
    """(9 * per_digit, 9): the uncorrelated test set's labels, one digit each, digit by digit."""
    return np.repeat(np.eye(9, dtype=np.uint8), per_digit, axis=0)


def draw_grids(labels: np.ndarray, digits: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 96, 96) uint8 grids: for each present digit d, a random MNIST image of class d, centred in cell d
    (row-major, 32 px cells)."""
    pools = {d: np.flatnonzero(classes == d) for d in DIGITS}
    out = np.zeros((len(labels), SIZE, SIZE), np.uint8)
    pad = (CELL - 28) // 2
    for d in DIGITS:
        rows = np.flatnonzero(labels[:, d - 1])
        picks = digits[rng.choice(pools[d], size=len(rows))]
        y, x = (d - 1) // 3 * CELL + pad, (d - 1) % 3 * CELL + pad
        out[rows, y:y + 28, x:x + 28] = picks
    return out


def write_grid_set(out: str | os.PathLike[str], config: GridConfig | None = None, progress: bool = True) -> Path:
    """Write the labelled samples folder of one grid set (see the module doc); returns its ``samples.parquet``.
    Training, validation and unlabelled grids take MNIST's training digits, the test set its test digits."""
    config = config or GridConfig()
    folder = Path(out)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "grid.yaml").is_file():
        raise UnveilError(f"The output folder {folder} is not empty and holds no grid set; choose another.")
    mnist = load_mnist(config.mnist)
    for old in ("samples.parquet", "grid.yaml"):  # an earlier set: gone first, so a half-written one never looks done
        (folder / old).unlink(missing_ok=True)
    if (folder / "images").is_dir():
        shutil.rmtree(folder / "images")
    ensure_dir(folder)
    rng = np.random.default_rng(config.seed)
    parts = {"train": config.train, "val": config.val, "unlabelled": config.unlabelled}
    labels = {k: grid_labels(n, rng, config.p_active, config.p_follow) for k, n in parts.items() if n}
    images = {k: draw_grids(v, mnist["x_train"], mnist["y_train"], rng) for k, v in labels.items()}
    labels["test"] = one_digit_labels(config.test_per_digit)
    images["test"] = draw_grids(labels["test"], mnist["x_test"], mnist["y_test"], rng)
    mean, sigma = NOISE_LEVELS[config.noise]
    rows = []
    ensure_dir(folder / "images")
    with progress_bar(sum(len(v) for v in images.values()), f"mnist-grid {folder.name}", progress) as advance:
        for split, grids in images.items():
            for i, grid in enumerate(grids):
                name = f"images/{split}_{i:06d}.png"
                cv2.imwrite(str(folder / name), grid)
                rows.append({"image": name, "split": split, "subject": "grid", "condition": "normal",
                             "task": "grid", "noise_mean": mean, "noise_std": sigma, "noise_clip": config.clip,
                             "noise_seed": config.seed * 10_000_000 + len(rows),
                             **{c: (np.nan if split == "unlabelled" else float(v))
                                for c, v in zip(LABELS, labels[split][i], strict=True)},
                             **{f"truth_{c}": float(v) for c, v in zip(LABELS, labels[split][i], strict=True)}})
                advance(1)
    table = pd.DataFrame(rows)
    with atomic_path(folder / "samples.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    write_text_atomic(folder / "grid.yaml", config.to_yaml())
    return folder / "samples.parquet"
