"""Which part of a demo restorer limits the expression it gets back: its mask or its fill. On a finished demo's
sensor takes, each restoration below is read by the demo's image CNN and scored as the demo scores C (expression
recovered per subject and session, against the true AUs), with the hidden face's pixels swapped in for one part:

    restorer      the restorer as its checkpoint says (mask found and checked by it, exemplar fill)
    true-mask     its fill, inside the benchmark's true sensor mask (grown 1 px) instead of its own
    hidden-fill   the hidden clean face as the fill, inside the restorer's own mask
    hidden-true   the hidden clean face inside the true mask (grown 1 px): what a perfect restorer gets

    python benchmarks/demo_fill_oracles.py demo-output --subject S01
    python benchmarks/demo_fill_oracles.py demo-output --subject S01 --set exemplar_check_by=fill

The restored frames are scored as decoded pixels, not re-encoded as the demo's videos are, so the restorer's row
can differ from the demo's by a few points; compare the rows with each other. The S, G and normal readings are the
demo's own (its evaluation/timeseries/cnn).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import pandas as pd
import torch

from unveil.analysis.cnn import CNNAnalyzer
from unveil.data.datasets import to_tensor
from unveil.data.faces import CropTransform
from unveil.data.manifest import load_manifest
from unveil.data.prepare import recording_boxes
from unveil.data.video import read_frames
from unveil.demo import DEMO_EVALUATE, demo_protocol
from unveil.evaluate.fidelity import expression_fidelity
from unveil.methods.paired import restore_as_inference
from unveil.methods.registry import load_analysis_model, load_restorer, parse_settings
from unveil.nets.segmentation import grow_mask
from unveil.restore import _composite, subject_checkpoint

VARIANTS = ("restorer", "true-mask", "hidden-fill", "hidden-true")


def restorations(generator, a: torch.Tensor, hidden: torch.Tensor, truth: torch.Tensor  # noqa: ANN001
                 ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each variant's crops and the mask it was composited through."""
    own = restore_as_inference(generator, a, None)
    mask = own.mask
    return {"restorer": (own.out, mask),
            "true-mask": (hidden * generator.E(a, hidden) + (1 - hidden) * a, hidden),
            "hidden-fill": (mask * truth + (1 - mask) * a, mask),
            "hidden-true": (hidden * truth + (1 - hidden) * a, hidden)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="a finished 'unveil demo' output folder")
    parser.add_argument("--subject", action="append", help="subjects to score (default: every one)")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a restore-time option in place of the checkpoint's, as 'unveil restore --set'")
    args = parser.parse_args()

    options = parse_settings(args.set)
    manifest = demo_protocol(load_manifest(args.demo / "benchmark" / "manifest.yaml"))
    occluded = [r for r in manifest.recordings if r.condition == "occluded"
                and (not args.subject or r.subject in args.subject)]
    boxes = recording_boxes(manifest, occluded, args.demo / "prepared")
    judge = load_analysis_model(args.demo / "models" / "cnn" / "checkpoints" / "latest.safetensors", "cpu")
    cache = args.demo / "evaluation" / "timeseries" / "cnn"
    tables = {f.name.removesuffix(".parquet"): pd.read_parquet(f) for f in cache.glob("*.parquet")}
    restored: dict[str, dict[str, pd.DataFrame]] = {v: {} for v in VARIANTS}
    every = DEMO_EVALUATE.every
    for rec in occluded:
        generator = load_restorer(subject_checkpoint(args.demo / "runs", rec.subject), "cpu", options).generator
        box = boxes[rec.id]
        crop = CropTransform(box, generator.E.side)
        sensor = [f.image for f in read_frames(manifest.resolve(rec.media))]
        clean = [f.image for f in read_frames(manifest.resolve(rec.ground_truth))]
        masks = [f.image for f in read_frames(manifest.resolve(rec.mask), gray=True)]
        hidden = grow_mask(torch.stack([to_tensor(crop.crop(m, interpolation=cv2.INTER_NEAREST)) for m in masks]), 1)
        a = torch.stack([to_tensor(crop.crop(f)) for f in sensor])
        truth = torch.stack([to_tensor(crop.crop(f)) for f in clean])
        chosen = list(range(0, len(sensor), every))
        analyzer = CNNAnalyzer(judge, box=(box.x, box.y, box.w, box.h))
        parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {v: [] for v in VARIANTS}
        with torch.no_grad():
            for start in range(0, len(a), 64):
                for name, part in restorations(generator, a[start:start + 64], hidden[start:start + 64],
                                               truth[start:start + 64]).items():
                    parts[name].append(part)
        for name in VARIANTS:
            out = torch.cat([p[0] for p in parts[name]]).clamp(-1, 1).add(1).mul(127.5).round().byte()
            mask = torch.cat([p[1] for p in parts[name]])[:, 0].numpy()
            crops = out.permute(0, 2, 3, 1).numpy()
            frames = [_composite(sensor[i], crop, crops[i], crops[i], None, "restorer", 0.12, 0.06, [],
                                 found=mask[i])[0] for i in chosen]
            readings = analyzer(frames)
            restored[name][f"{rec.id}.C"] = pd.DataFrame([{"frame": i, "face_found": r.found, **r.values}
                                                          for i, r in zip(chosen, readings, strict=True)])
        print(f"{rec.id}: {len(sensor)} frames", flush=True)
    subjects = {r.subject for r in occluded}
    for number, name in enumerate(VARIANTS):
        fidelity = expression_fidelity("cnn", manifest, {**tables, **restored[name]})
        sessions = fidelity.sessions[fidelity.sessions.subject.isin(subjects)]
        if not number:
            print("\nimage CNN, expression recovered per session\n\n| variant | " + " | ".join(
                f"{s.subject} session {s.session}" for s in sessions.itertuples()) + " |")
            print("|---|" + "---:|" * len(sessions))
        print(f"| {name} | " + " | ".join(f"{v:.0%}" for v in sessions.recovered) + " |")


if __name__ == "__main__":
    main()
