"""Analyzers on real and synthetic video: time-series layout, NaN without a face, AU measures that follow the
synthetic ground truth, the hand in WolfgangLanger, OpenFace import."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.analysis import analyze, make_analyzer
from unveil.analysis.base import LANDMARK_COLUMNS, analyze_media
from unveil.analysis.external import read_openface_csv
from unveil.analysis.geometry import GEOMETRY_AUS
from unveil.errors import UnveilError
from unveil.synth import generate

from conftest import tiny_config


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("bench")
    config = tiny_config(size=128, fps=15, tasks=["schaede"], schaede_repetitions=1, format="mp4")
    return generate(config, root, workers=1, progress=False)


# AUs whose landmark measure follows the rendered truth (r > 0.5) with each landmark model. On the ground-truth
# landmarks every measure does (test_geometry); dlib's points on these drawn faces barely move the brows.
FOLLOWED = {"dlib68": ("AU12", "AU25"), "mesh": ("AU02", "AU10", "AU12", "AU25", "AU43")}


@pytest.mark.parametrize("landmarks", ["dlib68", "mesh"])
def test_measures_follow_the_true_aus(synthetic, landmarks: str) -> None:  # noqa: ANN001
    from unveil.evaluate.protocol import dlib_session_boxes

    normal = synthetic.select(condition="normal")[0]
    truth = pd.read_parquet(synthetic.resolve(normal.frames))
    box = dlib_session_boxes(synthetic)[(normal.subject, normal.session)] if landmarks == "dlib68" else None
    table = analyze_media(synthetic.resolve(normal.media), make_analyzer(landmarks, box=box), progress=False)
    assert list(table.columns[:4]) == ["frame", "time", "face_found", "confidence"]
    assert set(GEOMETRY_AUS) <= set(table.columns) and set(LANDMARK_COLUMNS) <= set(table.columns)
    assert len(table) == len(truth) and (table["frame"] == truth["frame"]).all() and table["face_found"].all()
    np.testing.assert_allclose(table["time"], truth["time"], atol=1e-6)
    xs, ys = [f"x_{i}" for i in range(68)], [f"y_{i}" for i in range(68)]
    error = np.hypot(table[xs].to_numpy() - truth[xs].to_numpy(), table[ys].to_numpy() - truth[ys].to_numpy())
    iod = np.hypot(truth["x_45"] - truth["x_36"], truth["y_45"] - truth["y_36"]).to_numpy()
    assert np.median(error / iod[:, None]) < 0.1  # median landmark error under 10 % of the inter-ocular distance
    for au in FOLLOWED[landmarks]:
        r = np.corrcoef(table[au], truth[au])[0, 1]
        assert r > 0.5, f"{au}: correlation {r:.2f} with the true intensity"


def test_no_face_gives_nan_not_zero(shared_data: Path) -> None:
    table = analyze_media(shared_data / "videos" / "noface_face.mov", make_analyzer("mesh"), progress=False,
                          every=20)
    empty = table[table["frame"] < 80]
    assert len(empty) and not empty["face_found"].any()
    assert empty["AU12"].isna().all() and (empty["confidence"] == 0).all()
    assert table[table["frame"] > 120]["face_found"].all()


@pytest.mark.slow
def test_mesh_confidence_drops_under_the_hand(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "wl.parquet"
    table = analyze(shared_data / "videos" / "WolfgangLanger_Pexels.mp4", "mesh", out, progress=False)
    assert pd.read_parquet(out).equals(table)
    low = table["confidence"] < 0.5
    hand = table["frame"].between(155, 199)  # the hand passes over the face (judged by eye)
    assert low[hand].sum() >= 20, "the hand frames should lose the face detector's confidence"
    assert low[~hand].sum() <= 3, "outside the hand the face is clearly visible"


def test_openface_csv_import(tmp_path: Path) -> None:
    csv = tmp_path / "openface.csv"
    header = "frame, face_id, timestamp, confidence, success, AU01_r, AU12_r, AU12_c, x_0, y_0"
    rows = ["1, 0, 0.000, 0.98, 1, 0.5, 2.0, 1, 10.0, 20.0",
            "2, 0, 0.033, 0.10, 0, 0.0, 0.0, 0, 0.0, 0.0",
            "3, 0, 0.067, 0.97, 1, 1.5, 3.0, 1, 11.0, 21.0"]
    csv.write_text("\n".join([header, *rows]) + "\n")
    table = read_openface_csv(csv)
    assert table["frame"].tolist() == [0, 1, 2] and table["face_found"].tolist() == [True, False, True]
    assert table["AU12"].tolist()[::2] == [2.0, 3.0] and np.isnan(table["AU12"][1])
    assert table["AU12_c"][0] == 1 and table["x_0"][2] == 11.0
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UnveilError, match="not OpenFace"):
        read_openface_csv(tmp_path / "other.csv")


def test_pyfeat_table_becomes_one_row_per_frame() -> None:
    """py-feat's detector gives one row per detected face (its Fex table: frame, FaceScore, AUs, emotions); a
    frame without a face has a row with NaN. The time series keeps the most confident face per frame."""
    import pandas as pd

    from unveil.analysis.external import fex_to_timeseries

    fex = pd.DataFrame({"frame": [0, 1, 1, 2], "FaceScore": [0.9, 0.6, 0.95, np.nan], "AU12": [0.1, 0.2, 0.7, np.nan],
                        "happiness": [0.3, 0.4, 0.8, np.nan], "input": ["v.mp4"] * 4})
    table = fex_to_timeseries(fex, np.array([0.0, 0.04, 0.08]))
    assert table["frame"].tolist() == [0, 1, 2] and table["time"].tolist() == [0.0, 0.04, 0.08]
    assert table["face_found"].tolist() == [True, True, False]
    assert table["confidence"].tolist() == [0.9, 0.95, 0.0]
    assert table["AU12"].tolist()[:2] == [0.1, 0.7] and np.isnan(table["AU12"][2])  # frame 1: the 0.95 face
    assert table["happiness"].tolist()[1] == 0.8 and "input" not in table


def test_analyzer_errors_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UnveilError, match="needs --model"):
        make_analyzer("forest")
    with pytest.raises(UnveilError, match="Unknown analyzer"):
        make_analyzer("magic")
    with pytest.raises(UnveilError, match="dlib68 landmarks only"):
        make_analyzer("mesh", box=(0, 0, 10, 10))
    with pytest.raises(UnveilError, match="does not exist"):
        analyze(tmp_path / "missing.mp4", "mesh")
    try:
        import feat  # noqa: F401
    except ImportError:
        (tmp_path / "v.mp4").write_bytes(b"")
        with pytest.raises(UnveilError, match="py-feat is not installed"):
            analyze(tmp_path / "v.mp4", "pyfeat")


def test_dlib_detects_small_faces_and_misses_sensor_covered_ones(synthetic) -> None:  # noqa: ANN001
    normal = synthetic.select(condition="normal")[0]
    occluded = synthetic.select(condition="occluded")[0]
    found = analyze_media(synthetic.resolve(normal.media), make_analyzer("dlib68"), progress=False, every=5)
    assert found["face_found"].all()  # 128 px frames: searched at twice the size
    covered = analyze_media(synthetic.resolve(occluded.media), make_analyzer("dlib68"), progress=False, every=5)
    assert covered["face_found"].mean() < 0.2  # why evaluate fits dlib's points in a fixed session box instead
