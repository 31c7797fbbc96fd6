"""Expression fidelity against the truth, on hand-made truth tables and analyzer outputs whose answers are known
in closed form: a perfect restoration recovers 1, the identity 0, a constant face at most 0 (even where the
sensor analysis is worse than a constant), half a restoration half."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unveil.data.manifest import Manifest, Recording
from unveil.evaluate.fidelity import FidelityOptions, expression_fidelity
from unveil.metrics.bootstrap import hierarchical_weights

FPS, FRAMES = 10.0, 240
AUS = ("AU04", "AU12")
EVENTS = ("happiness", "neutral", "sadness", "neutral")


def truth_table(seed: int) -> pd.DataFrame:
    """Smooth AU intensities in [0, 1] and an emotion event every 6 s (happiness, neutral, sadness, neutral)."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES) / FPS
    table = pd.DataFrame({"frame": np.arange(FRAMES), "time": t,
                          "event": [EVENTS[int(x // 6) % 4] for x in t]})
    for k, au in enumerate(AUS):
        table[au] = 0.5 + 0.5 * np.sin(2 * np.pi * t / (5 + 3 * k) + rng.uniform(0, 6))
    return table


def analysis(truth: pd.DataFrame, aus: np.ndarray | None = None, emotions: list[str] | None = None,
             found: bool = True) -> pd.DataFrame:
    """An analyzer's table: AUs on its own scale (3 x intensity + 1, as geometry measures are not intensities)
    and one-hot emotion probabilities."""
    values = truth[list(AUS)].to_numpy() if aus is None else aus
    table = pd.DataFrame({"frame": truth["frame"], "time": truth["time"], "face_found": found, "confidence": 1.0})
    for k, au in enumerate(AUS):
        table[au] = 3 * values[:, k] + 1 if found else np.nan
    emotions = list(truth["event"]) if emotions is None else emotions
    for name in ("happiness", "neutral", "sadness"):
        table[name] = [float(e == name) for e in emotions] if found else np.nan
    return table


def benchmark(tmp_path: Path, subjects: int = 2) -> tuple[Manifest, dict[str, pd.DataFrame]]:
    """Per subject one normal and one occluded recording with truth tables; N and G read exactly."""
    recordings, truths = [], {}
    for s in range(subjects):
        for condition in ("normal", "occluded"):
            rid = f"S{s}-{condition}"
            truths[rid] = truth_table(10 * s + (condition == "occluded"))
            truths[rid].to_parquet(tmp_path / f"{rid}.parquet")
            recordings.append(Recording(id=rid, subject=f"S{s}", session="1", condition=condition, task="emotion",
                                        occluder="semg" if condition == "occluded" else None,
                                        media=f"{rid}.mp4", frames=f"{rid}.parquet", fps=FPS, n_frames=FRAMES))
    manifest = Manifest(recordings=recordings, root=str(tmp_path))
    tables = {}
    for rid, truth in truths.items():
        if rid.endswith("normal"):
            tables[f"{rid}.N"] = analysis(truth)
        else:
            tables[f"{rid}.G"] = analysis(truth)
            rng = np.random.default_rng(len(tables))
            tables[f"{rid}.S"] = analysis(truth, rng.uniform(0, 1, (FRAMES, len(AUS))),
                                          list(rng.choice(["happiness", "neutral", "sadness"], FRAMES)))
    return manifest, tables


def with_restored(tables: dict[str, pd.DataFrame], make) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    out = dict(tables)
    for key in [k for k in tables if k.endswith(".S")]:
        rid = key[:-2]
        out[f"{rid}.C"] = make(rid, tables[f"{rid}.S"], tables[f"{rid}.G"])
    return out


OPTIONS = FidelityOptions(resamples=300)


def test_calibration_puts_the_analyzer_on_the_truth_scale_and_a_perfect_restoration_recovers_all(tmp_path) -> None:
    manifest, tables = benchmark(tmp_path)
    result = expression_fidelity("toy", manifest, with_restored(tables, lambda r, s, g: g.copy()), OPTIONS)
    aus = result.aus.set_index("au")
    assert np.allclose(aus["mae_G"], 0, atol=1e-9) and np.allclose(aus["r_G"], 1)  # 3x + 1 calibrated away
    assert result.overall["recovered"] == pytest.approx(1.0)
    assert result.overall["low"] == pytest.approx(1.0) and result.overall["high"] == pytest.approx(1.0)
    assert result.emotion["acc_G"] == 1.0 and result.emotion["recovered"] == pytest.approx(1.0)
    assert not result.sessions["failed"].any() and result.spurious.empty


def test_the_identity_recovers_nothing_and_is_flagged(tmp_path) -> None:
    manifest, tables = benchmark(tmp_path)
    result = expression_fidelity("toy", manifest, with_restored(tables, lambda r, s, g: s.copy()), OPTIONS)
    assert result.overall["recovered"] == pytest.approx(0.0)
    assert result.emotion["recovered"] == pytest.approx(0.0)
    assert result.sessions["failed"].all() and len(result.failed) == 2


def test_a_constant_face_recovers_at_most_nothing_even_where_the_sensor_analysis_is_noise(tmp_path) -> None:
    manifest, tables = benchmark(tmp_path)

    def constant(rid: str, s: pd.DataFrame, g: pd.DataFrame) -> pd.DataFrame:  # one neutral face throughout
        return analysis(g, np.full((FRAMES, len(AUS)), 0.5), ["neutral"] * FRAMES)

    result = expression_fidelity("toy", manifest, with_restored(tables, constant), OPTIONS)
    aus = result.aus.set_index("au")
    # the sensor analysis here is uniform noise: worse than the best constant guess on every AU ...
    assert (aus["err_S"] > aus["floor"]).all()
    # ... so a constant face, which is better than noise in raw error, still earns nothing
    assert (aus["mae_C"] < aus["mae_S"]).all()
    assert result.overall["recovered"] <= 0 and result.emotion["recovered"] <= 0
    assert result.sessions["failed"].all(), result.sessions


@pytest.mark.parametrize(("error", "expected"), [("mae", 0.5), ("mse", 0.75)])
def test_half_the_bias_recovers_half_the_absolute_error_and_three_quarters_of_the_squared(
        tmp_path, error: str, expected: float) -> None:
    manifest, tables = biased_sensors(tmp_path)
    biased = _biased(manifest)
    options = FidelityOptions(resamples=300, error=error)
    result = expression_fidelity("toy", manifest, with_restored(tables, biased(0.1)), options)
    aus = result.aus.set_index("au")
    assert np.allclose(aus["mae_S"], 0.2) and np.allclose(aus["mae_C"], 0.1)
    assert (aus["floor"] > aus["err_S"]).all()  # the bias is below the floor: no cap
    assert result.overall["recovered"] == pytest.approx(expected)
    assert aus["recovered"].to_numpy() == pytest.approx([expected, expected])


def biased_sensors(tmp_path: Path) -> tuple[Manifest, dict[str, pd.DataFrame]]:
    """The benchmark with sensor videos read as the truth plus 0.2 on every AU (below the floor)."""
    manifest, tables = benchmark(tmp_path)
    sensors = with_restored(tables, _biased(manifest)(0.2))
    tables = {k: v for k, v in tables.items() if not k.endswith(".S")}
    tables.update({k.replace(".C", ".S"): v for k, v in sensors.items() if k.endswith(".C")})
    return manifest, tables


def _biased(manifest: Manifest):  # noqa: ANN202 - restorers reading as the hidden face with a constant AU bias
    return lambda delta: lambda r, s, g: analysis(_table(manifest, r), _truth(manifest, r) + delta)


def test_missing_faces_read_as_the_mean_expression_and_a_spurious_smile_is_flagged(tmp_path) -> None:
    manifest, tables = benchmark(tmp_path)
    for key in [k for k in tables if k.endswith(".S")]:
        tables[key] = analysis(tables[key], np.zeros((FRAMES, len(AUS))), ["neutral"] * FRAMES, found=False)

    def smiling(rid: str, s: pd.DataFrame, g: pd.DataFrame) -> pd.DataFrame:
        values = _truth(manifest, rid)
        values[:, 1] += 0.4
        return analysis(_table(manifest, rid), values)

    result = expression_fidelity("toy", manifest, with_restored(tables, smiling), OPTIONS)
    aus = result.aus.set_index("au")
    assert (aus["err_S"] >= aus["floor"]).all()  # no face: no better than a constant
    assert result.emotion["acc_S"] == 0.0
    assert set(result.spurious["signal"]) == {"AU12"} and len(result.spurious) == 2
    assert result.spurious["mean_C"].gt(result.spurious["mean_G"] + 0.3).all()


def test_the_bootstrap_draws_subjects_then_blocks() -> None:
    subjects = np.array(["A"] * 5 + ["B"] * 5)
    weights = hierarchical_weights(subjects, 400, seed=3)
    assert weights.shape == (400, 10) and np.all(weights.sum(1) == 10)
    only_a = (weights[:, 5:] == 0).all(1)  # both draws were subject A: about a quarter of the resamples
    assert 0.15 < only_a.mean() < 0.35


def test_a_subject_that_recovers_and_one_that_does_not_give_a_wide_interval(tmp_path) -> None:
    manifest, tables = biased_sensors(tmp_path)
    restored = with_restored(tables, lambda r, s, g: (g if r.startswith("S0") else s).copy())
    result = expression_fidelity("toy", manifest, restored, FidelityOptions(resamples=500))
    assert result.overall["recovered"] == pytest.approx(0.5)
    assert result.overall["low"] < 0.1 and result.overall["high"] > 0.9  # two subjects: the interval says so
    assert list(result.sessions["failed"]) == [False, True]


def _table(manifest: Manifest, rid: str) -> pd.DataFrame:
    rec = next(r for r in manifest.recordings if r.id == rid)
    return pd.read_parquet(manifest.resolve(rec.frames))


def _truth(manifest: Manifest, rid: str) -> np.ndarray:
    return _table(manifest, rid)[list(AUS)].to_numpy().copy()
