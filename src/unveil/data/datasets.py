"""Training datasets over ``samples.parquet``: unpaired (two domains, e.g. occluded / normal, for CycleGAN),
paired (occluded, clean, mask: pix2pix and the de-occluder) and labelled (image + AU vector and emotion).

Transforms follow the reference CycleGAN code (``preprocess``, by default: resize to ``load_size``, random crop
to ``crop_size``; random horizontal flip; scale to [-1, 1]); every image of one sample gets the same crop and
flip. Each item's randomness is a function of (seed, epoch, index) only, so runs repeat exactly with any number
of loader workers, on one GPU or several.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from unveil.errors import UnveilError
from unveil.facs import au_columns


#: The reference CycleGAN code's ``--preprocess`` choices.
Preprocess = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]


@dataclass(frozen=True)
class Augment:
    """The reference CycleGAN preprocessing for a list of aligned images (same resize, crop and flip for all).

    ``preprocess`` as the reference's ``--preprocess``: ``resize_and_crop`` (to ``load_size`` square, random
    ``crop_size`` crop), ``crop`` (random crop, no resize), ``scale_width`` (width to ``load_size``, height kept
    in proportion but at least ``crop_size``), ``scale_width_and_crop`` (that, then a random crop), ``none``
    (sides rounded to multiples of 4). Random horizontal flip unless ``flip`` is False. ``train`` False (validation,
    inference): crops are centred and nothing is flipped.
    """

    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    train: bool = True
    preprocess: Preprocess = "resize_and_crop"

    def __post_init__(self) -> None:
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise UnveilError(f"crop_size ({self.crop_size}) cannot exceed load_size ({self.load_size}).")

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of an image of that size after the resize step."""
        if self.preprocess == "resize_and_crop":
            return self.load_size, self.load_size
        if self.preprocess in ("scale_width", "scale_width_and_crop"):
            if width == self.load_size and height >= self.crop_size:
                return height, width
            return int(max(self.load_size * height / width, self.crop_size)), self.load_size
        if self.preprocess == "none":
            return max(4, int(round(height / 4) * 4)), max(4, int(round(width / 4) * 4))
        return height, width  # crop

    def __call__(self, images: Sequence[np.ndarray], rng: random.Random) -> list[np.ndarray]:
        height, width = self.resized(*images[0].shape[:2])
        out = [im if im.shape[:2] == (height, width) else
               cv2.resize(im, (width, height), interpolation=cv2.INTER_NEAREST if im.ndim == 2 else cv2.INTER_CUBIC)
               for im in images]
        if self.preprocess.endswith("crop"):
            crop = self.crop_size
            if height < crop or width < crop:
                raise UnveilError(f"preprocess {self.preprocess}: the images are {width}x{height} after resizing, "
                                  f"smaller than crop_size {crop}.")
            if self.train:
                x, y = rng.randint(0, width - crop), rng.randint(0, height - crop)
            else:
                x, y = (width - crop) // 2, (height - crop) // 2
            out = [im[y:y + crop, x:x + crop] for im in out]
        flip = self.train and self.flip and rng.random() < 0.5
        return [np.ascontiguousarray(im[:, ::-1]) for im in out] if flip else out


def restore_side(image: Path, preprocess: Preprocess, crop_size: int) -> int:
    """The side of the face crop a generator trained with ``preprocess`` and ``crop_size`` should be fed at restore
    time: ``crop_size`` for the resizing choices (the reference tests with load_size = crop_size), else the
    training crops' own side (``image`` is one), rounded to a multiple of 4 as two down-samplings need."""
    if preprocess not in ("crop", "none"):
        return int(crop_size)
    side = load_image(image).shape[0]
    return Augment(preprocess="none").resized(side, side)[0]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float (3, H, W) in [-1, 1]; a gray mask (H, W) -> float (1, H, W) in {0, 1}."""
    if image.ndim == 2:
        return torch.from_numpy((image > 127).astype(np.float32))[None]
    return torch.from_numpy(image.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0)


def load_image(path: Path, gray: bool = False) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise UnveilError(f"Cannot read the image {path}.")
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_samples(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, Path]:
    """Read ``samples.parquet`` (written by ``unveil prepare``); returns the table and its folder."""
    file = Path(path)
    if file.is_dir():
        file = file / "samples.parquet"
    if not file.is_file():
        raise UnveilError(f"{file} does not exist; run 'unveil prepare' first.")
    return pd.read_parquet(file), file.parent


def select(samples: pd.DataFrame, criteria: Mapping[str, object] | None = None, split: str | None = None,
           limit: int | None = None) -> pd.DataFrame:
    """Rows whose columns equal every criterion (a list means any of its values), in the given split; the first
    ``limit`` of them when given (the reference code's ``max_dataset_size``)."""
    rows = samples
    if split is not None:
        rows = rows[rows["split"] == split]
    for column, value in (criteria or {}).items():
        if column not in rows.columns:
            raise UnveilError(f"samples.parquet has no column '{column}'.")
        rows = rows[rows[column].isin(value if isinstance(value, list | tuple | set) else [value])]
    return rows.iloc[:limit].reset_index(drop=True)


class SeededDataset(Dataset):
    """Base of unveil's datasets: item randomness from (seed, epoch, index); call :meth:`set_epoch` each epoch."""

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}/{self.epoch}/{index}")


