"""Figures of the evaluation: a signal over time for N, S, C (and the hidden truth G), like seed 000's Fig. 6 / 7,
and the per-pair distances as bars. PNG, written atomically, matplotlib without a display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from unveil.data.manifest import Manifest, Recording
from unveil.files import atomic_path
from unveil.metrics.series import SeriesOptions, best_shift_mape, prepare_series

COLOURS = {"N": "#1b7837", "S": "#d6604d", "C": "#2166ac", "G": "#7f7f7f"}
LABELS = {"N": "normal (N1)", "S": "sensor (S1)", "C": "clean (C1, restored)", "G": "hidden truth of S1"}


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:  # noqa: ANN001 - a matplotlib figure
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def _first_session(recs: list[Recording]) -> tuple[Recording | None, Recording | None]:
    """The first normal and the first occluded recording of the earliest session among ``recs``."""
    first = min((r.session for r in recs), default=None)
    normal = next((r for r in recs if r.session == first and r.condition == "normal"), None)
    occluded = next((r for r in recs if r.session == first and r.condition == "occluded"), None)
    return normal, occluded


def signal_over_time(manifest: Manifest, tables: dict[str, pd.DataFrame], signal: str, analyzer: str,
                     options: SeriesOptions, path: Path, subject: str | None = None, task: str | None = None,
                     fps_step: int = 1) -> Path | None:
    """One signal over time in session 1 of one subject and task: N1, S1, C1 and G. S, C and G (one recording)
    are moved by the shift that best matches N1 (the recordings start with different delays)."""
    subject = subject or manifest.subjects()[0]
    tasks = sorted({r.task for r in manifest.select(subject=subject)})
    task = task or ("schaede" if "schaede" in tasks else tasks[0])
    normal, occluded = _first_session(manifest.select(subject=subject, task=task))
    if normal is None or occluded is None or f"{normal.id}.N" not in tables:
        return None
    reference = tables[f"{normal.id}.N"]
    if signal not in reference.columns or reference["face_found"].mean() == 0:
        return None
    series = {k: tables.get(f"{occluded.id}.{k}") for k in ("S", "C", "G")}
    fps = (occluded.fps or 25.0) / fps_step
    anchor = next((series[k] for k in ("G", "C", "S") if series[k] is not None and series[k]["face_found"].any()), None)
    shift = 0
    if anchor is not None:
        _, best = best_shift_mape(prepare_series(reference[signal].to_numpy()),
                                  prepare_series(anchor[signal].to_numpy()), int(options.max_shift_seconds * fps),
                                  min_overlap=options.min_overlap)
        shift = best or 0  # a signal at zero throughout has no best shift: plot unmoved
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.2))
    axis.plot(reference["time"], reference[signal], color=COLOURS["N"], label=LABELS["N"], lw=1.4)
    for kind in ("G", "S", "C"):
        table = series[kind]
        if table is None:
            continue
        style = {"ls": "--", "lw": 1.0} if kind == "G" else {"lw": 1.2}
        axis.plot(table["time"] - shift / fps, table[signal], color=COLOURS[kind], label=LABELS[kind], **style)
    axis.set_xlabel(f"time (s; S, C and G moved by {-shift / fps:+.2f} s to match N1)")
    axis.set_ylabel(signal)
    axis.set_title(f"{signal} over time, subject {subject}, task {task}, analyzer {analyzer}")
    axis.legend(loc="upper right", fontsize=8, ncol=2)
    axis.grid(alpha=0.3)
    return _save(figure, path)


def pair_bars(pairs: pd.DataFrame, path: Path, title: str, value: str = "dtw") -> Path | None:
    """Mean ± std over subjects of ``value`` per pair (bars) and task (groups)."""
    from unveil.evaluate.protocol import summarise

    stats = summarise(pairs, value)
    if stats.empty or stats["mean"].isna().all():
        return None
    tasks = sorted(stats["task"].unique())
    labels = [str(p) for p in stats["pair"].cat.categories if p in set(stats["pair"].astype(str))]
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / len(labels)
    palette = {"N1-N2": "#1b7837", "N1-S1": "#d6604d", "N2-S2": "#f4a582", "N1-C1": "#2166ac", "N2-C2": "#92c5de",
               "N1-G1": "#7f7f7f", "N2-G2": "#bdbdbd", "G-S": "#b2182b", "G-C": "#053061"}
    for i, label in enumerate(labels):
        chosen = stats[stats["pair"].astype(str) == label].set_index("task").reindex(tasks)
        axis.bar(np.arange(len(tasks)) + (i - (len(labels) - 1) / 2) * width, chosen["mean"], width,
                 yerr=chosen["std"].fillna(0), label=label, color=palette.get(label), capsize=2)
    axis.set_xticks(np.arange(len(tasks)), tasks)
    axis.set_ylabel(value.upper())
    axis.set_title(title)
    axis.legend(fontsize=8, ncol=len(labels))
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def frame_strip(manifest: Manifest, restored: Path | None, path: Path, task: str = "emotion") -> Path | None:
    """One row per subject: the middle frame of its first session-1 occluded recording of ``task`` as sensor (S),
    restored (C) and hidden truth (G), and the normal recording's frame at the same index (N)."""
    from unveil.data.video import read_frames

    rows, labels = [], []
    for subject in manifest.subjects():
        normal, occluded = _first_session(manifest.select(subject=subject, task=task)
                                          or manifest.select(subject=subject))
        if occluded is None:
            continue
        index = (occluded.n_frames or 2) // 2
        sources = [("S", manifest.resolve(occluded.media))]
        if restored is not None and (restored / f"{occluded.id}.mp4").is_file():
            sources.append(("C", restored / f"{occluded.id}.mp4"))
        if occluded.ground_truth:
            sources.append(("G", manifest.resolve(occluded.ground_truth)))
        if normal is not None:
            sources.append(("N", manifest.resolve(normal.media)))
        images = []
        for _, source in sources:
            found = list(read_frames(source, only={index}))
            images.append(found[0].image if found else None)
        if any(i is None for i in images):
            continue
        rows.append(images)
        labels.append((subject, [k for k, _ in sources]))
    if not rows:
        return None
    plt = _pyplot()
    columns = max(len(r) for r in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.2 * columns, 2.3 * len(rows)), squeeze=False)
    names = {"S": "sensor", "C": "restored", "G": "hidden truth", "N": "normal (same index)"}
    for i, (images, (subject, kinds)) in enumerate(zip(rows, labels, strict=True)):
        for j in range(columns):
            axis = axes[i][j]
            axis.axis("off")
            if j < len(images):
                axis.imshow(images[j])
                axis.set_title(f"{subject} {names[kinds[j]]}", fontsize=8)
    return _save(figure, path)


