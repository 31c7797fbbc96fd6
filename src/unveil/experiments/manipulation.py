"""``unveil experiment manipulation``: does the Expression Manipulator (seed 002) move the AU it is asked to move,
and only that one? Judged by an AU model that is not the manipulator's own critic (an ``unveil train classifier``
run on the same kind of faces), so that an edit cannot pass by fooling the network it was trained against.

For every neutral test face (all true AUs below ``neutral_below``) and every AU the manipulator knows, the face is
edited by ``activation`` on that AU alone (seed 002's one-AU-at-a-time samples, 0.7 on faces); the judge reads the
face before and after. Per AU: the mean move of the requested AU, its share of the request, and the mean absolute
move of every other AU. Two references beside them: the judge's moves on the unedited reconstruction ``G(x, 0)``
(what the generator's drawing alone changes), and the judge's own reading of real faces whose true AU lies near
the activation (how far the judge itself sees such a face move; a judge that reads a true 0.7 as 0.3 caps every
edit's measured move).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from unveil.config import Config
from unveil.data.datasets import load_image, load_samples
from unveil.data.sampling import spread
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.progress import progress_bar


class ManipulationConfig(Config):
    """Which faces, which edit, which judge."""

    manipulator: str = Field(description="A manipulator checkpoint or run folder ('unveil train manipulator').")
    judge: str = Field(description="An AU classifier checkpoint or run folder ('unveil train classifier'), not the "
                                   "manipulator's critic.")
    activation: float = Field(default=0.7, gt=0, le=1, description="The requested change (seed 002: 0.7 on faces).")
    neutral_below: float = Field(default=0.05, gt=0, le=1, description="A face is neutral when every true AU "
                                                                       "the manipulator knows is below this.")
    split: str = Field(default="val", description="The prepared split the faces come from.")
    count: int = Field(default=48, ge=1, description="Neutral faces, spread evenly over the split's.")
    near: float = Field(default=0.15, gt=0, description="Real faces within this of the activation are the judge's "
                                                        "reference for a true move of that size.")
    pass_share: float = Field(default=0.5, gt=0, description="The issue's bar: the requested AU moves by at least "
                                                             "this share of the request ...")
    pass_others: float = Field(default=0.1, gt=0, description="... while the others move by less than this on "
                                                              "average.")
    batch: int = Field(default=64, ge=1)
    device: str = "auto"


def neutral_rows(table: pd.DataFrame, aus: list[str], split: str, below: float, count: int) -> pd.DataFrame:
    """``count`` rows of ``split`` whose true AUs are all below ``below``, evenly spread (so sessions and people
    mix as in the split)."""
    missing = [a for a in aus if a not in table.columns]
    if missing:
        raise UnveilError(f"samples.parquet has no true {', '.join(missing)}; the manipulation experiment needs the "
                          "AU labels of the faces it edits (a prepared benchmark has them).")
    rows = table[(table["split"] == split) & (table[aus].max(axis=1) < below)]
    if rows.empty:
        raise UnveilError(f"No face of split '{split}' is neutral (every known AU below {below:g}); "
                          "give another --split or --neutral-below.")
    return evenly(rows, count)


def evenly(rows: pd.DataFrame, count: int) -> pd.DataFrame:
    """Up to ``count`` of ``rows``, evenly spread over them (first and last included)."""
    return rows.iloc[spread(len(rows), count)]


def judged_by_its_own_loss(manipulator, judge) -> bool:  # noqa: ANN001 - loaded models
    """Whether the loaded ``judge`` holds the same network as the frozen AU model in the loaded manipulator's
    expression term (compared tensor by tensor, so a copy of the file under another name is caught too)."""
    import torch

    from unveil.train.checkpoint import read_checkpoint

    c, reading = manipulator.config, getattr(judge, "net", None)
    if not c.lambda_expr or reading is None or not Path(c.expr_judge).exists():
        return False
    in_loss, ours = read_checkpoint(c.expr_judge).network_state(), reading.state_dict()
    return in_loss.keys() == ours.keys() and all(torch.equal(in_loss[k], ours[k].cpu()) for k in in_loss)


def first_of_each_subject(rows: pd.DataFrame, count: int) -> list[int]:
    """Positions of up to ``count`` rows for the grid: one per person first (the first row of each), then the
    next rows in order."""
    people = rows["subject"].to_numpy() if "subject" in rows.columns else np.arange(len(rows))
    firsts = [int(i) for i in np.unique(people, return_index=True)[1]]
    rest = [i for i in range(len(rows)) if i not in firsts]
    return sorted((firsts + rest)[:count])


def judge_reference(table: pd.DataFrame, root: Path, judge, aus: list[str], config: ManipulationConfig  # noqa: ANN001
                    ) -> dict[str, tuple[float, int]]:
    """Per AU: the judge's mean reading of the split's real faces whose true AU lies within ``near`` of the
    activation (the others free) minus its mean reading of the neutral faces of the split, and how many such faces
    there are."""
    part = table[table["split"] == config.split]
    neutral = part[part[aus].max(axis=1) < config.neutral_below]
    index = {a: i for i, a in enumerate(judge.aus)}

    def mean_reading(rows: pd.DataFrame, au: str) -> float:
        readings = judge([load_image(root / p) for p in rows["image"]])
        return float(readings[:, index[au]].mean())

    base = evenly(neutral, 64)
    reference = {}
    for au in aus:
        if au not in index:
            continue
        near = part[(part[au] - config.activation).abs() <= config.near]
        if near.empty or base.empty:
            reference[au] = (float("nan"), len(near))
            continue
        reference[au] = (mean_reading(evenly(near, 64), au) - mean_reading(base, au), len(near))
    return reference


def measure_edits(manipulator, judge, faces: list[np.ndarray], config: ManipulationConfig,  # noqa: ANN001
                  reference: dict[str, tuple[float, int]] | None = None, progress: bool = False,
                  shown: Sequence[int] = (0, 1, 2)) -> tuple[pd.DataFrame, list[list[np.ndarray]]]:
    """Edit ``faces`` by each AU of ``manipulator`` alone (``manipulator(images, changes)`` -> images) and read
    them with ``judge`` (``judge(images)`` -> columns named ``judge.aus``); one row per AU both know, and per AU the
    edits of the faces ``shown`` (for the grid)."""
    from unveil.methods.manipulator import one_au_conditions

    judged = [a for a in manipulator.aus if a in judge.aus]
    if not judged:
        raise UnveilError(f"The judge reads {', '.join(judge.aus)}, none of the manipulator's "
                          f"{', '.join(manipulator.aus)}.")
    columns = [list(judge.aus).index(a) for a in judged]

    def read(images: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([judge(images[i:i + config.batch])[:, columns]
                               for i in range(0, len(images), config.batch)])

    def edit(change: np.ndarray) -> list[np.ndarray]:
        edited = []
        for i in range(0, len(faces), config.batch):
            part = faces[i:i + config.batch]
            edited.extend(manipulator(part, np.tile(change, (len(part), 1))))
        return edited

    before = read(faces)
    rebuilt = read(edit(np.zeros(len(manipulator.aus), np.float32))) - before
    conditions = one_au_conditions(len(manipulator.aus), config.activation).numpy()

    def au_record(au: str, move: np.ndarray) -> dict:
        j = judged.index(au)
        others = np.delete(np.abs(move).mean(0), j)
        names = [a for a in judged if a != au]
        real_move, real_faces = (reference or {}).get(au, (float("nan"), 0))
        return {"AU": au, "faces": len(faces), "requested": config.activation, "moved": float(move[:, j].mean()),
                "moved_sd": float(move[:, j].std(ddof=1)) if len(faces) > 1 else 0.0,
                "share": float(move[:, j].mean() / config.activation),
                "others": float(others.mean()) if len(others) else 0.0,
                "worst_other": names[int(others.argmax())] if names else "",
                "reconstruction_moved": float(rebuilt[:, j].mean()),
                "reconstruction_others": float(np.delete(np.abs(rebuilt).mean(0), j).mean()) if names else 0.0,
                "judge_real_move": real_move, "judge_real_faces": real_faces}

    records, examples = [], []
    with progress_bar(len(manipulator.aus), "manipulation: AUs", progress) as advance:
        for k, au in enumerate(manipulator.aus):
            edited = edit(conditions[k])
            examples.append([edited[i] for i in shown])
            advance(1)
            if au in judged:
                records.append(au_record(au, read(edited) - before))
    frame = pd.DataFrame(records)
    frame["passes"] = (frame["share"] >= config.pass_share) & (frame["others"] < config.pass_others)
    return frame, examples


def run_manipulation(config: ManipulationConfig, samples: str | os.PathLike[str], out: str | os.PathLike[str],
                     progress: bool = True) -> pd.DataFrame:
    """Edit every neutral test face by each AU alone; one row per AU (moves as the judge reads them), written to
    OUT/results.csv and OUT/table.md, and OUT/grid.png (three faces with each AU turned on)."""
    from unveil.data.faces import square_resize
    from unveil.methods.manipulator import ManipulatorModel
    from unveil.methods.registry import load_analysis_model, load_model

    for name, path in (("manipulator", config.manipulator), ("judge", config.judge)):
        if not Path(path).exists():
            raise UnveilError(f"The {name} checkpoint {path} does not exist.")
    manipulator = load_model(config.manipulator, config.device)
    if not isinstance(manipulator, ManipulatorModel):
        raise UnveilError(f"{config.manipulator} is no manipulator checkpoint ('unveil train manipulator' makes one).")
    judge = load_analysis_model(config.judge, config.device)
    if not getattr(judge, "aus", None):
        raise UnveilError(f"{config.judge} reads no AUs, so it cannot judge AU edits.")
    if judged_by_its_own_loss(manipulator, judge):
        raise UnveilError(f"{config.judge} is the AU model in the manipulator's own loss (lambda_expr), so its "
                          "reading of the edits proves nothing; give an AU model that was not in training.")
    table, root = load_samples(samples)
    rows = neutral_rows(table, manipulator.aus, config.split, config.neutral_below, config.count)
    faces = [square_resize(load_image(root / p), manipulator.size) for p in rows["image"]]
    reference = judge_reference(table, root, judge, [a for a in manipulator.aus if a in judge.aus], config)
    shown = first_of_each_subject(rows, 3)
    frame, examples = measure_edits(manipulator, judge, faces, config, reference, progress, shown)
    folder = ensure_dir(out)
    with atomic_path(folder / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)
    write_text_atomic(folder / "table.md", table_markdown(frame, config))
    au_grid([faces[i] for i in shown], examples, manipulator.aus, config.activation, folder / "grid.png")
    return frame


def table_markdown(frame: pd.DataFrame, config: ManipulationConfig) -> str:
    """One row per AU and the mean over AUs, with the issue's verdict."""
    lines = [f"| AU | requested | moved [sd] | share | others (mean abs) | largest other | G(x, 0): AU / others | "
             f"judge on real faces at {config.activation:g} ± {config.near:g} (n) | passes |",
             "|---|---:|---:|---:|---:|---|---:|---:|:---:|"]
    for r in frame.itertuples():
        lines.append(f"| {r.AU} | {r.requested:.2f} | {r.moved:+.3f} [{r.moved_sd:.3f}] | {r.share:.0%} | "
                     f"{r.others:.3f} | {r.worst_other} | {r.reconstruction_moved:+.3f} / "
                     f"{r.reconstruction_others:.3f} | {r.judge_real_move:+.3f} ({r.judge_real_faces}) | "
                     f"{'yes' if r.passes else 'no'} |")
    lines.append(f"| mean of {len(frame)} AUs | {config.activation:.2f} | {frame['moved'].mean():+.3f} | "
                 f"{frame['share'].mean():.0%} | {frame['others'].mean():.3f} | | "
                 f"{frame['reconstruction_moved'].mean():+.3f} / {frame['reconstruction_others'].mean():.3f} | "
                 f"{np.nanmean(frame['judge_real_move']):+.3f} | {int(frame['passes'].sum())} of {len(frame)} |")
    return "\n".join(lines) + (f"\n\nA row passes when the requested AU moves by at least {config.pass_share:.0%} of "
                               f"the request and the others by less than {config.pass_others:g} on average "
                               f"({int(frame['faces'].iloc[0]) if len(frame) else 0} neutral faces of split "
                               f"'{config.split}').\n")


def au_grid(faces: list[np.ndarray], edits: list[list[np.ndarray]], aus: list[str], activation: float,
            path: Path) -> Path:
    """Rows: neutral faces; columns: the face, then the face with each AU alone raised by ``activation``."""
    from unveil.evaluate.figures import _pyplot, _save

    plt = _pyplot()
    n_rows, n_cols = len(faces), len(aus) + 1
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(0.95 * n_cols, 1.05 * n_rows + 0.2), squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.imshow(faces[r] if c == 0 else edits[c - 1][r])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("input" if c == 0 else f"{aus[c - 1]} +{activation:g}", fontsize=7)
    figure.subplots_adjust(wspace=0.04, hspace=0.04)
    return _save(figure, path)
