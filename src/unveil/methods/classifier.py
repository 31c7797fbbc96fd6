"""Image AU / emotion models trained by unveil (the ``cnn`` analyzer): one network with an AU-intensity head
(regression, sigmoid to [0, 1], mean squared error) and an emotion head (softmax over neutral and the basic
emotions, cross-entropy on the frames that have an emotion label).

Seed 000 analyses with JAA-Net (AUs) and ResMaskNet (emotions), both trained on unobstructed faces, and shows
that they fail on sensor-covered ones. Trained here on the ``normal`` frames of a prepared benchmark, this
model plays their part: its time series on S, C and N videos say how much a restoration gives back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from unveil.config import Config
from unveil.data.datasets import IGNORE, Augment, LabelledDataset, au_label_columns, emotion_names, select, to_tensor
from unveil.errors import UnveilError
from unveil.facs import BASIC_EMOTIONS
from unveil.methods.registry import MethodSpec, register
from unveil.train.method import MethodBase

if TYPE_CHECKING:
    from unveil.train.checkpoint import Checkpoint
    from unveil.train.config import TrainConfig
    from unveil.train.method import Batches, Step


class ClassifierConfig(Config):
    """Options of the image AU / emotion model (``unveil train classifier --features pixels``)."""

    backbone: Literal["small", "resnet18"] = Field(
        default="small", description="small: a 4-stage CNN for CPU budgets; resnet18: torchvision's ResNet-18.")
    width: int = Field(default=32, ge=4, description="Channels of the small CNN's first stage (doubling per stage).")
    norm: Literal["batch", "group"] = Field(default="batch", description="The small CNN's normalisation: batch, or "
                                                                        "group (independent of the batch).")
    pretrained: str | None = Field(default=None, description="ImageNet weights for resnet18 (a local "
                                                             "torchvision .pth or .safetensors file).")
    aus: list[str] | None = Field(default=None, description="AU columns to regress (default: every AU column "
                                                            "that varies in the training frames).")
    emotions: list[str] = Field(default_factory=lambda: ["neutral", *BASIC_EMOTIONS],
                                description="Emotion classes (empty: no emotion head).")
    emotion_tasks: list[str] = Field(default_factory=lambda: ["emotion"],
                                     description="Tasks whose 'event' column names the emotion shown.")
    train_on: dict[str, Any] = Field(default_factory=lambda: {"condition": "normal"},
                                     description="Rows to learn from (default: unobstructed faces only).")
    au_loss: Literal["bce", "mse"] = Field(default="bce", description="bce: cross-entropy against the intensity "
                                                                     "(stronger gradients near 0 and 1); mse.")
    au_weight: float = Field(default=1.0, ge=0)
    emotion_weight: float = Field(default=0.1, ge=0, description="Weight of the cross-entropy against the AU MSE.")
    dropout: float = Field(default=0.2, ge=0, lt=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    optimizer: Literal["adamw", "radam"] = Field(default="adamw", description="adamw, or radam (seed 002's AU "
                                                                              "classifier; decoupled weight decay).")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(math.gcd(8, channels), channels)


def _block(cin: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), _norm(norm, cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         _norm(norm, cout), nn.ReLU(inplace=True))


class FaceClassifier(nn.Module):
    """Backbone, global average pooling, an AU head and an emotion head. Input: RGB in [-1, 1]."""

    def __init__(self, config: ClassifierConfig, n_aus: int, n_emotions: int) -> None:
        super().__init__()
        self.imagenet = config.backbone == "resnet18"
        if self.imagenet:
            import torchvision

            self.backbone = torchvision.models.resnet18(weights=None)
            if config.pretrained:
                self.backbone.load_state_dict(_load_weights(config.pretrained))
            features = self.backbone.fc.in_features
            self.backbone.fc = nn.Identity()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        else:
            w = config.width
            n = config.norm
            self.backbone = nn.Sequential(_block(3, w, n), _block(w, 2 * w, n), _block(2 * w, 4 * w, n),
                                          _block(4 * w, 8 * w, n), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            features = 8 * w
        self.dropout = nn.Dropout(config.dropout)
        self.au_head = nn.Linear(features, n_aus) if n_aus else None
        self.emotion_head = nn.Linear(features, n_emotions) if n_emotions else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``au_logits`` (intensities are their sigmoid, in [0, 1]) and ``emotion`` logits."""
        if self.imagenet:
            x = ((x + 1) / 2 - self.mean) / self.std
        h = self.dropout(self.backbone(x))
        out = {}
        if self.au_head is not None:
            out["au_logits"] = self.au_head(h)
        if self.emotion_head is not None:
            out["emotion"] = self.emotion_head(h)
        return out


