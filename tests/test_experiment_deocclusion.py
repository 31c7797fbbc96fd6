"""``unveil experiment deocclusion`` end to end on a few real labelled photos: held-out people, four occlusions
each, a trained arm, two judges, the table and figures; a rerun reuses what is done; labels a judge cannot read
are one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from unveil.data.labelled import prepare_labelled_folder
from unveil.errors import UnveilError
from unveil.experiments.deocclusion import DeocclusionConfig, run_deocclusion

from test_cli import unveil


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """24 labelled real photos of 12 people (happiness / neutral), prepared at 64 px, a third of them for testing."""
    labels = pd.read_csv(shared_data / "faces" / "labels.csv")
    labels = labels[labels["emotion"].isin(["happiness", "neutral"])]
    people = labels.groupby("identity").filter(lambda g: len(g) >= 2).groupby("identity").head(2)
    chosen = people[people["identity"].isin(people["identity"].unique()[:12])]
    folder = tmp_path_factory.mktemp("photos")
    (folder / "images").mkdir()
    for name in chosen["image"]:
        (folder / "images" / name).write_bytes((shared_data / "faces" / "images" / name).read_bytes())
    chosen[["image", "emotion", "identity"]].to_csv(folder / "labels.csv", index=False)
    prepare_labelled_folder(folder, folder / "prepared", load_size=64, val_fraction=0.2, test_fraction=0.3,
                            progress=False)
    return folder / "prepared"


@pytest.mark.slow
def test_the_experiment_writes_the_table_for_every_arm_and_judge(photos: Path, tmp_path: Path) -> None:
    config = DeocclusionConfig(samples=str(photos), methods=["deoccluder"], minutes=0.05, examples=3)
    result = run_deocclusion(config, tmp_path / "exp", progress=False)
    test = pd.read_parquet(tmp_path / "exp" / "test" / "test.parquet")
    table = pd.read_parquet(photos / "samples.parquet")
    held_out = set(table.loc[table["split"] == "test", "subject"])
    assert set(test["subject"]) <= held_out and len(test) == 4 * test["source"].nunique()
    trained_on = pd.read_parquet(tmp_path / "exp" / "data" / "samples.parquet")
    assert not set(trained_on["subject"]) & held_out  # nobody is both trained on and tested
    assert set(result.table["arm"]) == {"clean", "occluded", "deoccluder"}
    assert set(result.table["judge"]) == {"fer", "scorer"}
    assert result.table["accuracy"].between(0, 1).all() and (result.table["faces"] == len(test)).all()
    for name in ("occluded", "clean", "mask"):  # the occluded copy equals the clean face outside its mask
        assert (tmp_path / "exp" / "test" / name / test["item"].iloc[0]).is_file()
    first = test["item"].iloc[0]
    occluded, clean = (cv2.imread(str(tmp_path / "exp" / "test" / kind / first)).astype(int)
                       for kind in ("occluded", "clean"))
    mask = cv2.imread(str(tmp_path / "exp" / "test" / "mask" / first), cv2.IMREAD_GRAYSCALE)
    grown = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0  # resizing blends the outline's neighbours
    assert np.abs(occluded - clean)[~grown].max() < 40
    summary = json.loads((tmp_path / "exp" / "deocclusion.json").read_text())
    assert summary["classes"] == ["neutral", "happiness"] and "deoccluder" in summary["restorers"]
    assert {"table.md", "table.csv", "confusion.png", "examples.png"} <= {p.name for p in (tmp_path / "exp").iterdir()}
    done = (tmp_path / "exp" / "runs" / "deoccluder" / "done.json").stat().st_mtime
    again = run_deocclusion(config, tmp_path / "exp", progress=False)  # reuses the test set, scorer and arm
    assert (tmp_path / "exp" / "runs" / "deoccluder" / "done.json").stat().st_mtime == done
    assert again.table.equals(result.table)


def test_labels_a_judge_cannot_read_are_one_sentence(photos: Path, tmp_path: Path) -> None:
    table = pd.read_parquet(photos / "samples.parquet")
    table.loc[table["split"] == "test", "emotion"] = "boredom"
    (tmp_path / "bored").mkdir()
    table.assign(image=[str(photos / p) for p in table["image"]]).to_parquet(tmp_path / "bored" / "samples.parquet")
    with pytest.raises(UnveilError, match="does not know the emotion 'boredom'.*samples.parquet"):
        run_deocclusion(DeocclusionConfig(samples=str(tmp_path / "bored"), methods=["deoccluder"]), tmp_path / "x",
                        progress=False)
    result = unveil("experiment", "deocclusion", str(tmp_path / "bored"), "-o", str(tmp_path / "y"), "--method",
                    "stylegan9")
    assert result.returncode == 2 and "unknown arm 'stylegan9'" in result.stderr
