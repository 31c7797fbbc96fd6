"""``unveil report``: one self-contained HTML page (images inlined) of an evaluation and the training behind it:
headline distances, the protocol's tables with the comparison options printed beside them, figures,
side-by-side frames, and the last sample grid of every training run found under the folder."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from unveil.errors import UnveilError
from unveil.files import write_text_atomic

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left;font-weight:600}
.note{color:#555;font-size:.85rem}.skipped{color:#8a4b00}img{max-width:100%;border:1px solid #eee;margin:.4rem 0}
.headline td{font-size:1rem}.failed{color:#b00020;font-weight:600}.recovered{font-size:1.1rem}
"""

TABLE_TITLES = {
    "images": "Pixels of S and C against the hidden clean frames (synthetic benchmark only)",
    "perceptual": "Perceptual scores, seed 000 Table 1 (LPIPS, FID)",
}


def _series_caption(name: str) -> str:
    """'au_dlib68' -> the AU table's title (seed 000 Table 2); 'emotion_cnn' -> the emotion one (Table 3)."""
    group, _, analyzer = name.partition("_")
    analyzer, _, variant = analyzer.partition("_")
    words = "Emotion" if group == "emotion" else "AU"
    if variant == "signals":
        return f"{words} time series, analyzer {analyzer}: mean DTW of every signal (no mean hides one)"
    table = "Table 3" if group == "emotion" else "Table 2"
    extra = {"zscore": ", z-normalised series", "none": ", raw series"}.get(variant, "")
    return f"{words} time series, analyzer {analyzer}{extra} (seed 000 {table}: mean ± std over subjects)"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    kind = {".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif"}.get(path.suffix.lower(), "png")
    return f'<img alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}">'


