"""``unveil prepare`` of a labelled folder of face photos (e.g. ``../shared/data/faces``): every photo becomes a
face crop of ``samples.parquet`` with its emotion (empty: unlabelled) and identity, split train / validation /
test by identity, so that no person is in two splits.

``labels.csv`` holds ``image`` (a file name in the folder or its ``images/`` subfolder) and optionally
``emotion`` and ``identity``; without identities every photo is its own person.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.progress import progress_bar

LABELS_NAME = "labels.csv"


def is_labelled_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder of photos with a ``labels.csv``."""
    return Path(path).is_dir() and (Path(path) / LABELS_NAME).is_file()


def identity_splits(identities: pd.Series, val_fraction: float, test_fraction: float, seed: int) -> pd.Series:
    """``test`` / ``val`` / ``train`` per row, whole identities at a time: identities in a seeded random order fill
    the test split until it holds ``test_fraction`` of the rows, then validation, then training."""
    counts = identities.value_counts()
    order = counts.index.to_numpy()[np.random.default_rng(seed).permutation(len(counts))]
    split, filled, total = {}, {"test": 0, "val": 0}, len(identities)
    for identity in order:
        n = int(counts[identity])
        if filled["test"] < test_fraction * total:
            split[identity], filled["test"] = "test", filled["test"] + n
        elif filled["val"] < val_fraction * total:
            split[identity], filled["val"] = "val", filled["val"] + n
        else:
            split[identity] = "train"
    return identities.map(split)


def prepare_labelled_folder(folder: str | os.PathLike[str], out: str | os.PathLike[str], *, load_size: int = 128,
                            val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                            progress: bool = True) -> pd.DataFrame:
    """Crops (``load_size`` square, RGB PNG) and ``samples.parquet`` of a labelled photo folder; returns the table.

    Columns as ``unveil prepare`` writes them for videos (one ``photos`` recording, ``subject`` = identity, all
    ``normal``), plus ``emotion``. A photo that cannot be read is one sentence naming it.
    """
    import cv2

    source = Path(folder)
    labels_path = source / LABELS_NAME
    if not labels_path.is_file():
        raise UnveilError(f"{source} has no {LABELS_NAME} (columns image, and optionally emotion and identity).")
    labels = pd.read_csv(labels_path, dtype=str, keep_default_na=False)
    if "image" not in labels.columns:
        raise UnveilError(f"{labels_path} has no 'image' column; it has {', '.join(labels.columns)}.")
    if not 0 <= val_fraction + test_fraction < 1:
        raise UnveilError(f"The validation and test shares ({val_fraction}, {test_fraction}) must add up to under 1.")
    images = source / "images" if (source / "images").is_dir() else source
    identities = labels["identity"] if "identity" in labels.columns else labels["image"]
    splits = identity_splits(identities.where(identities != "", labels["image"]), val_fraction, test_fraction, seed)
    target = ensure_dir(out)
    crops = ensure_dir(target / "crops" / "photos")
    rows = []
    with progress_bar(len(labels), f"prepare {source.name}", progress) as advance:
        for index, (row, split) in enumerate(zip(labels.itertuples(index=False), splits, strict=True)):
            path = images / row.image
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise UnveilError(f"Cannot read the photo {path} named in {labels_path}.")
            side = image.shape[0]
            crop = cv2.resize(image, (load_size, load_size), interpolation=cv2.INTER_AREA if side > load_size
                              else cv2.INTER_CUBIC)
            name = f"{Path(row.image).stem}.png"
            with atomic_path(crops / name) as tmp:
                cv2.imwrite(str(tmp), crop)
            emotion = getattr(row, "emotion", "") or None
            rows.append({"recording": "photos", "subject": identities.iloc[index] or row.image, "session": "1",
                         "take": 1, "condition": "normal", "occluder": None, "task": "photos", "frame": index,
                         "time": 0.0, "split": split, "face_found": True, "confidence": 1.0, "box_x": 0.0,
                         "box_y": 0.0, "box_size": float(side), "image": f"crops/photos/{name}", "emotion": emotion})
            advance(1)
    table = pd.DataFrame(rows)
    write_text_atomic(target / "prepare.yaml", f"source: {source.resolve()}\nload_size: {load_size}\n"
                                               f"val_fraction: {val_fraction}\ntest_fraction: {test_fraction}\n"
                                               f"seed: {seed}\nsplit_by: identity\n")
    with atomic_path(target / "samples.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    return table
