"""Restore and evaluate a finished demo again with other mask settings, the trained networks unchanged: the rows
of the README's exemplar-check table.

    python benchmarks/demo_masks.py demo-output OUT                                        # the demo's own settings
    python benchmarks/demo_masks.py demo-output OUT --set exemplar_check=0.08 --set exemplar_check_by=fill  # the fill
    python benchmarks/demo_masks.py demo-output OUT --set exemplar_check=0 --composite none     # the demo before
    python benchmarks/demo_masks.py demo-output OUT --true-crop-mask --composite restorer  # a measurement only
    python benchmarks/demo_masks.py demo-output OUT --set exemplar_regions=8   # neighbours per cell of an 8 x 8 grid

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
from unveil.methods.registry import parse_settings
from unveil.restore import restore_recordings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="a finished 'unveil demo' output folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a restore-time option in place of the checkpoint's, as 'unveil restore --set' "
                             "(e.g. exemplar_check=0.08, exemplar_check_by=fill, exemplar_regions=8)")
    parser.add_argument("--composite", default="restorer", choices=["none", "restorer", "difference"])
    parser.add_argument("--true-crop-mask", action="store_true")
    args = parser.parse_args()

    import unveil.restore as restoring

    manifest = load_manifest(args.demo / "benchmark" / "manifest.yaml")
    protocol = demo_protocol(manifest)
    masks = {str(manifest.resolve(r.media)): manifest.resolve(r.mask) for r in manifest.recordings if r.mask}
    plain_restore, plain_occlusion = restoring.restore, restoring.frame_occlusion

    def restore(restorer, source, target, **options):  # noqa: ANN001, ANN003, ANN202 - restore's own arguments
        if args.true_crop_mask:
            restorer.generator.mask_input, restorer.generator.grow = "given", 1
            options["mask"] = masks[str(source)]
        return plain_restore(restorer, source, target, **options)

    def outside_by_network(restorer, image, transform, hidden, reference=None):  # noqa: ANN001, ANN202
        return plain_occlusion(restorer, image, transform, None, reference)  # never the true mask beyond the box

    restoring.restore, restoring.frame_occlusion = restore, outside_by_network
    restore_recordings(protocol, args.demo / "runs", args.out / "restored", args.demo / "prepared",
                       composite=args.composite, options=parse_settings(args.set), progress=True)
    config = DEMO_EVALUATE.model_copy(update={
        "forest": str(args.demo / "models" / "forest.safetensors"), "samples": str(args.demo / "prepared"),
        "cnn": str(args.demo / "models" / "cnn" / "checkpoints" / "latest.safetensors")})
    result = evaluate(protocol, args.out / "evaluation", args.out / "restored", config, progress=True)
    print(headline(result))
    for line in expression_lines(result.fidelity):
        print(" ", line)


if __name__ == "__main__":
    main()
