"""The seed-000 protocol end to end on a small synthetic benchmark, with a perfect restorer (the hidden clean
videos as C): C must score exactly like the hidden truth, and the sensors must hurt the analysis."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from unveil.errors import UnveilError
from unveil.evaluate.protocol import EvaluateConfig, evaluate, format_table, protocol_pairs
from unveil.evaluate.report import build_report
from unveil.synth import generate

from conftest import tiny_config


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("protocol")
    manifest = generate(tiny_config(sessions=2, size=128, fps=15, tasks=["sentence", "emotion"],
                                    emotion_repetitions=1, format="mp4"), root / "bench", workers=1, progress=False)
    restored = root / "restored"
    restored.mkdir()
    for rec in manifest.select(condition="occluded"):
        shutil.copy(manifest.resolve(rec.ground_truth), restored / f"{rec.id}.mp4")  # a perfect restorer
    result = evaluate(manifest, root / "evaluation", restored, EvaluateConfig(analyzers=["dlib68"], image_every=5),
                      progress=False)
    return manifest, result


@pytest.mark.slow
def test_perfect_restoration_scores_like_the_truth(evaluated) -> None:  # noqa: ANN001
    _, result = evaluated
    rows = result.pairs[result.pairs["normalise"] == "none"]
    assert set(result.pairs["normalise"]) == {"none", "zscore"}  # the z-normalised variant beside the raw one

    def value(task: str, pair: str, column: str = "dtw") -> float:
        return rows[(rows["task"] == task) & (rows["pair"] == pair)][column].item()

    assert set(rows["pair"]) == {"N1-N2", "N1-S1", "N1-C1", "N1-G1", "N2-S2", "N2-C2", "N2-G2", "G-S", "G-C"}
    assert (rows[rows["pair"] == "G-C"]["dtw"] == 0).all()
    for task in ("sentence", "emotion"):
        for i in ("1", "2"):
            for column in ("dtw", "mape"):
                assert value(task, f"N{i}-C{i}", column) == value(task, f"N{i}-G{i}", column)
            assert value(task, f"N{i}-S{i}") > 1.3 * value(task, f"N{i}-G{i}"), "the sensors should hurt"
    fidelity = result.fidelity["dlib68"]  # C reads exactly as the hidden face: all of the expression is back
    assert fidelity.overall["err_S"] > fidelity.overall["err_G"]
    assert fidelity.overall["recovered"] == 1.0 and fidelity.failed.empty and fidelity.spurious.empty
    images = result.images
    assert np.isinf(images[images["pair"] == "G-C"]["psnr"]).all()  # identical files: identical frames
    assert np.isinf(images[images["pair"] == "G-C"]["psnr_mask"].dropna()).all()
    sensors = images[images["pair"] == "G-S"].dropna(subset=["psnr_mask"])
    assert len(sensors) and (sensors["l1_mask"] > 0.1).all()
    # inside the sensors the error is larger than over the whole frame, where most pixels are the face's own
    assert (sensors["psnr_mask"] < sensors["psnr"]).all() and sensors["psnr_mask"].between(3, 20).all()


@pytest.mark.slow
@pytest.mark.parametrize("restorer", ["identity", "constant face"])
def test_a_bad_restorer_recovers_no_expression_and_the_report_flags_it(evaluated, restorer: str,
                                                                       tmp_path: Path) -> None:  # noqa: ANN001
    from unveil.data.video import open_writer, read_frames

    manifest, perfect = evaluated
    restored = tmp_path / "restored"
    restored.mkdir()
    for rec in manifest.select(condition="occluded"):
        if restorer == "identity":  # the sensor video handed back
            shutil.copy(manifest.resolve(rec.media), restored / f"{rec.id}.mp4")
            continue
        first = next(iter(read_frames(manifest.resolve(rec.ground_truth)))).image  # its first hidden frame, held
        with open_writer(restored / f"{rec.id}.mp4", rec.fps) as writer:
            for _ in range(rec.n_frames):
                writer.write(first)
    shutil.copytree(perfect.out / "timeseries", tmp_path / "evaluation" / "timeseries")  # N, S, G analysed once
    result = evaluate(manifest, tmp_path / "evaluation", restored,
                      EvaluateConfig(analyzers=["dlib68"], image_every=5), progress=False)
    fidelity = result.fidelity["dlib68"]
    assert fidelity.overall["recovered"] <= 0 and len(fidelity.failed) == 2  # both sessions
    text = build_report(result.out, tmp_path / "report.html").read_text()
    assert 'class="failed"' in text and "no closer to the true expression than the sensor video" in text


@pytest.mark.slow
def test_outputs_and_report(evaluated, tmp_path: Path) -> None:  # noqa: ANN001
    _, result = evaluated
    out = result.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert "raw series" in metrics["options"] and metrics["excluded"] == ["AU43"]
    assert set(metrics["headline"]["dlib68"]) == {"N1-N2", "N-S", "N-C", "N-G", "G-S", "G-C"}
    assert metrics["headline"]["dlib68"]["N-C"] < metrics["headline"]["dlib68"]["N-S"]
    assert "lpips" in metrics["skipped"] and "not found" in metrics["skipped"]["fid"]  # no weights: said, not zero
    table = (out / "tables" / "au_dlib68.md").read_text()
    assert "unconstrained DTW" in table and "| N1-C1 |" in table and "±" not in table  # one subject: no spread
    for name in metrics["figures"]:
        assert (out / "figures" / name).stat().st_size > 5000
    page = build_report(out.parent, tmp_path / "report.html")
    text = page.read_text()
    assert "N1-N2" in text and "data:image/png;base64," in text and "not found" in text
    # pictures first: each expression as S, C, G, N per subject and task, and an animated S | C | G
    assert set(metrics["pictures"]) == {"moments_S01_sentence.png", "moments_S01_emotion.png", "side_by_side.gif"}
    assert "data:image/gif;base64," in text
    assert text.index("Restored frames") < text.index("Expression against the hidden truth") < text.index("N1-N2")
    from PIL import Image

    with Image.open(out / "figures" / "side_by_side.gif") as gif:
        assert gif.n_frames >= 20 and gif.size[0] == 384  # about four seconds, S | C | G


@pytest.mark.slow
def test_report_in_chromium(evaluated, tmp_path: Path) -> None:  # noqa: ANN001
    from unveil.evaluate.browser import check_page, find_browser

    try:
        find_browser()
    except UnveilError:
        pytest.skip("no Chromium here (.ci/run installs it)")
    _, result = evaluated
    good = check_page(build_report(result.out, tmp_path / "report.html"), tmp_path / "report.png")
    assert good.ok, (good.console, good.spread)
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>missingFunction()</script></body></html>")
    bad = check_page(broken, tmp_path / "broken.png")
    assert bad.console and not bad.ok and bad.spread < 5  # the checker sees the error and the blank page


def test_table_layout_and_pairs() -> None:
    import pandas as pd

    rows = pd.DataFrame({"subject": ["A", "A", "B", "B"], "task": ["t"] * 4, "pair": ["N1-N2", "N1-S1"] * 2,
                         "dtw": [1.0, 3.0, 2.0, 5.0], "mape": [0.1, 0.3, 0.2, 0.5]})
    table = format_table(rows)
    assert table.loc["N1-N2", "DTW t"] == "1.500 ± 0.707" and table.loc["N1-S1", "MAPE t"] == "0.400 ± 0.141"
    assert list(table.index) == ["N1-N2", "N1-S1"]


def test_bad_inputs(tmp_path: Path) -> None:
    from unveil.data.manifest import Manifest

    manifest = Manifest(recordings=[])
    with pytest.raises(UnveilError, match="does not exist"):
        evaluate(manifest, tmp_path / "out", tmp_path / "missing")
    with pytest.raises(UnveilError, match="needs a model"):
        evaluate(manifest, tmp_path / "out", None, EvaluateConfig(analyzers=["forest"]))
    assert protocol_pairs(manifest, set()) == []


@pytest.mark.slow
def test_perceptual_scores_with_local_weights(tmp_path: Path) -> None:
    """LPIPS and FID run inside the protocol when their files exist (random weights: the numbers mean nothing,
    the plumbing is what is checked: one row per non-truth pair, finite scores, identical videos score 0)."""
    import torch
    import torchvision
    from test_metrics_perceptual import fid_weights_file

    from unveil.evaluate.protocol import media_of, perceptual_scores

    manifest = generate(tiny_config(size=64, fps=10, format="mp4"), tmp_path / "bench", workers=1, progress=False)
    restored = tmp_path / "restored"
    restored.mkdir()
    rec = manifest.select(condition="occluded")[0]
    shutil.copy(manifest.resolve(manifest.select(condition="normal")[0].media), restored / f"{rec.id}.mp4")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), tmp_path / "alexnet.pth")
    fid_weights_file(tmp_path / "fid.safetensors")
    config = EvaluateConfig(lpips_weights=str(tmp_path / "alexnet.pth"), fid_weights=str(tmp_path / "fid.safetensors"),
                            image_every=4)
    skipped: dict[str, str] = {}
    table = perceptual_scores(manifest, media_of(manifest, restored), config, skipped, progress=False)
    assert not skipped and set(table["pair"]) == {"N1-S1", "N1-C1", "N1-G1"}
    assert np.isfinite(table[["lpips", "fid"]].to_numpy()).all()
    clean = table[table["pair"] == "N1-C1"].iloc[0]  # C is a copy of N here
    assert clean["lpips"] == pytest.approx(0, abs=1e-6) and clean["fid"] == pytest.approx(0, abs=1e-3)
    assert table[table["pair"] == "N1-S1"]["lpips"].item() > 0
