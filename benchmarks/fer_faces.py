"""Accuracy and speed of the ``fer`` judge on the labelled real photos of ../shared/data/faces (whole image as the
face), per class, with a confusion table; ``--pad 0.1`` adds a border of edge pixels around each tight crop.

    python benchmarks/fer_faces.py [--faces ../shared/data/faces] [--pad 0.1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from unveil.analysis.fer import FER_EMOTIONS, FERAnalyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/faces")
    parser.add_argument("--pad", type=float, default=0.0, help="Border around each photo, times its side.")
    args = parser.parse_args()
    table = pd.read_csv(args.faces / "labels.csv").dropna(subset=["emotion"])
    images = [cv2.imread(str(args.faces / "images" / name), cv2.IMREAD_GRAYSCALE) for name in table["image"]]
    if args.pad:
        images = [cv2.copyMakeBorder(im, *[round(args.pad * im.shape[0])] * 4, cv2.BORDER_REPLICATE) for im in images]
    judge = FERAnalyzer()
    started = time.perf_counter()
    probabilities = np.concatenate([judge.probabilities(images[i:i + 256]) for i in range(0, len(images), 256)])
    seconds = time.perf_counter() - started
    predicted = np.array(FER_EMOTIONS)[probabilities.argmax(axis=1)]
    right = pd.Series(predicted == table["emotion"].to_numpy(), index=table["emotion"].to_numpy())
    print(f"{len(images)} labelled faces, {len(images) / seconds:.0f} faces/s; accuracy {right.mean():.3f}")
    print(right.groupby(level=0).mean().round(3).to_string())
    print(pd.crosstab(table["emotion"].to_numpy(), predicted, rownames=["label"], colnames=["fer"]).to_string())


if __name__ == "__main__":
    main()
