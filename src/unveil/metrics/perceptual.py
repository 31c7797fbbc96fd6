"""Perceptual scores of seed 000: LPIPS (Zhang et al. 2018, the ``lpips`` package) and the Fréchet Inception
Distance (Heusel et al. 2017, ``pytorch-fid``'s Inception), exact and FastFID (Mathiasen & Hvilshøj 2021),
plus KID (Bińkowski et al. 2018) for small sets.

No package ships the backbone weights and nothing is downloaded at run time: pass the files (torchvision's
``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth`` for LPIPS, ``pt_inception-2015-12-05-6726825d.pth`` for
FID) or put them in ``$UNVEIL_WEIGHTS`` (default ``~/.cache/unveil/weights``). A missing file is reported in
one sentence and the report leaves the metric out, never as zero.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from unveil.errors import UnveilError

LPIPS_BACKBONES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
FID_BATCH = 128  # seed 000 computes every FID over sets of 128 frames


def weights_dir() -> Path:
    """Where weight files are looked up when no path is given."""
    return Path(os.environ.get("UNVEIL_WEIGHTS", Path.home() / ".cache" / "unveil" / "weights"))


def find_weights(path: str | os.PathLike[str] | None, filename: str, metric: str) -> Path:
    """``path`` if given, else ``weights_dir()/filename``; one clear sentence when the file is not there."""
    file = Path(path) if path is not None else weights_dir() / filename
    if not file.is_file():
        raise UnveilError(f"{metric} needs the weights file {filename}, not found at {file}; download it once and "
                          f"pass its path (or put it in {weights_dir()}, or set UNVEIL_WEIGHTS).")
    return file


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or from a PyTorch file read with ``weights_only`` (no code runs)."""
    file = Path(path)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UnveilError(f"{file} is not a PyTorch weights file that can be loaded safely ({error}).") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _to_tensor(images: Iterable[np.ndarray], device: torch.device) -> torch.Tensor:
    """RGB uint8 (h, w, 3) images -> float tensor (n, 3, h, w) in [0, 1]."""
    array = np.stack([np.asarray(i) for i in images])
    if array.ndim != 4 or array.shape[-1] != 3:
        raise UnveilError(f"Expected RGB images (h, w, 3), got an array of shape {array.shape[1:]}.")
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float() / 255


class LPIPS:
    """LPIPS distance (0 = same; seed 000 reports about 0.27 between two normal sessions, 0.55 against sensors).

    ``backbone`` is the torchvision ImageNet weights of ``net``; the linear calibration layers ship with ``lpips``.
    """

    def __init__(self, backbone: str | os.PathLike[str] | None = None, net: str = "alex", device: str = "cpu",
                 random_backbone: bool = False) -> None:
        if net not in LPIPS_BACKBONES:
            raise UnveilError(f"Unknown LPIPS network '{net}'; choose {' or '.join(LPIPS_BACKBONES)}.")
        # the file first: a missing one is said at once, before the network is built
        weights = None if random_backbone else find_weights(backbone, LPIPS_BACKBONES[net], f"LPIPS ({net})")
        import lpips

        self.device = torch.device(device)
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated 'pretrained' flag
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        if weights is not None:  # random_backbone: tests only, the numbers mean nothing
            state = load_state_dict(weights)
            self.model.net.load_state_dict(backbone_to_lpips(state, self.model.net.state_dict()))
        self.model.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, a: Iterable[np.ndarray], b: Iterable[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Per-pair distances of two equally long image lists."""
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise UnveilError(f"LPIPS compares pairs; got {len(a)} and {len(b)} images.")
        out = []
        for i in range(0, len(a), batch_size):
            x, y = _to_tensor(a[i:i + batch_size], self.device), _to_tensor(b[i:i + batch_size], self.device)
            out.append(self.model(x, y, normalize=True).flatten().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def backbone_to_lpips(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision's ``features.{i}.weight`` to lpips's ``slice{k}.{i}.weight`` (lpips keeps the indices)."""
    by_index = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("features.")}
    renamed = {}
    for key in target:
        _, rest = key.split(".", 1)  # "slice2.3.weight" -> "3.weight"
        if rest not in by_index:
            raise UnveilError(f"The LPIPS backbone file has no 'features.{rest}'; is it torchvision's ImageNet model?")
        renamed[key] = by_index[rest]
    return renamed