def _moments(table: pd.DataFrame | None, count: int) -> list[tuple[str, int]]:
    """(event, frame) at the middle of the first occurrence of each distinct non-neutral event, up to ``count``;
    none when the recording has no event column."""
    if table is None or "event" not in table.columns:
        return []
    runs = (table["event"] != table["event"].shift()).cumsum()
    chosen: dict[str, int] = {}
    for _, run in table.groupby(runs, sort=False):
        event = str(run["event"].iloc[0])
        if event != "neutral" and event not in chosen:
            chosen[event] = int(run["frame"].iloc[len(run) // 2])
    return list(chosen.items())[:count]


def _frames_table(manifest: Manifest, rec: Recording | None) -> pd.DataFrame | None:
    path = manifest.resolve(rec.frames) if rec is not None and rec.frames else None
    return pd.read_parquet(path, columns=["frame", "event"]) if path is not None and path.is_file() else None


def moment_strips(manifest: Manifest, restored: Path | None, folder: Path, count: int = 6) -> list[Path]:
    """Per subject and task (first session, first takes): the sensor video S, the restored C, the hidden truth G
    and the normal video N at the middle of each distinct expression (``moments_<subject>_<task>.png``; N shows the
    same expression in its own recording, whose timing differs)."""
    from unveil.data.video import read_frames

    written = []
    for subject in manifest.subjects():
        for task in sorted({r.task for r in manifest.select(subject=subject)}):
            normal, occluded = _first_session(manifest.select(subject=subject, task=task))
            if occluded is None:
                continue
            moments = _moments(_frames_table(manifest, occluded), count)
            if not moments:
                n = occluded.n_frames or 1
                moments = [("", int(i)) for i in np.linspace(0, n - 1, count + 2)[1:-1]]
            normal_at = dict(_moments(_frames_table(manifest, normal), len(moments) * 3))
            at = [f for _, f in moments]
            sources: list[tuple[str, Path | None, list[int]]] = [("S sensor", manifest.resolve(occluded.media), at)]
            if restored is not None and (restored / f"{occluded.id}.mp4").is_file():
                sources.append(("C restored", restored / f"{occluded.id}.mp4", at))
            if occluded.ground_truth:
                sources.append(("G hidden truth", manifest.resolve(occluded.ground_truth), at))
            if normal is not None:
                sources.append(("N normal", manifest.resolve(normal.media),
                                [normal_at.get(e, f) for e, f in moments]))
            grid = []
            for _, path, frames in sources:
                found = {f.index: f.image for f in read_frames(path, only=set(frames))}
                grid.append([found.get(f) for f in frames])
            plt = _pyplot()
            figure, axes = plt.subplots(len(grid), len(moments), figsize=(1.6 * len(moments), 1.7 * len(grid)),
                                        squeeze=False)
            for i, ((label, _, _), row) in enumerate(zip(sources, grid, strict=True)):
                for j, image in enumerate(row):
                    axis = axes[i][j]
                    axis.set_xticks([])
                    axis.set_yticks([])
                    if image is not None:
                        axis.imshow(image)
                    if i == 0:
                        axis.set_title(moments[j][0] or f"frame {moments[j][1]}", fontsize=7)
                    if j == 0:
                        axis.set_ylabel(label, fontsize=7)
            figure.suptitle(f"{subject}, {task}: {occluded.id}", fontsize=8)
            written.append(_save(figure, folder / f"moments_{subject}_{task}.png"))
    return written


def side_by_side_animation(manifest: Manifest, restored: Path | None, path: Path, seconds: float = 4.0,
                           fps: float = 7.5, width: int = 384) -> Path | None:
    """A short animated GIF of S | C | G (sensor, restored, hidden truth) side by side: the first subject's first
    occluded emotion recording (else any task), from its first expression on; ``width`` pixels wide."""
    from PIL import Image

    from unveil.data.video import read_frames

    if restored is None:
        return None
    for subject in manifest.subjects():
        recs = manifest.select(subject=subject, task="emotion") or manifest.select(subject=subject)
        _, occluded = _first_session(recs)
        if occluded is None or not (restored / f"{occluded.id}.mp4").is_file():
            continue
        moments = _moments(_frames_table(manifest, occluded), 1)
        source_fps = occluded.fps or 15.0
        start = max(0, moments[0][1] - int(source_fps)) if moments else 0
        step = max(1, round(source_fps / fps))
        wanted = set(range(start, start + int(seconds * source_fps), step))
        streams = [manifest.resolve(occluded.media), restored / f"{occluded.id}.mp4"]
        if occluded.ground_truth:
            streams.append(manifest.resolve(occluded.ground_truth))
        columns = [[f.image for f in read_frames(s, only=wanted)] for s in streams]
        frames = []
        for images in zip(*columns, strict=False):
            row = np.concatenate(images, axis=1)
            height = round(row.shape[0] * width / row.shape[1])
            frames.append(Image.fromarray(row).resize((width, height), Image.Resampling.LANCZOS))
        if not frames:
            return None
        with atomic_path(path) as tmp:
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps),
                           loop=0)
        return path
    return None
