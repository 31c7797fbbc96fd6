"""The ``cnn`` analyzer: AU intensities and emotion probabilities per frame from an image model unveil trained
(``unveil train classifier --features pixels``), on face crops cut as ``unveil prepare`` cut its training crops.

Signals: one column per AU the model regresses (``AU12``...) and one per emotion class (``happiness``...,
softmax probabilities summing to 1). The face box is fixed when given (a fixed camera; the evaluation passes
each recording's prepare box), else mediapipe's detection per frame, squared and widened by the margin the
training crops had; with no face, the frame's signals are NaN.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unveil.analysis.base import FrameResult
from unveil.analysis.landmark import Box4
from unveil.data.datasets import Augment, to_tensor
from unveil.data.faces import Box, CropTransform, FaceTracker, make_detector
from unveil.errors import UnveilError
from unveil.methods.classifier import ClassifierConfig, FaceClassifier
from unveil.restore import inference_device
from unveil.train.checkpoint import load_checkpoint


class ImageModel:
    """A trained classifier checkpoint: the network in eval mode, its output names and input geometry."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        if Path(path).is_dir():  # a run folder: its latest checkpoint
            path = Path(path) / "checkpoints" / "latest.safetensors"
        tensors, meta = load_checkpoint(path)
        if meta.get("method") != "classifier":
            raise UnveilError(f"{path} holds a '{meta.get('method')}' model; the cnn analyzer needs one made by "
                              "'unveil train classifier --features pixels'.")
        config, outputs = meta["config"], meta["outputs"]
        model_config = ClassifierConfig(**{**config["model"], "pretrained": None})  # the weights are in the file
        self.aus: list[str] = list(outputs["aus"])
        self.emotions: list[str] = list(outputs["emotions"])
        self.crop: dict = dict(outputs.get("crop", {}))
        self.net = FaceClassifier(model_config, len(self.aus), len(self.emotions))
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net/")})
        self.device = inference_device(device)
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


class CNNAnalyzer:
    """Frames -> AU intensities and emotion probabilities of :class:`ImageModel` (see the module docstring)."""

    name = "cnn"

    def __init__(self, model: str | os.PathLike[str] | ImageModel, box: Box4 | None = None,
                 device: str = "cpu") -> None:
        self.model = model if isinstance(model, ImageModel) else ImageModel(model, device)
        self.signals = (*self.model.aus, *self.model.emotions)
        self.box = Box(*box) if box is not None else None
        self.tracker = None
        if self.box is None:
            crop = self.model.crop
            self.tracker = FaceTracker(make_detector(crop.get("detector", "mediapipe"), crop.get("min_confidence", 0.7)),
                                       margin=crop.get("margin", 0.6), no_face="mark")

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        crops, results = [], []
        for frame in frames:
            if self.tracker is None:
                box, found, confidence = self.box, True, 1.0
            else:
                tracked = self.tracker(frame)
                box, found, confidence = tracked.box, tracked.face_found, tracked.confidence
            results.append(FrameResult(found, confidence))
            if found and box is not None:
                crops.append((len(results) - 1, CropTransform(box, self.model.load_size).crop(frame)))
        if crops:
            values = self.model([c for _, c in crops])
            for (i, _), row in zip(crops, values, strict=True):
                results[i].values = dict(zip(self.signals, row.tolist(), strict=True))
        return results

    def close(self) -> None:
        detector = getattr(self.tracker, "detector", None)
        if detector is not None and hasattr(detector, "close"):
            detector.close()