class UnpairedDataset(SeededDataset):
    """Domain A and domain B images without correspondence (CycleGAN). Item ``i`` is A[i mod |A|] and a random
    B, or B[i mod |B|] with ``serial`` (the reference code's ``serial_batches``); the length is max(|A|, |B|).
    ``labels`` (see :func:`row_labels`) add A's ``emotion`` and ``aus``."""

    def __init__(self, root: Path, domain_a: pd.DataFrame, domain_b: pd.DataFrame, augment: Augment,
                 seed: int = 0, serial: bool = False, labels: dict[str, np.ndarray] | None = None) -> None:
        if len(domain_a) == 0 or len(domain_b) == 0:
            raise UnveilError(f"Both domains need images; found {len(domain_a)} in A and {len(domain_b)} in B.")
        self.root, self.augment, self.seed, self.serial = root, augment, seed, serial
        self.a, self.b = domain_a["image"].tolist(), domain_b["image"].tolist()
        self.labels = labels or {}  # of the A images (see row_labels)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        rng = self.rng(index)
        path_a = self.a[index % len(self.a)]
        path_b = self.b[index % len(self.b)] if self.serial else self.b[rng.randrange(len(self.b))]
        (image_a,) = self.augment([load_image(self.root / path_a)], rng)
        (image_b,) = self.augment([load_image(self.root / path_b)], rng)
        item: dict[str, torch.Tensor | str] = {"A": to_tensor(image_a), "B": to_tensor(image_b), "A_path": path_a,
                                               "B_path": path_b}
        for key, values in self.labels.items():
            item[key] = torch.tensor(values[index % len(self.a)])
        return item


