"""Expression fidelity against the ground truth: how well an analyzer reads the true expression of every frame
from the sensor video (S), the restored video (C) and the hidden clean video (G), on a benchmark whose
recordings carry their true per-frame AU intensities and emotion (``frames.parquet``).

Per AU, the analyzer's outputs are first put on the truth's intensity scale by an affine map fitted on the
normal recordings (per subject by default; the landmark-geometry AUs are distances, not intensities); frames
where it found no face are read as the calibration set's mean intensity. The error of a video is the mean
squared error against the truth (the calibration's own criterion; mean absolute error as an option), capped at
the error of the best constant guess per recording (its true mean, or median for absolute error): an analysis
worse than a constant carries no expression, so a restorer earns no credit for replacing noise by a still face.
"Expression recovered" is then (err(S) - err(C)) / (err(S) - err(G)): 1 for a restoration that reads like the
hidden face, 0 for one no better than the sensors, negative for one that is worse.
Emotions score the same way with accuracy capped below by the majority class. Confidence intervals come from a
hierarchical bootstrap: subjects with replacement, then blocks of consecutive frames within each subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from unveil.data.manifest import Manifest, Recording
from unveil.errors import UnveilError
from unveil.facs import BASIC_EMOTIONS, EMOTION_PROTOTYPES, au_columns
from unveil.metrics.bootstrap import hierarchical_weights, percentile_interval

Calibration = Literal["subject", "pooled", "none"]
KINDS = ("S", "C", "G")


@dataclass(frozen=True)
class FidelityOptions:
    """How the analyzer is calibrated, resampled and flagged."""

    calibration: Calibration = "subject"
    error: Literal["mse", "mae"] = "mse"  # squared error matches the least-squares calibration; floor: the mean
    exclude: tuple[str, ...] = ("AU43",)
    resamples: int = 1000
    block_seconds: float = 2.0  # frames of one block are resampled together (a video's frames are not independent)
    level: float = 0.95
    min_gap: float = 0.02  # err(S) - err(G) below this share of the floor: the sensors do not hurt, nothing to recover
    spurious: float = 0.15  # C's mean above G's by this much (calibrated AU or emotion probability): flagged
    seed: int = 0


@dataclass
class Fidelity:
    """One analyzer's expression fidelity: per AU, overall, per session, emotions and the flags."""

    analyzer: str
    aus: pd.DataFrame  # one row per AU: mae_{S,C,G}, floor, r_{S,C,G}, recovered, low, high
    overall: dict[str, float]  # err_{S,C,G}, recovered, low, high, frames, subjects
    sessions: pd.DataFrame  # per subject and session: err_{S,C,G}, recovered, failed
    spurious: pd.DataFrame  # per recording and signal where C shows what G does not: mean_C, mean_G, truth
    emotion: dict[str, float] = field(default_factory=dict)  # acc_{S,C,G}, majority, recovered, low, high, frames

    @property
    def failed(self) -> pd.DataFrame:
        """Sessions where the restoration is no closer to the true expression than the sensor video."""
        return self.sessions[self.sessions["failed"]] if len(self.sessions) else self.sessions

    def summary(self) -> dict:
        """The JSON-ready digest metrics.json keeps."""
        return {"overall": self.overall, "emotion": self.emotion,
                "aus": self.aus.set_index("au").to_dict(orient="index"),
                "sessions": self.sessions.to_dict(orient="records"),
                "spurious": self.spurious.to_dict(orient="records")}


# -- reading the truth and calibrating -------------------------------------------------------------------------

def read_truth(manifest: Manifest, rec: Recording) -> pd.DataFrame:
    """The recording's per-frame truth table (frame, time, event, AU intensities)."""
    path = manifest.resolve(rec.frames)
    if path is None or not path.is_file():
        raise UnveilError(f"Recording {rec.id} has no per-frame truth table (frames); expression fidelity needs "
                          "the synthetic benchmark or a manifest whose recordings name one.")
    return pd.read_parquet(path)


