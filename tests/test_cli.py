"""The CLI as a user meets it: one-sentence errors with exit code 2, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest


def unveil(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "unveil", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--size", "1000"], "'size' is invalid: input should be less than or equal to 512 (got 1000)"),
        (["--size", "127"], "the frame size must be even"),
        (["--occluder", "scarf"], "'scarf' is not an occluder"),
        (["--task", "dance"], "'dance' is not a task"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], expected: str) -> None:
    result = unveil("synth", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root may write anywhere on disk; /proc refuses new folders even to root.
    target = locked / "out" if not os.access(locked, os.W_OK) else Path("/proc/unveil-test-out")
    try:
        result = unveil("synth", str(target), "--preview")
    finally:
        locked.chmod(0o700)
    assert result.returncode == 2 and "Cannot create the output folder" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_output_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = unveil("synth", str(tmp_path / "file" / "out"), "--preview")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("subjects: 2\nsise: 64\n")
    result = unveil("synth", str(tmp_path / "out"), "--config", str(config))
    assert result.returncode == 2 and "'sise' is not a known option" in result.stderr
    assert str(config) in result.stderr


def test_not_a_number_is_a_usage_error(tmp_path: Path) -> None:
    result = unveil("synth", str(tmp_path / "out"), "--subjects", "two")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--subjects" in result.stderr


def test_preview_contact_sheet(tmp_path: Path) -> None:
    result = unveil("synth", str(tmp_path), "--preview", "--size", "64")
    assert result.returncode == 0, result.stderr
    sheet = cv2.imread(str(tmp_path / "preview.png"))
    # Six identity rows and two occluder rows of 64 px tiles, 16 expressions wide.
    assert sheet.shape[0] > 8 * 64 and sheet.shape[1] >= 16 * 64
    assert sheet.std() > 20  # not blank


def test_synth_writes_a_manifest_and_says_where(tmp_path: Path) -> None:
    result = unveil("synth", str(tmp_path), "--subjects", "1", "--sessions", "1", "--size", "64", "--task", "sentence",
                    "--fps", "8", "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"Manifest: {tmp_path / 'manifest.yaml'}" in result.stdout
    assert (tmp_path / "manifest.yaml").is_file() and (tmp_path / "synth.yaml").is_file()


def test_version_and_help() -> None:
    assert unveil("--version").stdout.startswith("unveil ")
    help_text = unveil("synth", "--help").stdout
    for option in ("--subjects", "--size", "--occluder", "--preview", "--config", "--format"):
        assert option in help_text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["analyze", "missing.mp4", "-o", "t.parquet"], "missing.mp4 does not exist"),
        (["analyze", "missing.mp4", "-o", "t.parquet", "--analyzer", "forest"], "needs --model"),
        (["analyze", "missing.mp4", "-o", "t.parquet", "--box", "1,2"], "--box must be four numbers"),
        (["train", "forest", "--samples", "nowhere", "--out", "f.safetensors"], "run 'unveil prepare' first"),
        (["train", "classifier", "--samples", "nowhere", "--out", "f"], "run 'unveil prepare' first"),
        (["train", "classifier", "--samples", "nowhere", "--out", "f", "--preset", "gpu"],
         "Unknown preset 'gpu' for classifier; choose cpu"),
        (["train", "pix2pix", "--samples", "nowhere", "--out", "f", "--netG", "unet_512"], "'netG' is invalid"),
        (["evaluate", "missing.yaml", "-o", "ev"], "missing.yaml does not exist"),
        (["report", "nowhere"], "nowhere is not a folder"),
        (["evaluate", "missing.yaml", "-o", "ev", "--analyzer", "magic"], "should be 'mesh', 'dlib68', 'forest', 'cnn' or 'fer'"),
    ],
)
def test_analysis_commands_fail_in_one_sentence(tmp_path: Path, args: list[str], expected: str) -> None:
    result = unveil(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_analyze_writes_a_time_series(tmp_path: Path, shared_data: Path) -> None:
    import pandas as pd

    result = unveil("analyze", str(shared_data / "videos" / "single_face.mp4"), "-o", str(tmp_path / "t.csv"),
                    "--analyzer", "dlib68", "-q")
    assert result.returncode == 0, result.stderr
    assert "frames/s" in result.stdout
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["face_found"].mean() > 0.9 and {"AU12", "x_67", "y_0"} <= set(table.columns)


def test_restoring_a_manifest_needs_a_runs_folder(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("version: 1\nrecordings: []\n")
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"")
    result = unveil("restore", str(model), str(manifest), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "give the folder of per-subject runs" in result.stderr
    result = unveil("restore", str(tmp_path), str(manifest), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "no occluded recordings" in result.stderr
