"""``unveil experiment deocclusion``: seed 001's table. How well does an expression judge read faces that an
occluder hides, (A) as they are, (B) restored by the de-occluder trained without L_expr, (C) restored by the full
model, and restored by pix2pix and CycleGAN, against the clean faces (the ceiling)?

The data is any prepared folder with emotion labels: a labelled photo folder (``unveil prepare faces/``, split by
identity, its ``test`` split held out) or the benchmark (``test_subjects`` held out). Every test face is occluded
``per_image`` times (seed 001's four; one of ``occluders`` each, drawn with a seed training never uses). Every
trained arm gets the same wall-clock budget at a constant learning rate on the other people's faces. Scores come
from two judges: the one in C's loss and one that was not (unveil's own classifier trained on the training
people, unless a checkpoint is given), so that C cannot win by fooling its own judge. Predictions are the judge's
most likely class among the data set's classes; accuracy, macro-F1 and confusion matrices per arm and judge.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from unveil.config import Config
from unveil.data.datasets import emotion_names, load_image, load_samples
from unveil.data.faces import square_resize
from unveil.data.pairs import check_occluders, crop_landmarks, synthesize_occlusion
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_image_atomic, write_text_atomic
from unveil.methods.paired import emotion_classes
from unveil.metrics.bootstrap import group_mean_interval
from unveil.progress import progress_bar

#: The trained arms: method, preset and model options (beyond the shared data options) of each.
TRAINED_ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "deoccluder-pixel": ("deoccluder", {"lambda_expr": 0.0}),
    "deoccluder": ("deoccluder", {}),
    "deoccluder-clean": ("deoccluder", {"expr_target": "clean"}),
    "pix2pix": ("pix2pix", {}),
    "cyclegan": ("cyclegan", {}),
}
#: How the table names every arm (seed 001's letters where it has them).
ARM_NAMES: dict[str, str] = {
    "clean": "clean faces (ceiling)",
    "occluded": "(A) occluded, no restoration",
    "deoccluder-pixel": "(B) de-occluder without L_expr",
    "deoccluder": "(C) de-occluder with L_expr",
    "deoccluder-clean": "(C') L_expr toward the judge's reading of the clean face",
    "pix2pix": "pix2pix",
    "cyclegan": "CycleGAN",
}


#: Column titles of the figures.
SHORT_NAMES: dict[str, str] = {"clean": "clean (ceiling)", "occluded": "(A) occluded", "deoccluder-pixel":
                               "(B) without L_expr", "deoccluder": "(C) with L_expr",
                               "deoccluder-clean": "(C') L_expr, clean target", "pix2pix": "pix2pix",
                               "cyclegan": "CycleGAN"}


class DeocclusionConfig(Config):
    """Options of ``unveil experiment deocclusion``."""

    samples: str | None = Field(default=None, description="A prepared folder whose faces carry emotion labels "
                                                          "(default: the benchmark's emotion protocol, made here).")
    test_subjects: list[str] | None = Field(default=None, description="People held out for testing (default: the "
                                                                      "'test' split of a labelled photo folder; the "
                                                                      "last person of the default benchmark).")
    occluders: str = Field(default="sensors,patch,mask,glasses,hand", description="Occluders drawn on training and "
                                                                                  "test faces (comma-separated).")
    per_image: int = Field(default=4, ge=1, description="Occluded copies of every face (seed 001: 4).")
    size: int = Field(default=64, ge=32, description="Side of the faces the restorers and judges work on (a multiple "
                                                     "of 64).")
    judge: str = Field(default="fer", description="The judge in C's loss: fer, its .hdf5, or a classifier checkpoint.")
    scorer: str | None = Field(default=None, description="The independent judge (a classifier checkpoint); default: "
                                                         "trained here on the training people.")
    methods: list[str] = Field(default_factory=lambda: ["deoccluder-pixel", "deoccluder", "pix2pix", "cyclegan"],
                               description="Trained arms: " + ", ".join(TRAINED_ARMS))
    minutes: float = Field(default=20.0, gt=0, description="Wall-clock training minutes of every trained arm.")
    lambda_expr: float = Field(default=1.0, gt=0, description="C's L_expr weight.")
    batch_size: int = Field(default=4, ge=1)
    seed: int = Field(default=0, ge=0)
    device: str = Field(default="auto", description="auto, cpu or cuda.")
    examples: int = Field(default=8, ge=1, description="Test faces in the example grid.")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in TRAINED_ARMS]
        if unknown:
            raise ValueError(f"unknown arm '{unknown[0]}'; choose from {', '.join(TRAINED_ARMS)}")
        return methods

    @field_validator("size")
    @classmethod
    def _multiple_of_64(cls, size: int) -> int:
        if size % 64:
            raise ValueError(f"the face size must be a multiple of 64 (the U-Nets halve it six times), not {size}")
        return size

    @property
    def occluder_list(self) -> list[str]:
        return check_occluders([o.strip() for o in self.occluders.split(",") if o.strip()])


@dataclass
class DeocclusionResult:
    """Scores per arm and judge, the confusion matrices, and the files written."""

    table: pd.DataFrame  # arm, name, judge, accuracy (low, high: 95 % interval over photos), macro_f1, faces
    classes: list[str]
    confusion: dict[str, np.ndarray] = field(default_factory=dict)  # "arm/judge" -> (true, predicted) counts
    differences: pd.DataFrame = field(default_factory=pd.DataFrame)  # arm - baseline accuracy, paired, with interval
    files: dict[str, Path] = field(default_factory=dict)


#: The default data: the benchmark's emotion protocol (six basic emotions and neutral, two rounds) of three people,
#: normal recordings only (the occluders are drawn here), 30 % of the frames cut at 128 px; the last person is
#: held out for testing.
DEFAULT_BENCHMARK: dict[str, Any] = {"subjects": 3, "sessions": 1, "normal_takes": 1, "occluded_takes": 0,
                                     "tasks": ["emotion"], "size": 128}


def default_benchmark(folder: Path, seed: int, progress: bool = True) -> tuple[Path, list[str]]:
    """The benchmark's emotion protocol, synthesised and prepared under ``folder`` (reused when complete); the
    prepared folder and the people to hold out."""
    from unveil.data.manifest import load_manifest
    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.synth import SynthConfig, generate

    prepared = folder / "prepared"
    if not (prepared / "samples.parquet").is_file():
        manifest_path = folder / "synth" / "manifest.yaml"
        manifest = (load_manifest(manifest_path) if manifest_path.is_file() else
                    generate(SynthConfig(**DEFAULT_BENCHMARK, seed=seed), folder / "synth", progress=progress))
        prepare(manifest, prepared, PrepareConfig(fraction=0.3, load_size=128, seed=seed), progress=progress)
    subjects = sorted(load_samples(prepared)[0]["subject"].unique())
    return prepared, subjects[-1:]


def split_people(table: pd.DataFrame, config: DeocclusionConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, labelled test rows): the test people are ``test_subjects`` or the 'test' split."""
    if config.test_subjects:
        unknown = sorted(set(config.test_subjects) - set(table["subject"]))
        if unknown:
            raise UnveilError(f"The samples have no subject {', '.join(unknown)}.")
        held_out = table["subject"].isin(config.test_subjects)
    else:
        held_out = table["split"] == "test"
        if not held_out.any():
            raise UnveilError("The samples have no 'test' split; prepare a labelled photo folder (split by identity) "
                              "or name the people to hold out with --test-subject.")
    test = table[held_out & emotion_names(table).notna()]
    train = table[~held_out & table["split"].isin(["train", "val"])]
    if test.empty:
        raise UnveilError("The held-out people have no faces with an emotion label to score.")
    if train.empty:
        raise UnveilError("No faces are left to train on after holding out the test people.")
    return train, test


