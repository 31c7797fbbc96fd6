"""`unveil demo` wired end to end at a small size: every stage runs, the report is written, and the restored sensor
videos are closer to the hidden faces inside the sensors than the sensor videos are (the benchmark's ground truth,
not the demo's own output, is the reference). The models train 1 + 1 epochs here, too few for the AU numbers to
mean anything: README measures those at the demo's own size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unveil import demo
from unveil.synth import SynthConfig


@pytest.mark.slow
def test_demo_runs_every_stage_and_restores_towards_the_hidden_face(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo's own settings, shrunk: one repetition of each task at 5 frames a second, one sensor take, 1 + 1
    # epochs of each model (about 2 minutes on 2 cores).
    monkeypatch.setattr(demo, "DEMO_SYNTH", SynthConfig(subjects=2, sessions=2, occluded_takes=1, size=96, fps=5,
                                                         tasks=["schaede", "emotion"], schaede_repetitions=1,
                                                         emotion_repetitions=1))
    monkeypatch.setattr(demo, "DEMO_TRAIN", demo.DEMO_TRAIN.model_copy(update={"n_epochs": 1, "n_epochs_decay": 1}))
    monkeypatch.setattr(demo, "DEMO_CLASSIFIER", demo.DEMO_CLASSIFIER.model_copy(
        update={"n_epochs": 1, "n_epochs_decay": 1}))
    monkeypatch.setattr(demo, "DEMO_EVALUATE", demo.DEMO_EVALUATE.model_copy(update={"every": 10, "image_every": 60}))
    lines = demo.run_demo(tmp_path / "out", progress=False)

    out = tmp_path / "out"
    assert (out / "report.html").is_file() and lines[-1].endswith(str(out.resolve()))
    restored = sorted(p.name for p in (out / "restored").iterdir() if p.suffix == ".mp4")
    assert len(restored) == 2 * 2 * 2, restored  # subjects x sessions x tasks, take 1 of each
    headline = next(line for line in lines if "HEADLINE" in line)
    inside = re.search(r"PSNR inside the sensors ([\d.]+) dB \(sensor video ([\d.]+) dB\)", headline)
    assert inside is not None, headline
    restored_db, sensor_db = map(float, inside.groups())
    # The sensors' white pads and red cables sit far from skin (about 8 dB); the exemplar fill from the subject's
    # own clean frames is skin, whatever else it gets wrong.
    assert restored_db > sensor_db + 6, headline
    # Every stage reported, in order; each analyzer scored against the truth, one row per AU the faces move.
    stages = [line.split(":")[0] for line in lines if not line.startswith(" ")]
    assert stages[:7] == ["synth", "contact sheet", "prepare", "train", "restore", "forest", "cnn"], stages
    for analyzer in ("dlib68", "forest", "cnn"):
        table = (out / "evaluation" / "tables" / f"fidelity_{analyzer}.md").read_text()
        assert all(f"| {au} |" in table for au in ("AU01", "AU04", "AU12", "AU25", "AU26")), analyzer
