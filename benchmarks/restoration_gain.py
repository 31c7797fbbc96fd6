"""Restoration quality of any restorer's checkpoint (cyclegan, pix2pix, ...) on the synthetic benchmark: L1 and PSNR
inside the occluder and PSNR of the face crop against the hidden clean frames, on frames training never saw.

    python benchmarks/restoration_gain.py CHECKPOINT BENCHMARK_DIR PREPARED_DIR --subject S01
"""

from __future__ import annotations

import argparse

from unveil.data.manifest import load_manifest
from unveil.evaluate.restoration import restoration_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("benchmark")
    parser.add_argument("prepared")
    parser.add_argument("--subject", default="S01")
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    scores = restoration_scores(args.checkpoint, load_manifest(f"{args.benchmark}/manifest.yaml"), args.prepared,
                                args.subject, every=args.every)
    means = scores.mean(numeric_only=True)
    print(f"{len(scores)} unseen frames of {scores['recording'].nunique()} occluded recordings, subject {args.subject}")
    print(f"{'':22s} {'L1 in mask':>10s} {'PSNR mask':>9s} {'PSNR dB':>8s} {'L1 visible':>10s}")
    base_l1, base_psnr = means["l1_mask_input"], means["psnr_input"]
    for name in ("input", "restored", "composite_mask", "composite_estimated"):
        m_l1, m_psnr = means[f"l1_mask_{name}"], means[f"psnr_{name}"]
        print(f"{name:22s} {m_l1:10.4f} {means[f'psnr_mask_{name}']:9.2f} {m_psnr:8.2f} "
              f"{means[f'l1_visible_{name}']:10.4f}   L1 in mask {100 * (m_l1 / base_l1 - 1):+6.1f} %, "
              f"PSNR {m_psnr - base_psnr:+5.2f} dB against the input")


if __name__ == "__main__":
    main()
