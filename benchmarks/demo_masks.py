"""Restore and evaluate a finished demo again with other mask settings, the trained networks unchanged: the rows
of the README's exemplar-check table.

    python benchmarks/demo_masks.py demo-output OUT                                        # the demo's own settings
    python benchmarks/demo_masks.py demo-output OUT --exemplar-check 0.08 --exemplar-check-by fill  # by the fill
    python benchmarks/demo_masks.py demo-output OUT --exemplar-check 0 --composite none     # the demo before
    python benchmarks/demo_masks.py demo-output OUT --true-crop-mask --composite restorer  # a measurement only
    python benchmarks/demo_masks.py demo-output OUT --exemplar-regions 8   # neighbours per cell of an 8 x 8 grid

``--true-crop-mask`` gives each crop the benchmark's true sensor mask (grown one pixel, as the segmentation
network's target is) instead of the network's; outside the face box the network still finds the cables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unveil.data.manifest import load_manifest
from unveil.demo import DEMO_EVALUATE, demo_protocol, headline
from unveil.evaluate.fidelity import expression_lines
from unveil.evaluate.protocol import evaluate
from unveil.restore import restore_recordings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="a finished 'unveil demo' output folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--exemplar-check", type=float, default=None,
                        help="the exemplar check's threshold (default: the checkpoint's)")
    parser.add_argument("--exemplar-check-by", choices=["bank", "fill"], default=None,
                        help="what a marked pixel is compared with (default: the checkpoint's)")
    parser.add_argument("--composite", default="restorer", choices=["none", "restorer", "difference"])
    parser.add_argument("--true-crop-mask", action="store_true")
    parser.add_argument("--exemplar-regions", type=int, default=None,
                        help="the exemplar fill's grid of retrieval regions (default: the checkpoint's)")
    args = parser.parse_args()

    import unveil.restore as restoring

    manifest = load_manifest(args.demo / "benchmark" / "manifest.yaml")
    protocol = demo_protocol(manifest)
    masks = {str(manifest.resolve(r.media)): manifest.resolve(r.mask) for r in manifest.recordings if r.mask}
    plain_restore, plain_occlusion = restoring.restore, restoring.frame_occlusion

    def restore(restorer, source, target, **options):  # noqa: ANN001, ANN003, ANN202 - restore's own arguments
        generator = restorer.generator
        if args.exemplar_check is not None:
            generator.exemplar_check = args.exemplar_check
        if args.exemplar_check_by is not None:
            generator.exemplar_check_by = args.exemplar_check_by
        if args.exemplar_regions is not None and generator.E is not None:
            generator.E.regions = args.exemplar_regions
        if args.true_crop_mask:
            generator.mask_input, generator.grow = "given", 1
            options["mask"] = masks[str(source)]
        return plain_restore(restorer, source, target, **options)

    def outside_by_network(restorer, image, transform, hidden, reference=None):  # noqa: ANN001, ANN202
        return plain_occlusion(restorer, image, transform, None, reference)  # never the true mask beyond the box

    restoring.restore, restoring.frame_occlusion = restore, outside_by_network
    restore_recordings(protocol, args.demo / "runs", args.out / "restored", args.demo / "prepared",
                       composite=args.composite, progress=True)
    config = DEMO_EVALUATE.model_copy(update={
        "forest": str(args.demo / "models" / "forest.safetensors"), "samples": str(args.demo / "prepared"),
        "cnn": str(args.demo / "models" / "cnn" / "checkpoints" / "latest.safetensors")})
    result = evaluate(protocol, args.out / "evaluation", args.out / "restored", config, progress=True)
    print(headline(result))
    for line in expression_lines(result.fidelity):
        print(" ", line)


if __name__ == "__main__":
    main()
