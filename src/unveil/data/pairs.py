"""Training pairs synthesised on the fly: occluders drawn onto clean face crops (any folder of faces, or a
subject's own normal recordings), so that the hidden face is known exactly and a restorer can learn with full
supervision (seed 001's "original images are occluded four times"; seed 003's paired data).

Each clean crop gives ``per_image`` occluded copies per epoch, each with its own occluder and look, drawn from
(seed, epoch, index) only, so runs repeat exactly with any number of loader workers. Occluders are placed by the
crop's 68 landmarks (dlib, detected once and cached beside ``samples.parquet``), so they sit on the face and
follow its shape. The occluded copy can go through a JPEG round trip, as a video codec smears an occluder's
colour a few pixels past its exact mask.

Occluders: ``patch`` (seed 001's rectangles at four coverage levels, the copy's index picks the level), ``mask``,
``glasses``, ``hand``, ``semg`` (the benchmark's own sensor renderer) and ``sensors`` (electrodes and cables in
randomised looks that exclude the benchmark's: a restorer trained on them has never seen the test sensors).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from unveil.data.datasets import Augment, SeededDataset, load_image, to_tensor
from unveil.errors import UnveilError
from unveil.facs import landmark_columns
from unveil.files import atomic_path
from unveil.progress import progress_bar

#: Occluders a synthesised pair can carry.
PAIR_OCCLUDERS: tuple[str, ...] = ("patch", "mask", "glasses", "hand", "semg", "sensors")
#: Occluders that never look like the benchmark's sensors (generic ones plus the held-out sensor looks).
HELD_OUT_OCCLUDERS: tuple[str, ...] = ("sensors", "patch", "mask", "glasses", "hand")
#: The cache of detected landmarks, beside samples.parquet.
LANDMARK_CACHE = "landmarks.dlib68.parquet"


def check_occluders(names: Sequence[str]) -> list[str]:
    """``names`` when every one is a pair occluder; one sentence otherwise."""
    unknown = [n for n in names if n not in PAIR_OCCLUDERS]
    if unknown or not names:
        raise UnveilError(f"Unknown pair occluder '{unknown[0] if unknown else ''}'; choose from "
                          f"{', '.join(PAIR_OCCLUDERS)}.")
    return list(names)


def detect_crop_landmarks(image: np.ndarray, landmarker) -> tuple[np.ndarray, bool]:  # noqa: ANN001 - DlibLandmarker
    """The 68 landmarks of the one face in a face crop: detected with a replicated border around the crop (tight
    crops leave the detector no context), else fitted to the whole crop as the face box. Returns the points and
    whether a face was detected."""
    side = image.shape[0]
    pad = side // 3
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = landmarker.detect(padded)
    if found is not None:
        return landmarker.fit(padded, found[0]).points - pad, True
    return landmarker.fit(image, (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))).points, False


def crop_landmarks(root: Path, images: Sequence[str], progress: bool = True) -> np.ndarray:
    """(n, 68, 2) landmarks of the face crops ``root/image`` in their own pixels, from the cache beside
    samples.parquet where present; new ones are detected with dlib and added to it (when the folder is writable)."""
    from unveil.data.landmarks import DlibLandmarker

    cache_path = root / LANDMARK_CACHE
    columns = landmark_columns()
    cached = pd.read_parquet(cache_path).set_index("image") if cache_path.is_file() else pd.DataFrame()
    missing = [im for im in dict.fromkeys(images) if im not in cached.index]
    if missing:
        landmarker = DlibLandmarker()
        rows = []
        with progress_bar(len(missing), "landmarks of the clean crops", progress) as advance:
            for name in missing:
                points, detected = detect_crop_landmarks(load_image(root / name), landmarker)
                rows.append([name, detected, *points[:, 0], *points[:, 1]])
                advance(1)
        new = pd.DataFrame(rows, columns=["image", "detected", *columns]).set_index("image")
        cached = pd.concat([cached, new]) if len(cached) else new
        with contextlib.suppress(OSError):  # a read-only samples folder: detect again next time
            with atomic_path(cache_path) as tmp:
                cached.reset_index().to_parquet(tmp, index=False)
    values = cached.loc[list(images), columns].to_numpy(np.float64)
    return np.stack([values[:, :68], values[:, 68:]], axis=2)


def synthesize_occlusion(image: np.ndarray, points: np.ndarray, kind: str, rng: np.random.Generator,
                         patch_level: int | None = None, templates: dict | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with occluder ``kind`` drawn on the face whose 68 landmarks are ``points``, and its exact 0/255
    mask. ``templates`` (MaskTheFace's, :func:`unveil.data.occlusion.load_mask_templates`) draw real mask
    overlays for ``mask`` instead of the synthetic one."""
    from unveil.data.occlusion import TemplateMask, canonical_shape, fit_pose, identity_from_face
    from unveil.synth.occluders import FaceFrame, Glasses, Hand, Paint, Patches, RandomSensors, SEMG, SurgicalMask

    occluded, mask = image.copy(), np.zeros(image.shape[:2], np.uint8)
    if kind == "mask" and templates:
        styles = sorted({n.removesuffix("_left").removesuffix("_right") for n in templates})
        TemplateMask(templates, str(rng.choice(styles))).draw_on(occluded, mask, points)
        return occluded, mask
    identity = identity_from_face(image, points, int(rng.integers(2**31)))
    pose = fit_pose(points)
    frame = FaceFrame(identity, canonical_shape(points, pose), pose, 0)
    builders = {
        "patch": lambda: Patches(identity, rng, patch_level),
        "mask": lambda: SurgicalMask(rng),
        "glasses": lambda: Glasses(rng),
        "hand": lambda: Hand.still(identity, rng),
        "semg": lambda: SEMG(identity, rng, rng),
        "sensors": lambda: RandomSensors(identity, rng),
    }
    if kind not in builders:
        check_occluders([kind])
    builders[kind]().draw(Paint(occluded, mask), frame)
    return occluded, mask


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (RGB uint8) encoded as JPEG at ``quality`` and decoded again (chroma subsampled, as video is)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class SynthesizedPairs(SeededDataset):
    """Clean face crops, each occluded ``per_image`` times per epoch: items ``A`` (occluded), ``B`` (clean),
    ``mask`` (1 = hidden) and, where the rows carry them, the labels ``emotion`` and ``aus`` of the clean face.

    Copy k of an image draws one of ``occluders`` at random (patches at level k mod 4 + 1, seed 001's four
    amounts). With ``jpeg`` = (low, high), A goes through a JPEG round trip at a random quality in that range.
    """

    def __init__(self, root: Path, rows: pd.DataFrame, points: np.ndarray, augment: Augment,
                 occluders: Sequence[str], *, per_image: int = 4, jpeg: tuple[int, int] | None = (60, 95),
                 labels: dict[str, np.ndarray] | None = None, templates: dict | None = None, seed: int = 0) -> None:
        if len(rows) == 0:
            raise UnveilError("No clean face crops to draw occluders on; check the rows the method selects.")
        self.root, self.augment, self.seed = root, augment, seed
        self.images = rows["image"].tolist()
        self.points, self.occluders = points, check_occluders(occluders)
        self.per_image, self.jpeg, self.templates = per_image, jpeg, templates
        self.labels = labels or {}

    def __len__(self) -> int:
        return len(self.images) * self.per_image

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(occluded, clean, mask) of item ``index`` at the crops' own size, before augmentation."""
        image_index, copy = divmod(index, self.per_image)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        clean = load_image(self.root / self.images[image_index])
        kind = self.occluders[int(rng.integers(len(self.occluders)))]
        occluded, mask = synthesize_occlusion(clean, self.points[image_index], kind, rng,
                                              patch_level=copy % 4 + 1, templates=self.templates)
        if self.jpeg is not None:
            occluded = jpeg_round_trip(occluded, int(rng.integers(self.jpeg[0], self.jpeg[1] + 1)))
        return occluded, clean, mask

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        occluded, clean, mask = self.pair(index)
        a, b, m = self.augment([occluded, clean, mask], self.rng(index))
        item: dict[str, torch.Tensor | str] = {"A": to_tensor(a), "B": to_tensor(b), "mask": to_tensor(m),
                                               "A_path": self.images[index // self.per_image]}
        for key, values in self.labels.items():
            item[key] = torch.tensor(values[index // self.per_image])
        return item


class WithUnpaired(SeededDataset):
    """A paired dataset whose items also carry ``R``: a random real occluded crop (no clean twin), for an
    unpaired adversarial term that closes the gap between drawn and real occluders (the hybrid)."""

    def __init__(self, paired: SeededDataset, root: Path, real: pd.DataFrame, augment: Augment, seed: int = 0) -> None:
        if len(real) == 0:
            raise UnveilError("The hybrid term needs real occluded crops (domain_a rows); none were found.")
        self.paired, self.root, self.augment, self.seed = paired, root, augment, seed
        self.real = real["image"].tolist()

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.paired.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.paired)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = dict(self.paired[index])
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}/real")  # apart from the pair's own draws
        (real,) = self.augment([load_image(self.root / self.real[rng.randrange(len(self.real))])], rng)
        item["R"] = to_tensor(real)
        return item