def _load_weights(path: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors, or a torch file read with ``weights_only`` (no code runs)."""
    file = Path(path)
    if not file.is_file():
        raise UnveilError(f"The pretrained weights {file} do not exist (torchvision's resnet18-f37072fd.pth, "
                          "downloaded once elsewhere, can be given here).")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable or unsafe file gets one sentence
        raise UnveilError(f"{file} is not a plain tensor file ({type(error).__name__}); give torchvision's "
                          "ResNet-18 state dict.") from None


def emotion_labels(table: pd.DataFrame, config: ClassifierConfig) -> pd.Series:
    """The emotion class name of each row, or None (see :func:`unveil.data.datasets.emotion_names`)."""
    return emotion_names(table, config.emotion_tasks, config.emotions)


def resolve_aus(table: pd.DataFrame, config: ClassifierConfig) -> list[str]:
    """The AU columns to regress: the configured ones (checked), else every AU column that varies."""
    if config.aus is not None:
        absent = [a for a in config.aus if a not in table.columns]
        if absent:
            raise UnveilError(f"samples.parquet has no AU column {', '.join(absent)}.")
        return list(config.aus)
    return au_label_columns(table)


class ClassifierMethod(MethodBase):
    """The AU / emotion model in the training loop (AdamW, the loop's learning-rate policies). AU labels must be
    intensities in [0, 1] (the benchmark's are; divide FACS 0-5 codes by 5)."""

    name = "classifier"
    monitor = "loss"

    def __init__(self, config: TrainConfig, table: pd.DataFrame, root: Path, seed: int) -> None:
        self.config, c = config, config.model
        if config.preprocess != "resize_and_crop":
            raise UnveilError(f"The classifier takes preprocess resize_and_crop only (the cnn analyzer cuts faces at "
                              f"load_size), not {config.preprocess}.")
        rows = select(table, c.train_on)
        if rows.empty:
            raise UnveilError(f"No prepared frames match {c.train_on}; the classifier has nothing to learn from.")
        self.aus = resolve_aus(rows[rows["split"] == "train"], c)
        values = rows[self.aus].to_numpy(np.float64)
        if ((values < 0) | (values > 1)).any():
            raise UnveilError(f"AU labels must be intensities in [0, 1]; {', '.join(self.aus)} range from "
                              f"{np.nanmin(values):g} to {np.nanmax(values):g} (divide FACS 0-5 codes by 5).")
        names = emotion_labels(rows, c)
        present = set(names[rows["split"] == "train"].dropna())
        self.emotions = [e for e in c.emotions if e in present]  # classes the training rows show
        emotion = np.array([self.emotions.index(e) if isinstance(e, str) else IGNORE for e in names], np.int64)
        if not self.aus and not self.emotions:
            raise UnveilError("The prepared frames have neither varying AU labels nor emotion labels to learn.")
        self.module = FaceClassifier(c, len(self.aus), len(self.emotions))

        def dataset(split: str, train: bool) -> LabelledDataset | None:
            chosen = np.flatnonzero((rows["split"] == split).to_numpy())[:config.max_dataset_size if train else None]
            if not len(chosen):
                return None
            augment = Augment(config.load_size, config.crop_size, config.flip, train=train)
            return LabelledDataset(root, rows.iloc[chosen], self.aus, augment, emotion[chosen], seed)

        self.crop: dict[str, Any] = {}
        if (root / "prepare.yaml").is_file():
            from unveil.config import read_yaml_mapping

            prepared = read_yaml_mapping(root / "prepare.yaml")
            self.crop = {k: prepared[k] for k in ("crop", "detector", "min_confidence", "margin") if k in prepared}
        train_set = dataset("train", True)
        if train_set is None:
            raise UnveilError("No training frames: samples.parquet has no rows in the 'train' split.")
        self.train_set, self.val_set = train_set, dataset("val", False)

    def describe(self) -> dict[str, Any]:
        """Output names, and how the training crops were cut (so that analysis cuts frames alike)."""
        return {"aus": self.aus, "emotions": self.emotions, "crop": self.crop}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config.model
        if c.optimizer == "radam":
            return {"net": torch.optim.RAdam(self.module.parameters(), lr=c.lr, weight_decay=c.weight_decay,
                                             decoupled_weight_decay=True)}
        return {"net": torch.optim.AdamW(self.module.parameters(), lr=c.lr, weight_decay=c.weight_decay)}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c, out = self.config.model, self.module(batch["image"])
        parts: dict[str, torch.Tensor] = {}
        if "au_logits" in out:
            known = ~torch.isnan(batch["aus"])  # real data may lack some labels
            logits, target = out["au_logits"].float(), batch["aus"].nan_to_num()
            error = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") if c.au_loss == "bce"
                     else (torch.sigmoid(logits) - target) ** 2)
            parts[f"au_{c.au_loss}"] = error[known].mean() if known.any() else logits.sum() * 0.0
        if "emotion" in out:
            labelled = batch["emotion"] != IGNORE
            parts["emotion_ce"] = (F.cross_entropy(out["emotion"].float(), batch["emotion"], ignore_index=IGNORE)
                                   if labelled.any() else out["emotion"].sum() * 0.0)
        loss = c.au_weight * parts.get(f"au_{c.au_loss}", 0.0) + c.emotion_weight * parts.get("emotion_ce", 0.0)
        return {"loss": loss, **parts, "_out": out}  # type: ignore[dict-item]

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        with step.autocast():
            parts = self.losses(batch)
        step.backward(parts["loss"])
        return {k: v for k, v in parts.items() if not k.startswith("_")}

    def validate(self, batches: Batches) -> dict[str, float]:
        """Mean losses, the AU mean absolute error, and the emotion accuracy over the frames with a label."""
        sums = {"loss": 0.0, "au_mae": 0.0, "emotion_hits": 0.0}
        counts = {"frames": 0, "au_labels": 0, "emotions": 0}
        for batch in batches:
            parts = self.losses(batch)
            out = parts.pop("_out")
            sums["loss"] += float(parts["loss"]) * len(batch["image"])
            counts["frames"] += len(batch["image"])
            if "au_logits" in out:
                known = ~torch.isnan(batch["aus"])
                error = (torch.sigmoid(out["au_logits"].float()) - batch["aus"].nan_to_num()).abs()
                sums["au_mae"] += float(error[known].sum())
                counts["au_labels"] += int(known.sum())
            if "emotion" in out:
                labelled = batch["emotion"] != IGNORE
                sums["emotion_hits"] += float((out["emotion"].argmax(1) == batch["emotion"])[labelled].sum())
                counts["emotions"] += int(labelled.sum())
        result = {"loss": sums["loss"] / max(counts["frames"], 1)}
        if counts["au_labels"]:
            result["au_mae"] = sums["au_mae"] / counts["au_labels"]
        if counts["emotions"]:
            result["emotion_acc"] = sums["emotion_hits"] / counts["emotions"]
        return result



class ImageModel:
    """A trained classifier for inference: the network in eval mode, its output names and input geometry."""

    def __init__(self, saved: Checkpoint, device: torch.device) -> None:
        config, outputs = saved.config, saved.outputs
        model_config = ClassifierConfig(**{**config["model"], "pretrained": None})  # the weights are in the file
        self.aus: list[str] = list(outputs["aus"])
        self.emotions: list[str] = list(outputs["emotions"])
        self.crop: dict = dict(outputs.get("crop", {}))
        self.net = FaceClassifier(model_config, len(self.aus), len(self.emotions))
        self.net.load_state_dict(saved.network_state())
        self.device = device
        self.net.to(self.device).eval()
        self.load_size, self.crop_size = int(config["load_size"]), int(config["crop_size"])
        self.view = Augment(self.load_size, self.crop_size, train=False)  # what validation saw: centre crop

    @torch.no_grad()
    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(n, len(aus) + len(emotions)): AU intensities, then emotion probabilities, for crops of load_size."""
        batch = torch.stack([to_tensor(self.view([c], None)[0]) for c in crops]).to(self.device)  # type: ignore[arg-type]
        out = self.net(batch)
        parts = []
        if "au_logits" in out:
            parts.append(torch.sigmoid(out["au_logits"].float()))
        if "emotion" in out:
            parts.append(torch.softmax(out["emotion"].float(), dim=1))
        return torch.cat(parts, dim=1).cpu().numpy().astype(np.float64)


#: A CPU-budget preset: the small CNN at 64 px (crops resized to 72), 14 + 6 epochs with linear decay, batch 16.
#: On about 1,000 prepared crops an epoch takes about 3 s on 2 cores.
CPU_PRESET: dict[str, Any] = {"model": {"backbone": "small", "width": 32, "lr": 1e-3},
                              "n_epochs": 14, "n_epochs_decay": 6, "lr_policy": "linear",
                              "load_size": 72, "crop_size": 64, "flip": True, "batch_size": 16}

#: Seed 002's AU classifier (its table 1): MSE, RAdam, lr 1e-3, batch 100, up to 1,000 epochs, early stopping with
#: patience 20; AU heads only, no flips (a flipped MNIST grid moves digits to other cells). The seed's network is
#: not given: the small CNN at width 16. Sizes are the MNIST grid's 96 px; give others for faces.
SEED002_PRESET: dict[str, Any] = {
    "model": {"backbone": "small", "width": 16, "au_loss": "mse", "optimizer": "radam", "lr": 1e-3,
              "weight_decay": 0.0, "emotions": [], "train_on": {}},
    "n_epochs": 1000, "n_epochs_decay": 0, "patience": 20, "batch_size": 100, "load_size": 96, "crop_size": 96,
    "flip": False,
}

register(MethodSpec(
    name="classifier", summary="An image CNN for AU intensities and emotions (the cnn analyzer), from labelled frames.",
    config=ClassifierConfig, method=ClassifierMethod, load=ImageModel, produces="analysis model", data="labelled",
    presets={"cpu": CPU_PRESET, "seed002": SEED002_PRESET}, report=("val_au_mae", "val_emotion_acc")))