class PairedDataset(SeededDataset):
    """Occluded image ``A``, its clean twin ``B`` and the occluder ``mask`` (1 = hidden), identically augmented;
    ``labels`` (see :func:`row_labels`) add the face's ``emotion`` and ``aus`` to every item."""

    def __init__(self, root: Path, samples: pd.DataFrame, augment: Augment, seed: int = 0, swap: bool = False,
                 labels: dict[str, np.ndarray] | None = None) -> None:
        missing = [c for c in ("image", "clean") if c not in samples.columns or samples[c].isna().any()]
        if missing or len(samples) == 0:
            raise UnveilError("Paired training needs occluded samples with clean twins (the 'clean' column of "
                              "samples.parquet); prepare a manifest whose occluded recordings give ground_truth, "
                              "or use the triplets of 'unveil occlude --format png'.")
        self.root, self.rows, self.augment, self.seed = root, samples.reset_index(drop=True), augment, seed
        self.swap = swap  # B (clean) is the input and A the target: the reference's direction BtoA
        self.labels = labels or {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        row = self.rows.iloc[index]
        images = [load_image(self.root / row["image"]), load_image(self.root / row["clean"])]
        has_mask = "mask" in row and isinstance(row["mask"], str)
        if has_mask:
            images.append(load_image(self.root / row["mask"], gray=True))
        out = self.augment(images, self.rng(index))
        first, second = (1, 0) if self.swap else (0, 1)
        item: dict[str, torch.Tensor | str] = {"A": to_tensor(out[first]), "B": to_tensor(out[second]),
                                               "A_path": row["image"]}
        item["mask"] = to_tensor(out[2]) if has_mask else torch.zeros(1, *out[0].shape[:2])
        for key, values in self.labels.items():
            item[key] = torch.tensor(values[index])
        return item


#: Emotion index of a frame without one (torch cross-entropy's default ``ignore_index``).
IGNORE = -100


def emotion_names(table: pd.DataFrame, tasks: Sequence[str] = ("emotion",),
                  classes: Sequence[str] | None = None) -> pd.Series:
    """The emotion each row shows, or None: its ``emotion`` column (labelled photos, see ``unveil prepare`` of a
    labelled folder) where present, else the ``event`` of rows of an emotion task (the benchmark); with
    ``classes``, names outside them are None too."""
    names = pd.Series([None] * len(table), index=table.index, dtype=object)
    if "emotion" in table.columns:
        names = table["emotion"].where(table["emotion"].notna() & (table["emotion"] != ""), None).astype(object)
    if "event" in table.columns and "task" in table.columns:
        from_events = table["event"].where(table["task"].isin(list(tasks)), None)
        names = names.where(names.notna(), from_events)
    if classes is not None:
        names = names.where(names.isin(list(classes)), None)
    return names


def au_label_columns(table: pd.DataFrame) -> list[str]:
    """The AU columns (``AU01`` ...) that carry labels varying over ``table``."""
    columns = au_columns(table.columns)
    return [c for c in columns if table[c].notna().any() and float(table[c].std()) > 0]


def row_labels(table: pd.DataFrame, emotions: Sequence[str], aus: Sequence[str], tasks: Sequence[str] = ("emotion",)
               ) -> dict[str, np.ndarray]:
    """Per-row label arrays for dataset items: ``emotion`` (index into ``emotions``, IGNORE where none) and
    ``aus`` (intensities in ``aus`` order, NaN where unknown)."""
    names = emotion_names(table, tasks, emotions)
    emotion = np.array([list(emotions).index(e) if isinstance(e, str) else IGNORE for e in names], np.int64)
    values = (table[list(aus)].to_numpy(np.float32) if aus else np.zeros((len(table), 0), np.float32))
    return {"emotion": emotion, "aus": values}


def pixel_noise(seed: int, mean: float, std: float, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """One image's fixed Gaussian pixel noise (the MNIST-grid's medium and hard sets), the same draw every epoch
    and in every process: a function of ``seed`` alone."""
    if std == 0 and mean == 0:
        return torch.zeros(tuple(shape))
    generator = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(tuple(shape), generator=generator)


class LabelledDataset(SeededDataset):
    """A face crop with its AU intensities (``aus`` columns; NaN where a frame has no label, so partly labelled
    data can be used) and its emotion class index (``emotion``, one per row; ``IGNORE`` where none). Rows with
    ``noise_mean`` / ``noise_std`` / ``noise_seed`` columns get that fixed pixel noise (:func:`pixel_noise`),
    clipped to the pixel range where ``noise_clip`` is true."""

    def __init__(self, root: Path, samples: pd.DataFrame, aus: Sequence[str], augment: Augment,
                 emotion: np.ndarray | None = None, seed: int = 0) -> None:
        absent = [c for c in aus if c not in samples.columns]
        if absent:
            raise UnveilError(f"samples.parquet has no label column {', '.join(absent)}.")
        self.root, self.paths, self.augment, self.seed = root, samples["image"].tolist(), augment, seed
        self.aus = samples[list(aus)].to_numpy(np.float32) if aus else np.zeros((len(samples), 0), np.float32)
        self.emotion = np.full(len(samples), IGNORE, np.int64) if emotion is None else np.asarray(emotion, np.int64)
        noise = ["noise_mean", "noise_std", "noise_seed"]  # and noise_clip, False where absent
        self.noise = (samples[noise].assign(noise_clip=samples.get("noise_clip", False)).to_numpy(np.float64)
                      if set(noise) <= set(samples.columns) else None)
        if len(self.emotion) != len(samples):
            raise ValueError(f"{len(self.emotion)} emotion labels for {len(samples)} rows")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        (image,) = self.augment([load_image(self.root / self.paths[index])], self.rng(index))
        x = to_tensor(image)
        if self.noise is not None:
            mean, std, seed, clip = self.noise[index]
            x = x + 2 * pixel_noise(int(seed), mean, std, x.shape[-2:])  # [0, 1] noise on the [-1, 1] scale
            if clip:
                x = x.clamp(-1.0, 1.0)
        return {"image": x, "aus": torch.tensor(self.aus[index]),
                "emotion": torch.tensor(self.emotion[index]), "path": self.paths[index]}


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` and the epoch (call ``dataset.set_epoch``).

    Workers are not persistent, so each epoch's workers see the dataset's current epoch.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      worker_init_fn=_seed_worker, generator=generator, drop_last=drop_last,
                      pin_memory=torch.cuda.is_available())