def absolute_images(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """``table`` with absolute image paths, so that it can be saved in another folder."""
    paths = [str((root / p).resolve()) if isinstance(p, str) else p for p in table["image"]]
    return table.assign(image=paths).reset_index(drop=True)


def write_samples(table: pd.DataFrame, folder: Path) -> Path:
    ensure_dir(folder)
    with atomic_path(folder / "samples.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    return folder


def make_test_set(test: pd.DataFrame, root: Path, config: DeocclusionConfig, folder: Path,
                  progress: bool = True) -> pd.DataFrame:
    """Occluded copies of every test face (``per_image`` each, seeded apart from training), at ``size``:
    ``folder/{occluded,clean,mask}/NNNNNN.png`` and ``folder/test.parquet`` (written last: its presence means the
    set is complete, and a rerun reuses it)."""
    index_path = folder / "test.parquet"
    if index_path.is_file():
        return pd.read_parquet(index_path)
    points = crop_landmarks(root, test["image"].tolist(), progress)
    names = emotion_names(test)
    occluders, rows = config.occluder_list, []
    with progress_bar(len(test) * config.per_image, "occlude the test faces", progress) as advance:
        for i, (row, emotion) in enumerate(zip(test.itertuples(index=False), names, strict=True)):
            clean = load_image(root / row.image)
            for copy in range(config.per_image):
                rng = np.random.default_rng([config.seed, 1_000_003, i, copy])  # never a training draw
                kind = occluders[int(rng.integers(len(occluders)))]
                occluded, mask = synthesize_occlusion(clean, points[i], kind, rng, patch_level=copy % 4 + 1)
                name = f"{len(rows):06d}.png"
                for sub, image in (("occluded", occluded), ("clean", clean), ("mask", mask)):
                    write_image_atomic(folder / sub / name, square_resize(image, config.size))
                rows.append({"item": name, "source": row.image, "subject": row.subject, "emotion": emotion,
                             "occluder": kind, "copy": copy, "coverage": float((mask > 0).mean())})
                advance(1)
    table = pd.DataFrame(rows)
    with atomic_path(index_path) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def cyclegan_samples(train: pd.DataFrame, config: DeocclusionConfig, folder: Path, progress: bool = True) -> Path:
    """CycleGAN's unpaired domains: the training faces (normal) and one occluded copy of each (occluded), written
    as images, since CycleGAN reads its two domains from files."""
    if (folder / "samples.parquet").is_file():
        return folder
    points = crop_landmarks(folder.parent / "data", train["image"].tolist(), progress)
    occluders, rows = config.occluder_list, []
    with progress_bar(len(train), "occlude the training faces for CycleGAN", progress) as advance:
        for i, row in enumerate(train.itertuples(index=False)):
            rng = np.random.default_rng([config.seed, 2_000_003, i])
            clean = load_image(Path(row.image))
            occluded, _ = synthesize_occlusion(clean, points[i], occluders[int(rng.integers(len(occluders)))], rng,
                                               patch_level=int(rng.integers(1, 5)))
            path = folder / "occluded" / f"{i:06d}.png"
            write_image_atomic(path, occluded)
            rows.append({**row._asdict(), "image": str(path.resolve()), "condition": "occluded"})
            advance(1)
    return write_samples(pd.concat([train, pd.DataFrame(rows)], ignore_index=True), folder)


def arm_config(arm: str, config: DeocclusionConfig) -> Any:
    """The TrainConfig of a trained arm: its method's cpu preset, the shared data options, the time budget at a
    constant learning rate (many epochs, no decay, stopped by the time limit)."""
    from unveil.train.config import resolve_train_config

    method, model = TRAINED_ARMS[arm]
    unet = {64: "unet_64", 128: "unet_128"}.get(config.size, "unet_256")
    shared: dict[str, Any] = {}
    if method in ("deoccluder", "pix2pix"):
        shared = {"netG": unet, "pairs": "synthesized", "occluders": config.occluders, "per_image": config.per_image}
    if method == "deoccluder":
        shared |= {"lambda_expr": config.lambda_expr, "expr_judge": config.judge}
    loop = {"n_epochs": 10_000, "n_epochs_decay": 0, "time_limit": config.minutes, "load_size": config.size * 9 // 8,
            "crop_size": config.size, "batch_size": config.batch_size, "seed": config.seed, "device": config.device,
            "save_epoch_freq": 10_000}
    return resolve_train_config(method, preset="cpu", config={**loop, "model": {**shared, **model}})


def train_arm(arm: str, samples: Path, run: Path, config: DeocclusionConfig, progress: bool = True) -> Path:
    """Train one arm for its budget (continuing an interrupted one); its latest checkpoint."""
    from unveil.train.loop import train

    done = run / "done.json"
    if not done.is_file():
        result = train(samples, run, arm_config(arm, config), resume=True, progress=progress)
        write_text_atomic(done, json.dumps({"epochs": result.epochs, "history": result.history[-1:]}, indent=1))
    return run / "checkpoints" / "latest.safetensors"


def restore_test(checkpoint: Path, test: pd.DataFrame, folder: Path, out: Path, config: DeocclusionConfig,
                 progress: bool = True) -> None:
    """The arm's restorer on every occluded test face -> ``out/NNNNNN.png``."""
    from unveil.methods.registry import load_restorer
    from unveil.restorers import FrameContext

    if (out / "complete").is_file():
        return
    restorer = load_restorer(checkpoint, config.device)
    items = test["item"].tolist()
    with progress_bar(len(items), f"restore with {out.name}", progress) as advance:
        for start in range(0, len(items), 32):
            names = items[start:start + 32]
            crops = [square_resize(load_image(folder / "occluded" / n), restorer.size) for n in names]
            for name, image in zip(names, restorer(crops, [FrameContext(0)] * len(crops)), strict=True):
                write_image_atomic(out / name, square_resize(image, config.size))
            advance(len(names))
    write_text_atomic(out / "complete", restorer.describe() + "\n")


@torch.no_grad()
def judge_predictions(judge: Any, images: list[Path], classes: list[str], device: torch.device,
                      batch: int = 64) -> np.ndarray:
    """Index into ``classes`` of the judge's most likely class among them, per image."""
    index = torch.tensor([judge.emotions.index(c) for c in classes], device=device)
    judge.to(device)
    predicted = []
    for start in range(0, len(images), batch):
        batch_images = np.stack([load_image(p) for p in images[start:start + batch]])
        tensors = torch.from_numpy(batch_images).permute(0, 3, 1, 2).float() / 127.5 - 1
        logits = judge(tensors.to(device))["emotion"][:, index]
        predicted.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(predicted)


def run_deocclusion(config: DeocclusionConfig, out: str | os.PathLike[str], progress: bool = True
                    ) -> DeocclusionResult:
    """The whole experiment into ``out``; reruns reuse what is complete (test set, scorer, trained arms)."""
    from sklearn.metrics import confusion_matrix, f1_score

    from unveil.devices import select_device
    from unveil.methods.expression import load_judge

    folder = ensure_dir(out)
    if config.samples is None:
        samples, held_out = default_benchmark(folder / "benchmark", config.seed, progress)
        config = config.model_copy(update={"samples": str(samples), "test_subjects": config.test_subjects or held_out})
    table, root = load_samples(config.samples)
    train_rows, test_rows = split_people(table, config)
    classes = emotion_classes(emotion_names(table))  # the data set's classes, whatever the test people show
    judges = {"fer" if config.judge == "fer" else Path(config.judge).stem: config.judge}
    check_judge(config.judge, classes, config)  # before any work
    data = write_samples(absolute_images(train_rows, root), folder / "data")
    test = make_test_set(test_rows, root, config, folder / "test", progress)
    judges["scorer"] = config.scorer or str(train_scorer(data, folder / "scorer", config, progress))
    check_judge(judges["scorer"], classes, config)
    images = {"clean": [folder / "test" / "clean" / n for n in test["item"]],
              "occluded": [folder / "test" / "occluded" / n for n in test["item"]]}
    described = {}
    for arm in config.methods:
        samples = cyclegan_samples(absolute_images(train_rows, root), config, folder / "cyclegan-data", progress) \
            if arm == "cyclegan" else data
        checkpoint = train_arm(arm, samples, folder / "runs" / arm, config, progress)
        restore_test(checkpoint, test, folder / "test", folder / "restored" / arm, config, progress)
        described[arm] = (folder / "restored" / arm / "complete").read_text().strip()
        images[arm] = [folder / "restored" / arm / n for n in test["item"]]
    truth = np.array([classes.index(e) for e in test["emotion"]])
    photos = pd.factorize(test["source"])[0]
    device = select_device(config.device)
    rows, confusion, predictions, hits = [], {}, [], {}
    for judge_name, spec in judges.items():
        judge = load_judge(spec)
        for arm, paths in images.items():
            predicted = judge_predictions(judge, paths, classes, device)
            correct = hits[arm, judge_name] = predicted == truth
            low, high = group_mean_interval(correct, photos, seed=config.seed)
            rows.append({"arm": arm, "name": ARM_NAMES[arm], "judge": judge_name,
                         "accuracy": float(correct.mean()), "low": low, "high": high,
                         "macro_f1": float(f1_score(truth, predicted, average="macro", labels=range(len(classes)))),
                         "faces": len(truth)})
            confusion[f"{arm}/{judge_name}"] = confusion_matrix(truth, predicted, labels=range(len(classes)))
            predictions.append(test.assign(judge=judge_name, arm=arm, predicted=[classes[i] for i in predicted]))
    differences = []
    for (arm, judge_name), correct in hits.items():
        for baseline in ("occluded", "deoccluder-pixel"):
            if arm in ("clean", "occluded", baseline) or (baseline, judge_name) not in hits:
                continue
            gain = correct.astype(float) - hits[baseline, judge_name]
            low, high = group_mean_interval(gain, photos, seed=config.seed)
            differences.append({"arm": arm, "baseline": baseline, "judge": judge_name, "difference": float(gain.mean()),
                                "low": low, "high": high})
    result = DeocclusionResult(pd.DataFrame(rows), classes, confusion, differences=pd.DataFrame(differences))
    with atomic_path(folder / "predictions.parquet") as tmp:
        pd.concat(predictions, ignore_index=True).to_parquet(tmp, index=False)
    result.files = write_results(result, test, images, described, config, folder)
    result.files["predictions"] = folder / "predictions.parquet"
    return result


def check_judge(spec: str, classes: list[str], config: DeocclusionConfig) -> None:
    """One sentence when the judge ``spec`` does not know an emotion the labels use."""
    from unveil.methods.expression import load_judge

    known = load_judge(spec).emotions
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise UnveilError(f"The judge {spec} does not know the emotion '{unknown[0]}' that the labels of "
                          f"{Path(config.samples) / 'samples.parquet'} use; it reads {', '.join(known)}.")


def train_scorer(data: Path, run: Path, config: DeocclusionConfig, progress: bool = True) -> Path:
    """The independent judge: unveil's classifier (cpu preset) trained on the training people's labelled faces."""
    from unveil.train.config import resolve_train_config
    from unveil.train.loop import train

    checkpoint = run / "checkpoints" / "latest.safetensors"
    if not (run / "done.json").is_file():
        options = resolve_train_config("classifier", preset="cpu", config={"seed": config.seed,
                                                                             "device": config.device})
        result = train(data, run, options, resume=True, progress=progress)
        write_text_atomic(run / "done.json", json.dumps({"history": result.history[-1:]}, indent=1))
    return checkpoint


def score_lines(result: DeocclusionResult) -> list[str]:
    """The table as text: one line per arm, accuracy and macro-F1 under each judge, then the paired differences."""
    judges = list(dict.fromkeys(result.table["judge"]))
    lines = [f"{'':28s}" + "".join(f"{j[:12]:>14s} acc  F1" for j in judges)]
    for arm in dict.fromkeys(result.table["arm"]):
        part = result.table[result.table["arm"] == arm].set_index("judge")
        cells = "".join(f"{part.loc[j, 'accuracy']:>18.1%} {part.loc[j, 'macro_f1']:.2f}" for j in judges)
        lines.append(f"{SHORT_NAMES[arm]:28s}{cells}")
    lines += [f"{SHORT_NAMES[d.arm]} - {SHORT_NAMES[d.baseline]} ({d.judge}): {100 * d.difference:+.1f} points of "
              f"accuracy [{100 * d.low:+.1f}, {100 * d.high:+.1f}]" for d in result.differences.itertuples()]
    return lines


def write_results(result: DeocclusionResult, test: pd.DataFrame, images: dict[str, list[Path]],
                  described: dict[str, str], config: DeocclusionConfig, folder: Path) -> dict[str, Path]:
    """deocclusion.json, table.csv / table.md, confusion.png and examples.png."""
    from unveil.evaluate.figures import _pyplot, _save

    files = {"json": folder / "deocclusion.json", "csv": folder / "table.csv", "markdown": folder / "table.md",
             "confusion": folder / "confusion.png", "examples": folder / "examples.png"}
    summary = {"options": config.model_dump(mode="json"), "classes": result.classes, "restorers": described,
               "test_faces": int(test["source"].nunique()), "test_items": len(test),
               "occluders": test["occluder"].value_counts().to_dict(),
               "scores": result.table.to_dict(orient="records"),
               "differences": result.differences.to_dict(orient="records"),
               "confusion": {k: v.tolist() for k, v in result.confusion.items()}}
    write_text_atomic(files["json"], json.dumps(summary, indent=1))
    with atomic_path(files["csv"]) as tmp:
        result.table.to_csv(tmp, index=False)
    judges = list(dict.fromkeys(result.table["judge"]))
    header = "| arm | " + " | ".join(f"{j} accuracy [95 %] | {j} macro-F1" for j in judges) + " |"
    lines = [header, "|---|" + "---:|" * (2 * len(judges))]
    for arm in dict.fromkeys(result.table["arm"]):
        part = result.table[result.table["arm"] == arm].set_index("judge")
        cells = " | ".join(f"{part.loc[j, 'accuracy']:.1%} [{part.loc[j, 'low']:.1%}, {part.loc[j, 'high']:.1%}] | "
                           f"{part.loc[j, 'macro_f1']:.3f}" for j in judges)
        lines.append(f"| {ARM_NAMES[arm]} | {cells} |")
    lines += ["", f"{len(test)} occluded test faces ({test['source'].nunique()} photos x {config.per_image}); "
              f"classes: {', '.join(result.classes)}; intervals resample photos (their copies together).", ""]
    lines += [f"- {SHORT_NAMES[d.arm]} - {SHORT_NAMES[d.baseline]}, {d.judge}: {100 * d.difference:+.1f} points "
              f"[{100 * d.low:+.1f}, {100 * d.high:+.1f}]" for d in result.differences.itertuples()]
    write_text_atomic(files["markdown"], "\n".join(lines) + "\n")

    plt = _pyplot()
    arms = list(images)
    figure, axes = plt.subplots(len(judges), len(arms), figsize=(2.3 * len(arms), 2.5 * len(judges)), squeeze=False)
    for r, judge in enumerate(judges):
        for c, arm in enumerate(arms):
            counts = result.confusion[f"{arm}/{judge}"].astype(float)
            share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
            ax = axes[r][c]
            ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(len(result.classes)), [n[:3] for n in result.classes], fontsize=7)
            ax.set_yticks(range(len(result.classes)), [n[:3] for n in result.classes], fontsize=7)
            accuracy = result.table[(result.table["arm"] == arm) & (result.table["judge"] == judge)]["accuracy"]
            ax.set_title(f"{SHORT_NAMES[arm]}\n{judge}: {float(accuracy.iloc[0]):.0%}", fontsize=7)
    figure.suptitle("Confusion (rows: true class, shares per row; columns: predicted)", fontsize=9)
    _save(figure, files["confusion"])

    picks = _example_items(test, config.examples)
    figure, axes = plt.subplots(len(picks), len(arms), figsize=(1.3 * len(arms), 1.35 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        for c, arm in enumerate(["occluded", *[a for a in arms if a not in ("occluded", "clean")], "clean"]):
            ax = axes[r][c]
            ax.imshow(load_image(images[arm][i]))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(SHORT_NAMES[arm], fontsize=6)
            if c == 0:
                ax.set_ylabel(f"{test['emotion'].iloc[i]}\n{test['occluder'].iloc[i]}", fontsize=6)
    _save(figure, files["examples"])
    return files


def _example_items(test: pd.DataFrame, count: int) -> list[int]:
    """Test items for the example grid: a spread over occluders and emotions, one per photo."""
    picks, seen = [], set()
    for key in ("occluder", "emotion"):
        for _, group in test.groupby(key, sort=True):
            for i in group.index:
                if test.loc[i, "source"] not in seen:
                    picks.append(int(i))
                    seen.add(test.loc[i, "source"])
                    break
            if len(picks) >= count:
                return picks
    return picks[:count]
