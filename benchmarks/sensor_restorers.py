"""Restorers of one benchmark subject side by side, judged by the hidden truth: pixels inside the sensors (L1, PSNR
against the hidden clean frames, on frames training never saw) and the expression (each analyzer's AU error on the
restored videos C against the true AU intensities of frames.parquet, beside its error on the sensor videos S and
the hidden clean videos G; "expression recovered" = (err S - err C) / (err S - err G)).

    python benchmarks/sensor_restorers.py BENCH PREPARED --subject S01 --runs cyclegan=runs/cyclegan \\
        --runs deoccluder=runs/deocc --cnn runs/cnn --out sensor-eval

Each ``--runs`` folder holds ``<subject>/checkpoints/latest.safetensors`` (what ``unveil train ... --subject``
writes). The restored videos are the subject's first sensor take of the Schaede and emotion tasks in every session
(as the demo's; every take with ``--all-takes``, other tasks with ``--tasks``), analysed every ``--every``-th frame.
A restorer that finds the occluder itself enters the frame only through its own mask (``--composite restorer``, as
the demo restores); any other is pasted as it is. ``--forest`` adds the landmark forest to the analyzers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unveil.data.manifest import load_manifest
from unveil.evaluate.protocol import EvaluateConfig, evaluate
from unveil.evaluate.restoration import restoration_scores
from unveil.methods.registry import load_restorer, parse_settings
from unveil.restore import restore_recordings, subject_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark")
    parser.add_argument("prepared")
    parser.add_argument("--subject", default="S01")
    parser.add_argument("--runs", action="append", required=True, help="NAME=FOLDER of per-subject runs")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:OPTION=VALUE",
                        help="a restore-time option for the runs named NAME (as 'unveil restore --set')")
    parser.add_argument("--cnn", help="a classifier checkpoint for the cnn analyzer (dlib68 runs always)")
    parser.add_argument("--forest", help="a landmark forest ('unveil train forest') for the forest analyzer")
    parser.add_argument("--out", default="sensor-eval")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--tasks", default="schaede,emotion")
    parser.add_argument("--all-takes", action="store_true", help="every sensor take, not only the first")
    args = parser.parse_args()

    manifest = load_manifest(Path(args.benchmark) / "manifest.yaml")
    tasks = args.tasks.split(",")
    protocol = manifest.model_copy(update={"recordings": [
        r for r in manifest.recordings if r.subject == args.subject and r.task in tasks
        and (r.condition == "normal" or r.take == 1 or args.all_takes)]})
    analyzers = ["dlib68"] + (["forest"] if args.forest else []) + (["cnn"] if args.cnn else [])
    rows = {}
    for spec in args.runs:
        name, runs = spec.split("=", 1)
        options = parse_settings([s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == name])
        out = Path(args.out) / name
        restorer = load_restorer(subject_checkpoint(runs, args.subject), options=options)
        pixels = restoration_scores(restorer, manifest, args.prepared, args.subject, every=10).mean(numeric_only=True)
        composite = "restorer" if getattr(restorer, "segments", False) else "none"
        restore_recordings(protocol, runs, out / "restored", args.prepared, composite=composite, resume=True,
                           options=options, progress=False)
        config = EvaluateConfig(analyzers=analyzers, cnn=args.cnn, forest=args.forest, samples=args.prepared,
                                every=args.every, image_every=30)
        result = evaluate(protocol, out / "evaluation", out / "restored", config, progress=False)
        row = {"L1 in sensors": pixels["l1_mask_restored"], "PSNR in sensors": pixels["psnr_mask_restored"],
               "PSNR crop": pixels["psnr_restored"], "L1 visible": pixels["l1_visible_restored"],
               "input L1 in sensors": pixels["l1_mask_input"], "input PSNR in sensors": pixels["psnr_mask_input"],
               "mask IoU": pixels.get("mask_iou")}
        for analyzer, fidelity in result.fidelity.items():
            o = fidelity.overall
            row |= {f"{analyzer} err S": o.get("err_S"), f"{analyzer} err C": o.get("err_C"),
                    f"{analyzer} err G": o.get("err_G"), f"{analyzer} recovered": o.get("recovered"),
                    f"{analyzer} low": o.get("low"), f"{analyzer} high": o.get("high")}
            if fidelity.emotion:
                row |= {f"{analyzer} emotion acc C": fidelity.emotion.get("acc_C"),
                        f"{analyzer} emotion acc S": fidelity.emotion.get("acc_S"),
                        f"{analyzer} emotion acc G": fidelity.emotion.get("acc_G")}
        rows[name] = row
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if v is not None), flush=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(rows, indent=1))
    print(f"frame strip: {frame_strip(protocol, [s.split('=', 1)[0] for s in args.runs], Path(args.out))}")


def frame_strip(protocol, names: list[str], out: Path, frames: int = 6) -> Path:  # noqa: ANN001 - a Manifest
    """Rows S, each restorer's C, and G (the hidden truth) at ``frames`` moments of the first emotion sensor video
    (every other moment of its expressive part), at full frame size: ``out/strip.png``."""
    import cv2
    import numpy as np

    from unveil.data.video import read_frames

    rec = next(r for r in protocol.recordings if r.condition == "occluded" and r.task == "emotion")
    chosen = set(np.linspace(0, (rec.n_frames or 1) - 1, frames + 2).astype(int)[1:-1].tolist())
    sources = [("S", protocol.resolve(rec.media))] + [(n, out / n / "restored" / f"{rec.id}.mp4") for n in names] \
        + [("G", protocol.resolve(rec.ground_truth))]
    rows = []
    for label, path in sources:
        images = [f.image for f in read_frames(path, only=chosen)]
        row = np.concatenate(images, axis=1)
        cv2.putText(row, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    target = out / "strip.png"
    cv2.imwrite(str(target), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return target


if __name__ == "__main__":
    main()
