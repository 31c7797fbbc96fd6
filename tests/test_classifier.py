"""The image AU / emotion classifier: trained by the shared loop on the normal frames of a small benchmark, its
series follow the rendered ground truth on the normal frames it did not learn from, fail on sensor-covered ones
(as JAA-Net does in seed 000), and take part in the protocol's emotion table."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from unveil.errors import UnveilError
from unveil.methods.classifier import ClassifierConfig
from unveil.methods.cyclegan import CycleGANConfig
from unveil.train.loop import TrainConfig

from conftest import tiny_config


def test_train_config_reads_model_options_of_its_method() -> None:
    assert isinstance(TrainConfig().model, CycleGANConfig)
    config = TrainConfig(method="classifier", model={"width": 8})
    assert isinstance(config.model, ClassifierConfig) and config.model.width == 8
    assert TrainConfig.model_validate(config.model_dump(mode="json")) == config  # what checkpoints store
    with pytest.raises(ValidationError, match="'ngf' is not a classifier option"):
        TrainConfig(method="classifier", model={"ngf": 8})  # a CycleGAN option
    with pytest.raises(ValidationError, match="takes ClassifierConfig options"):
        TrainConfig(method="classifier", model=CycleGANConfig())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from unveil.data.prepare import PrepareConfig, prepare
    from unveil.synth import generate
    from unveil.train.loop import train

    root = tmp_path_factory.mktemp("classifier")
    manifest = generate(tiny_config(sessions=2, size=128, fps=15, tasks=["emotion"], emotion_repetitions=2,
                                    format="mp4"), root / "bench", workers=1, progress=False)
    prepare(manifest, root / "prepared", PrepareConfig(fraction=0.5, load_size=72), workers=1, progress=False)
    config = TrainConfig(method="classifier", model={"width": 32}, n_epochs=12, n_epochs_decay=6, load_size=72,
                         crop_size=64, batch_size=16)
    result = train(root / "prepared", root / "run", config, progress=False)
    return manifest, root, result


@pytest.mark.slow
def test_cnn_follows_the_truth_on_normal_faces_and_fails_under_sensors(trained) -> None:  # noqa: ANN001
    from unveil.analysis import make_analyzer
    from unveil.analysis.base import analyze_media
    from unveil.data.prepare import recording_boxes

    manifest, root, result = trained
    assert result.history[-1]["val_emotion_acc"] > 1 / 7  # above chance on held-out frames
    checkpoint = result.run_dir / "checkpoints" / "latest.safetensors"
    boxes = recording_boxes(manifest, manifest.recordings, root / "prepared")
    samples = pd.read_parquet(root / "prepared" / "samples.parquet")
    scores = {}
    for rec in manifest.select(session="2"):
        box = boxes[rec.id]
        analyzer = make_analyzer("cnn", model=checkpoint, box=(box.x, box.y, box.w, box.h))
        table = analyze_media(manifest.resolve(rec.media), analyzer, progress=False)
        seen = samples[(samples["recording"] == rec.id) & (samples["split"] == "train")]["frame"]
        table = table[~table["frame"].isin(seen)]  # frames the model did not learn from
        truth = pd.read_parquet(manifest.resolve(rec.frames)).set_index("frame").loc[table["frame"]]
        predicted = np.array(analyzer.model.emotions)[table[analyzer.model.emotions].to_numpy().argmax(1)]
        expressive = truth["event"].to_numpy() != "neutral"
        scores[rec.condition] = {
            "accuracy": float((predicted == truth["event"].to_numpy()).mean()),
            "expressive": float((predicted == truth["event"].to_numpy())[expressive].mean()),
            "r_AU12": float(np.corrcoef(table["AU12"], truth["AU12"])[0, 1]),
        }
        assert np.allclose(table[analyzer.model.emotions].sum(axis=1), 1.0)  # probabilities
    print(scores)
    normal, sensor = scores["normal"], scores["occluded"]
    assert normal["r_AU12"] > 0.6 and normal["expressive"] > 0.4, normal
    assert sensor["r_AU12"] < normal["r_AU12"] - 0.3 and sensor["expressive"] < normal["expressive"] - 0.2, sensor


@pytest.mark.slow
def test_emotion_table_in_the_protocol(trained, tmp_path: Path) -> None:  # noqa: ANN001
    from unveil.evaluate.protocol import EvaluateConfig, evaluate

    manifest, root, result = trained
    restored = tmp_path / "restored"
    restored.mkdir()
    for rec in manifest.select(condition="occluded"):
        shutil.copy(manifest.resolve(rec.ground_truth), restored / f"{rec.id}.mp4")  # a perfect restorer
    config = EvaluateConfig(analyzers=["cnn"], cnn=str(result.run_dir), samples=str(root / "prepared"), every=2,
                            image_every=50)
    evaluation = evaluate(manifest, tmp_path / "evaluation", restored, config, progress=False)
    rows = evaluation.pairs[evaluation.pairs["normalise"] == "none"]
    assert set(rows["signals"]) == {"au", "emotion"}
    emotion = rows[rows["signals"] == "emotion"].set_index("pair")
    for i in ("1", "2"):
        assert emotion.loc[f"N{i}-C{i}", "dtw"] == emotion.loc[f"N{i}-G{i}", "dtw"]  # C is the truth here
        assert emotion.loc[f"N{i}-S{i}", "dtw"] > 1.3 * emotion.loc[f"N{i}-G{i}", "dtw"], "sensors should hurt"
    metrics = json.loads((evaluation.out / "metrics.json").read_text())
    assert "emotion_cnn" in metrics["tables"] and "cnn (emotions)" in metrics["headline"]
    assert "signal_cnn_happiness.png" in metrics["figures"]
    assert "| N1-C1 |" in (evaluation.out / "tables" / "emotion_cnn.md").read_text()
    fidelity = evaluation.fidelity["cnn"]  # C is the hidden truth: it reads the emotion as G does
    assert fidelity.emotion["acc_C"] == fidelity.emotion["acc_G"] and fidelity.spurious.empty


def test_cnn_refuses_other_checkpoints(tmp_path: Path) -> None:
    from unveil.analysis.cnn import CNNAnalyzer
    from unveil.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "gan.safetensors", {"net/x": torch.zeros(1)},
                           {"method": "cyclegan"})
    with pytest.raises(UnveilError, match="holds a cyclegan model, which does not analyse frames; give a checkpoint "
                                          "of classifier"):
        CNNAnalyzer(path, box=(0, 0, 10, 10))
    with pytest.raises(UnveilError, match="does not exist"):
        CNNAnalyzer(tmp_path / "missing.safetensors", box=(0, 0, 10, 10))


def test_cli_trains_and_analyses_with_the_cnn(tmp_path: Path) -> None:
    from test_cli import unveil

    from conftest import tiny_prepared

    prepared = tiny_prepared(tmp_path, fraction=0.5)
    (tmp_path / "cnn.yaml").write_text("model: {width: 4}\nn_epochs: 1\nn_epochs_decay: 1\nbatch_size: 8\n")
    result = unveil("train", "classifier", "--samples", str(prepared), "-o", str(tmp_path / "run"),
                    "--config", str(tmp_path / "cnn.yaml"), "--load-size", "36", "--crop-size", "32", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "2 epochs" in result.stdout and "val_au_mae" in result.stdout
    video = tmp_path / "bench" / "S01" / "ses1" / "normal-1" / "sentence"  # a folder of frames
    out = tmp_path / "cnn.parquet"
    analysed = unveil("analyze", str(video), "-o", str(out), "--analyzer", "cnn", "--model", str(tmp_path / "run"),
                      "--box", "0,0,64,64", "--quiet")
    assert analysed.returncode == 0, analysed.stderr
    table = pd.read_parquet(out)
    aus = [c for c in table.columns if c.startswith("AU")]
    assert table["face_found"].all() and aus and ((table[aus] >= 0) & (table[aus] <= 1)).all().all()
    wrong = unveil("train", "classifier", "--samples", str(prepared), "-o", str(tmp_path / "x"), "--norm", "layer")
    assert wrong.returncode == 2 and "'norm' is invalid" in wrong.stderr


def test_resnet18_backbone_takes_local_imagenet_weights(tmp_path: Path) -> None:
    import torchvision

    from unveil.methods.classifier import FaceClassifier

    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    net = FaceClassifier(ClassifierConfig(backbone="resnet18", pretrained=str(tmp_path / "resnet18.pth")), 3, 7)
    assert torch.equal(net.backbone.conv1.weight, reference.conv1.weight)
    out = net.eval()(torch.zeros(2, 3, 64, 64))
    assert out["au_logits"].shape == (2, 3) and out["emotion"].shape == (2, 7)
    torch.save({"net": Payload()}, tmp_path / "evil.pth")  # a pickle with code in it is refused, not run
    with pytest.raises(UnveilError, match="not a plain tensor file"):
        FaceClassifier(ClassifierConfig(backbone="resnet18", pretrained=str(tmp_path / "evil.pth")), 3, 7)
    with pytest.raises(UnveilError, match="do not exist"):
        FaceClassifier(ClassifierConfig(backbone="resnet18", pretrained=str(tmp_path / "none.pth")), 3, 7)


class Payload:
    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (print, ("payload ran",))