def _joined(table: pd.DataFrame, truth: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The analysed frames with their truth: predictions as ``p_<signal>`` beside the true ``<signal>``."""
    predicted = table[["frame", "face_found", *columns]].rename(columns={c: f"p_{c}" for c in columns})
    return predicted.merge(truth, on="frame", how="inner")


@dataclass(frozen=True)
class AffineMap:
    """truth ~ scale * prediction + offset, and the value read where the analyzer found no face."""

    scale: float
    offset: float
    missing: float

    def __call__(self, values: np.ndarray) -> np.ndarray:
        out = self.scale * values + self.offset
        return np.where(np.isfinite(out), out, self.missing)


def fit_calibration(normal: list[tuple[str, pd.DataFrame]], aus: list[str], mode: Calibration
                    ) -> dict[tuple[str, str], AffineMap]:
    """Per (group, AU) affine maps from the normal recordings' (subject, joined table) pairs; the group is the
    subject, or ``"*"`` for the pooled fit (always made: subjects without normal recordings fall back to it)."""
    maps: dict[tuple[str, str], AffineMap] = {("*", au): AffineMap(1.0, 0.0, 0.0) for au in aus}  # no normal data
    groups: dict[str, list[pd.DataFrame]] = {"*": [t for _, t in normal]}
    if mode == "subject":
        for subject, table in normal:
            groups.setdefault(subject, []).append(table)
    for group, tables in groups.items():
        if not tables:
            continue
        joined = pd.concat(tables, ignore_index=True)
        for au in aus:
            x, y = joined[f"p_{au}"].to_numpy(float), joined[au].to_numpy(float)
            missing = float(np.mean(y)) if len(y) else 0.0
            ok = np.isfinite(x)
            if mode == "none":
                maps[(group, au)] = AffineMap(1.0, 0.0, missing)
            elif ok.sum() >= 3 and np.std(x[ok]) > 1e-9:
                scale, offset = np.polyfit(x[ok], y[ok], 1)
                maps[(group, au)] = AffineMap(float(scale), float(offset), missing)
            else:  # the analyzer does not vary on clean faces: it says nothing about this AU
                maps[(group, au)] = AffineMap(0.0, missing, missing)
    return maps


# -- the bootstrap -------------------------------------------------------------------------------------------

def recovered(err_s: np.ndarray, err_c: np.ndarray, err_g: np.ndarray, floor: np.ndarray, min_gap: float
              ) -> np.ndarray:
    """(err(S) - err(C)) / (err(S) - err(G)); NaN where the sensors do not hurt (the gap is below ``min_gap``
    times the ``floor``, the error of the best constant guess)."""
    gap = np.asarray(err_s) - np.asarray(err_g)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > min_gap * np.asarray(floor), (np.asarray(err_s) - np.asarray(err_c)) / gap, np.nan)


# -- the whole measure ---------------------------------------------------------------------------------------

def expression_fidelity(analyzer: str, manifest: Manifest, tables: Mapping[str, pd.DataFrame],
                        options: FidelityOptions | None = None) -> Fidelity | None:
    """Fidelity of one analyzer from its time-series tables (keys ``<recording id>.<N|S|C|G>``, as the
    protocol names them); None when no occluded recording has S, C and G tables and a truth table."""
    options = options or FidelityOptions()
    occluded = [r for r in manifest.recordings if r.condition == "occluded" and r.frames
                and all(f"{r.id}.{k}" in tables for k in KINDS)]
    if not occluded:
        return None
    truths = {r.id: read_truth(manifest, r) for r in occluded}
    first = tables[f"{occluded[0].id}.S"]
    aus = [c for c in au_columns(first.columns) if c in truths[occluded[0].id] and c not in options.exclude]
    emotions = [c for c in first.columns if c in EMOTION_PROTOTYPES]
    normal = [(r.subject, _joined(tables[f"{r.id}.N"], read_truth(manifest, r), aus)) for r in manifest.recordings
              if r.condition == "normal" and r.frames and f"{r.id}.N" in tables]
    if aus and not normal and options.calibration != "none":
        raise UnveilError("Calibrating the analyzer needs normal recordings with per-frame truth; none was analysed "
                          "(or choose calibration 'none').")
    maps = fit_calibration(normal, aus, options.calibration) if aus else {}

    frames = _frame_table(occluded, truths, tables, aus, emotions, maps, options)
    au_part = _au_fidelity(frames, aus, options) if aus else (pd.DataFrame(), {}, pd.DataFrame())
    emotion = _emotion_fidelity(frames, emotions, options) if emotions else {}
    spurious = _spurious(frames, aus + emotions, options.spurious)
    return Fidelity(analyzer, au_part[0], au_part[1], au_part[2], spurious, emotion)


def _frame_table(recordings: list[Recording], truths: dict[str, pd.DataFrame], tables: Mapping[str, pd.DataFrame],
                 aus: list[str], emotions: list[str], maps: dict[tuple[str, str], AffineMap],
                 options: FidelityOptions) -> pd.DataFrame:
    """One row per frame analysed in S, C and G: the truth, the calibrated predictions ``S_AU12``, ... and the
    predicted emotion ``S_emotion`` (None without a face), with the block the bootstrap draws it in."""
    parts = []
    for rec in recordings:
        truth = truths[rec.id][["frame", "time", "event", *aus]]
        signals = aus + emotions
        merged = truth
        for kind in KINDS:
            table = tables[f"{rec.id}.{kind}"][["frame", "face_found", *signals]]
            merged = merged.merge(table.rename(columns={c: f"{kind}_{c}" for c in ["face_found", *signals]}),
                                  on="frame", how="inner")
        for kind in KINDS:
            for au in aus:
                calibrate = maps.get((rec.subject, au)) or maps[("*", au)]
                merged[f"{kind}_{au}"] = calibrate(merged[f"{kind}_{au}"].to_numpy(float))
            if emotions:
                probabilities = merged[[f"{kind}_{e}" for e in emotions]].to_numpy(float)
                best = np.nanargmax(np.where(np.isfinite(probabilities), probabilities, -1.0), axis=1)
                found = merged[f"{kind}_face_found"].to_numpy(bool) & np.isfinite(probabilities).all(axis=1)
                merged[f"{kind}_emotion"] = np.where(found, np.array(emotions, dtype=object)[best], None)
        merged.insert(0, "recording", rec.id)
        merged.insert(1, "subject", rec.subject)
        merged.insert(2, "session", rec.session)
        merged.insert(3, "task", rec.task)
        merged["block"] = rec.id + ":" + (merged["time"] // options.block_seconds).astype(int).astype(str)
        parts.append(merged)
    return pd.concat(parts, ignore_index=True)


def _block_sums(frames: pd.DataFrame, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                                np.ndarray]:
    """Per-block frame counts and sums of each per-frame array; the subject of each block."""
    codes, blocks = pd.factorize(frames["block"])
    counts = np.bincount(codes, minlength=len(blocks)).astype(float)
    sums = {}
    for name, values in columns.items():
        values = values.reshape(len(frames), -1)
        sums[name] = np.stack([np.bincount(codes, values[:, j], len(blocks)) for j in range(values.shape[1])], 1)
    subject = frames.groupby(codes)["subject"].first().to_numpy()
    return counts, sums, subject


def _au_fidelity(frames: pd.DataFrame, aus: list[str], options: FidelityOptions
                 ) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame]:
    truth = frames[aus].to_numpy(float)
    predicted = {k: frames[[f"{k}_{a}" for a in aus]].to_numpy(float) for k in KINDS}
    errors = {k: _loss(predicted[k] - truth, options.error) for k in KINDS}
    errors["floor"] = _loss(truth - _best_constant(truth, options.error, frames["recording"]), options.error)

    def capped(sums: dict[str, np.ndarray], count: np.ndarray | float) -> dict[str, np.ndarray]:
        mae = {k: v / np.expand_dims(count, -1) for k, v in sums.items()}
        return {**{k: np.minimum(mae[k], mae["floor"]) for k in KINDS}, "floor": mae["floor"], "raw": mae}

    point = capped({k: v.sum(0) for k, v in errors.items()}, float(len(frames)))
    counts, sums, subjects = _block_sums(frames, errors)
    weights = hierarchical_weights(subjects, options.resamples, options.seed)
    boot = capped({k: weights @ v for k, v in sums.items()}, weights @ counts)

    per_au = recovered(point["S"], point["C"], point["G"], point["floor"], options.min_gap)
    boot_au = recovered(boot["S"], boot["C"], boot["G"], boot["floor"], options.min_gap)
    rows = []
    for j, au in enumerate(aus):
        low, high = (percentile_interval(boot_au[:, j], options.level) if np.isfinite(per_au[j])
                     else (np.nan, np.nan))
        row = {"au": au, **{f"mae_{k}": float(np.abs(predicted[k][:, j] - truth[:, j]).mean()) for k in KINDS},
               **{f"err_{k}": float(point["raw"][k][j]) for k in KINDS}, "floor": float(point["floor"][j]),
               **{f"r_{k}": _pearson(frames[f"{k}_{au}"].to_numpy(float), truth[:, j]) for k in KINDS},
               "recovered": float(per_au[j]), "low": low, "high": high}
        rows.append(row)
    overall_point = {k: float(point[k].mean()) for k in (*KINDS, "floor")}
    overall_boot = {k: boot[k].mean(axis=1) for k in (*KINDS, "floor")}
    value = float(recovered(*(overall_point[k] for k in (*KINDS, "floor")), options.min_gap))
    boot_overall = recovered(*(overall_boot[k] for k in (*KINDS, "floor")), options.min_gap)
    low, high = percentile_interval(boot_overall, options.level) if np.isfinite(value) else (np.nan, np.nan)
    overall = {**{f"err_{k}": overall_point[k] for k in KINDS}, "floor": overall_point["floor"],
               "error": options.error, "recovered": value, "low": low, "high": high, "frames": int(len(frames)),
               "subjects": int(frames["subject"].nunique()), "level": options.level}

    sessions = []
    for (subject, session), part in frames.groupby(["subject", "session"], sort=True):
        index = part.index.to_numpy()
        local_errors = {k: errors[k][index] for k in KINDS}
        local_errors["floor"] = errors["floor"][index]
        local = capped({k: v.sum(0) for k, v in local_errors.items()}, float(len(index)))
        err = {k: float(local[k].mean()) for k in (*KINDS, "floor")}
        sessions.append({"subject": subject, "session": session, **{f"err_{k}": err[k] for k in KINDS},
                         "recovered": float(recovered(err["S"], err["C"], err["G"], err["floor"], options.min_gap)),
                         "failed": bool(err["C"] >= err["S"] * (1 - 1e-9))})  # equal up to rounding: failed
    return pd.DataFrame(rows), overall, pd.DataFrame(sessions)


def _emotion_fidelity(frames: pd.DataFrame, emotions: list[str], options: FidelityOptions) -> dict[str, float]:
    """Accuracy of the top emotion on the frames that show one the analyzer knows (emotion tasks only)."""
    shows_emotion = frames.groupby("recording")["event"].transform(lambda e: e.isin(BASIC_EMOTIONS).any())
    chosen = frames[shows_emotion & frames["event"].isin(emotions)].reset_index(drop=True)
    if chosen.empty:
        return {}
    truth = chosen["event"].to_numpy(object)
    hits = {k: (chosen[f"{k}_emotion"].to_numpy(object) == truth).astype(float) for k in KINDS}
    majority = float(pd.Series(truth).value_counts(normalize=True).iloc[0])
    counts, sums, subjects = _block_sums(chosen, hits)
    weights = hierarchical_weights(subjects, options.resamples, options.seed + 1)
    point = {k: max(float(v.mean()), majority) for k, v in hits.items()}
    boot = {k: np.maximum((weights @ sums[k])[:, 0] / (weights @ counts), majority) for k in KINDS}
    # accuracy rises where error falls: the same ratio on 1 - accuracy
    value = float(recovered(1 - point["S"], 1 - point["C"], 1 - point["G"], 1 - majority, options.min_gap))
    low, high = percentile_interval(recovered(1 - boot["S"], 1 - boot["C"], 1 - boot["G"], 1 - majority,
                                              options.min_gap), options.level)
    return {**{f"acc_{k}": float(v.mean()) for k, v in hits.items()}, "majority": majority, "recovered": value,
            "low": low, "high": high, "frames": int(len(chosen)), "level": options.level}


def _spurious(frames: pd.DataFrame, signals: list[str], threshold: float) -> pd.DataFrame:
    """Recordings where C's mean of a signal exceeds G's by more than ``threshold``: C holds an expression the
    hidden face does not (a constant smile, closed eyes)."""
    rows = []
    for rec, part in frames.groupby("recording", sort=True):
        for signal in signals:
            c, g = np.nanmean(part[f"C_{signal}"]), np.nanmean(part[f"G_{signal}"])
            if np.isfinite(c) and np.isfinite(g) and c - g > threshold:
                rows.append({"recording": rec, "subject": part["subject"].iloc[0], "session": part["session"].iloc[0],
                             "signal": signal, "mean_C": float(c), "mean_G": float(g),
                             "truth": float(part[signal].mean()) if signal in part else float("nan")})
    return pd.DataFrame(rows, columns=["recording", "subject", "session", "signal", "mean_C", "mean_G", "truth"])


def _loss(difference: np.ndarray, error: str) -> np.ndarray:
    return difference**2 if error == "mse" else np.abs(difference)


def _best_constant(truth: np.ndarray, error: str, recording: pd.Series) -> np.ndarray:
    """Per frame, the constant guess with the least error over its recording, per AU: the recording's mean for
    squared error, its median for absolute. Per recording, because a face held still in each video (one frame
    of it, repeated) would otherwise earn credit for knowing each video's average expression."""
    frame = pd.DataFrame(truth).groupby(recording.to_numpy())
    return (frame.transform("mean") if error == "mse" else frame.transform("median")).to_numpy()


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) < 1e-12 or np.std(y[ok]) < 1e-12:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def expression_lines(fidelities: Mapping[str, Fidelity]) -> list[str]:
    """One line per analyzer for the terminal: expression recovered with its interval, and the failures."""
    lines = []
    for name, f in fidelities.items():
        o, e = f.overall, f.emotion
        text = f"{name}: expression recovered {_share(o.get('recovered'), o.get('low'), o.get('high'))}" if o else name
        if e:
            text += (f"; emotions {_share(e['recovered'], e['low'], e['high'])} (accuracy S {e['acc_S']:.0%}, "
                     f"C {e['acc_C']:.0%}, G {e['acc_G']:.0%})")
        lines.append(text)
        lines.extend(f"  FAILED: subject {r.subject} session {r.session}: C no closer to the true expression than S"
                     for r in f.failed.itertuples())
        lines.extend(f"  FLAG: {r.recording} shows {r.signal} {r.mean_C:.2f} in C, {r.mean_G:.2f} in G"
                     for r in f.spurious.itertuples())
    return lines


def _share(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a (the sensors do not hurt this analysis)"
    return f"{value:.0%} [{low:.0%}, {high:.0%}]" if low is not None and np.isfinite(low) else f"{value:.0%}"