def _table(cells: dict[str, dict[str, str]]) -> str:
    """An HTML table from ``{column: {row: cell}}`` (the layout of metrics.json)."""
    columns = list(cells)
    rows: list[str] = []
    for column in columns:
        rows.extend(r for r in cells[column] if r not in rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns])
    body = "".join("<tr><td>" + html.escape(r) + "</td>" +
                   "".join(f"<td>{html.escape(str(cells[c].get(r, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _percent(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or value != value:  # NaN: the sensors did not hurt, nothing to recover
        return "n/a"
    return f"{value:.0%}" + (f" [{low:.0%}, {high:.0%}]" if low is not None and low == low else "")


def _fidelity_section(fidelity: dict) -> list[str]:
    """Expression recovered per analyzer, its per-AU table, and in red every failed session and every expression
    that C holds and the hidden face does not."""
    if not fidelity:
        return []
    parts = ["<h2>Expression against the hidden truth</h2>",
             '<p class="note">How well each analyzer reads the true per-frame AU intensities (and the emotion shown) '
             "from the sensor video S, the restored video C and the hidden clean video G. Expression recovered = "
             "(err S - err C) / (err S - err G): 100 % reads like the hidden face, 0 % no better than the sensors. "
             "Errors are capped at the best constant guess (floor), so a constant face earns nothing.</p>"]
    for name, result in fidelity.items():
        overall, emotion = result.get("overall", {}), result.get("emotion", {})
        level = overall.get("level", emotion.get("level", 0.95))
        line = [f"AUs {_percent(overall.get('recovered'), overall.get('low'), overall.get('high'))}"] if overall else []
        if emotion:
            line.append(f"emotions {_percent(emotion.get('recovered'), emotion.get('low'), emotion.get('high'))} "
                        f"(accuracy S {emotion['acc_S']:.0%}, C {emotion['acc_C']:.0%}, G {emotion['acc_G']:.0%})")
        parts.append(f'<h3>{html.escape(name)}</h3><p class="recovered">Expression recovered: '
                     f'{html.escape("; ".join(line))} <span class="note">({level:.0%} intervals over '
                     f'{overall.get("subjects", "?")} subjects, {overall.get("frames", "?")} frames)</span></p>')
        for row in result.get("sessions", []):
            if row.get("failed"):
                parts.append(f'<p class="failed">Failed restoration, subject {html.escape(str(row["subject"]))} '
                             f'session {html.escape(str(row["session"]))}: C is no closer to the true expression '
                             f'than the sensor video (error S {row["err_S"]:.3f}, C {row["err_C"]:.3f}, '
                             f'G {row["err_G"]:.3f}).</p>')
        for row in result.get("spurious", []):
            parts.append(f'<p class="failed">Expression the hidden face does not hold: {html.escape(row["recording"])}'
                         f' reads {html.escape(row["signal"])} {row["mean_C"]:.2f} on average in C, '
                         f'{row["mean_G"]:.2f} in G.</p>')
        if result.get("table"):
            parts.append(_table(result["table"]))
    return parts


def _pictures_section(evaluation: Path, pictures: list[str]) -> list[str]:
    """The restored frames first: every expression as S, C, G and N per subject and task, and C in motion."""
    files = [evaluation / "figures" / name for name in pictures if (evaluation / "figures" / name).is_file()]
    if not files:
        return []
    parts = ["<h2>Restored frames</h2>",
             '<p class="note">Rows: the sensor video S, the restored video C, the hidden clean truth G (what C should '
             "look like) and the normal video N at the same expression; columns: the middle of each expression the "
             "recording shows. The animation plays S | C | G side by side.</p>"]
    parts.extend(_image(f, f.stem) for f in files)
    return parts


def _grids_section(root: Path) -> list[str]:
    """The last training sample grid of every run found under ``root``."""
    last_per_run: dict[Path, Path] = {}
    for grid in sorted(root.rglob("samples/epoch_*.png")):
        last_per_run[grid.parent.parent] = grid  # sorted: the last epoch wins
    if not last_per_run:
        return []
    parts = ["<h2>Training: last sample grid of each run</h2>",
             '<p class="note">Rows as each method draws them: for CycleGAN the paper\'s Fig. 4 (input, translated, '
             "reconstructed per direction); for paired methods the occluded input, (the mask used,) the restoration "
             "and the clean truth.</p>"]
    for run, grid in sorted(last_per_run.items()):
        parts.append(f"<h3>{html.escape(run.name)} ({html.escape(grid.stem)})</h3>{_image(grid, run.name)}")
    return parts


def find_evaluation(run_dir: Path) -> Path:
    """The folder holding metrics.json: ``run_dir`` itself or its ``evaluation`` subfolder."""
    for candidate in (run_dir, run_dir / "evaluation"):
        if (candidate / "metrics.json").is_file():
            return candidate
    raise UnveilError(f"No metrics.json in {run_dir} or {run_dir / 'evaluation'}; run 'unveil evaluate' first.")


def build_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                 title: str = "unveil report") -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) and return its path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise UnveilError(f"{root} is not a folder.")
    evaluation = find_evaluation(root)
    metrics = json.loads((evaluation / "metrics.json").read_text(encoding="utf-8"))
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="note">Comparison options: {html.escape(metrics.get("options", ""))}. '
             f'Signals left out: {html.escape(", ".join(metrics.get("excluded", [])) or "none")}. '
             f'Every {metrics.get("every", 1)}. frame analysed. n/a: the analyzer found a face in fewer than '
             f'{metrics.get("min_found", 0.5):.0%} of one video\'s frames (a failed analysis, not a distance).</p>']
    made_by = metrics.get("restorers") or ["not recorded (restored videos without restorers.json)"]
    parts.append('<p class="note">C (restored) made by: ' + "; ".join(html.escape(m) for m in made_by) + ".</p>")
    parts.extend(_pictures_section(evaluation, metrics.get("pictures", [])))
    parts.extend(_grids_section(root))
    parts.extend(_fidelity_section(metrics.get("fidelity", {})))
    headline = metrics.get("headline", {})
    if headline:
        parts.append("<h2>Headline: mean DTW of the AU (and emotion) time series</h2>")
        parts.append('<p class="note">N1-N2: two normal sessions (the baseline); N-S: normal against sensor videos; '
                     "N-C: normal against restored (clean) videos; N-G: normal against the hidden clean truth "
                     "(a perfect restoration); G-S / G-C: sensor / clean against their own hidden truth. Lower is "
                     "closer.</p>")
        parts.append('<div class="headline">' + _table({name: {k: f"{v:.3f}" for k, v in values.items()}
                                                         for name, values in headline.items()}) + "</div>")
    for name, cells in metrics.get("tables", {}).items():
        caption = TABLE_TITLES.get(name) or _series_caption(name)
        parts.append(f"<h2>{html.escape(caption)}</h2>{_table(cells)}")
    skipped = metrics.get("skipped", {})
    if skipped:
        parts.append("<h2>Not computed</h2><ul>" + "".join(
            f'<li class="skipped"><b>{html.escape(k)}</b>: {html.escape(v)}</li>' for k, v in skipped.items()) + "</ul>")
    figures = [evaluation / "figures" / f for f in metrics.get("figures", [])]
    if figures:
        parts.append("<h2>Figures</h2>")
        parts.extend(_image(f, f.stem) for f in figures if f.is_file())
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html.escape(title) +
            f"</title><style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>")
    target = Path(out) if out is not None else root / "report.html"
    write_text_atomic(target, page)
    return target