# -- FID ----------------------------------------------------------------------------------------------------

def fid_inception(weights: str | os.PathLike[str] | None = None, device: str = "cpu", random_weights: bool = False
                  ) -> torch.nn.Module:
    """pytorch-fid's FID Inception (pool3, 2048 features) with weights from a local file (no download)."""
    state = None if random_weights else load_state_dict(find_weights(weights, FID_WEIGHTS, "FID"))
    from pytorch_fid import inception as fid_module


    def local_weights(*_: object, **__: object) -> dict[str, torch.Tensor] | None:
        return state

    # pytorch-fid builds its patched Inception and fetches the weights from a URL in one function: hand it the
    # local file instead. random_weights (tests only) also skips the load, keeping the initial weights.
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(fid_module, "load_state_dict_from_url", local_weights))
        if state is None:
            stack.enter_context(mock.patch.object(torch.nn.Module, "load_state_dict", lambda *_, **__: None))
        model = fid_module.InceptionV3([fid_module.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: Iterable[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """(n, 2048) pool3 features of RGB uint8 images (any size; the model resizes to 299)."""
    device = next(model.parameters()).device
    images = list(images)
    out = [model(_to_tensor(images[i:i + batch_size], device))[0].flatten(1).cpu().numpy().astype(np.float64)
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 2048))


def _check_features(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise UnveilError(f"Feature sets must be (n, d) with equal d; got {x.shape} and {y.shape}.")
    if len(x) < 2 or len(y) < 2:
        raise UnveilError("FID needs at least 2 images per set.")
    return x, y


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Exact FID between two feature sets, by pytorch-fid (matrix square root of the d x d covariance product)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    x, y = _check_features(x, y)
    return float(calculate_frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)))


def fast_frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FastFID (Mathiasen & Hvilshøj 2021): tr sqrt(C_x C_y) without forming either d x d covariance.

    With centred features X (n x d) and Y (m x d), C_x C_y = X^T X Y^T Y / ((n-1)(m-1)) has the same non-zero
    eigenvalues as (X Y^T)^T (X Y^T) / ((n-1)(m-1)), so the trace of its square root is the sum of the singular
    values of the small n x m matrix X Y^T, scaled. Cost O(n m d) instead of O(d^3): seed 000's batches of 128.
    """
    x, y = _check_features(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    n, m = len(x), len(y)
    trace_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    trace_x = np.einsum("ij,ij->", xc, xc) / (n - 1)
    trace_y = np.einsum("ij,ij->", yc, yc) / (m - 1)
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + trace_x + trace_y - 2 * trace_sqrt)


def kernel_inception_distance(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, mean and std over random subsets."""
    x, y = _check_features(x, y)
    d = x.shape[1]
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), size, replace=False)]
        b = y[rng.choice(len(y), size, replace=False)]
        kxx, kyy, kxy = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
        off = size * (size - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def batched_fid(x: np.ndarray, y: np.ndarray, batch: int = FID_BATCH, fast: bool = True) -> float:
    """Seed 000's protocol: FID over consecutive batches of ``batch`` frames of each set, averaged (the last,
    shorter batch is dropped; fewer frames than one batch give one FID over all)."""
    x, y = _check_features(x, y)
    score = fast_frechet_distance if fast else frechet_distance
    count = min(len(x), len(y)) // batch
    if count == 0:
        return score(x, y)
    return float(np.mean([score(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(count)]))
