"""The CUDA path: every registered method trains on a GPU with mixed precision through the one loop, its checkpoint
loads on the CPU, and restoring or analysing on the GPU gives what the CPU gives. Skipped where PyTorch sees no
CUDA device (CI); run on a GPU machine with ``pytest tests/test_cuda.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="PyTorch sees no CUDA device here")

#: One small configuration per registered method (64 px crops of the tiny benchmark, one short epoch);
#: the de-occluder learns from the benchmark's own pairs (drawn pairs need dlib's landmarks, not CUDA).
CONFIGS = {
    "cyclegan": dict(method="cyclegan", model={"ngf": 8, "ndf": 8, "netG": "resnet_6blocks"}),
    "pix2pix": dict(method="pix2pix", model={"ngf": 8, "ndf": 8, "netG": "unet_64"}),
    "deoccluder": dict(method="deoccluder", model={"ngf": 8, "ndf": 8, "netG": "unet_64", "pairs": "given",
                                                   "mask_width": 8, "exemplars": 4}),
    "classifier": dict(method="classifier", model={"width": 16}),
    "manipulator": dict(method="manipulator", model={"ngf": 8, "ndf": 8}),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sEMG benchmark (64 px frames, lossless) prepared into 72 px crops of whole frames."""
    from conftest import tiny_prepared

    return tiny_prepared(tmp_path_factory.mktemp("cuda"), fraction=0.5, load_size=72)


def _crops(samples: Path, n: int = 8) -> list[np.ndarray]:
    from unveil.data.datasets import load_image
    from unveil.data.faces import square_resize

    rows = pd.read_parquet(samples / "samples.parquet")
    paths = rows[rows["condition"] == "occluded"]["image"].tolist()[:n]
    return [square_resize(load_image(samples / p), 64) for p in paths]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_method_trains_on_cuda_in_mixed_precision_and_infers_there_as_on_the_cpu(name: str, prepared: Path,
                                                                                      tmp_path: Path) -> None:
    from unveil.methods.registry import get_method, load_analysis_model, load_model, load_restorer
    from unveil.train.checkpoint import load_checkpoint
    from unveil.train.loop import TrainConfig, Trainer

    config = TrainConfig(**CONFIGS[name], n_epochs=1, n_epochs_decay=1, load_size=72, crop_size=64, batch_size=4,
                         device="cuda", amp=True, save_epoch_freq=100)
    trainer = Trainer(prepared, tmp_path / "run", config, progress=False)
    assert trainer.device.type == "cuda" and trainer.amp
    seen: set[torch.dtype] = set()
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype)) for m in convs]
    result = trainer.fit(progress=False)
    for hook in hooks:
        hook.remove()
    assert torch.float16 in seen  # the convolutions ran in half precision under autocast
    assert all(np.isfinite(v) for row in result.history for v in row.values() if isinstance(v, float))
    tensors, _ = load_checkpoint(result.run_dir / "checkpoints" / "latest.safetensors")
    weights = [v for k, v in tensors.items() if k.startswith("net/") and v.is_floating_point()]
    assert weights and all(v.dtype == torch.float32 for v in weights)  # AMP keeps float32 master weights

    checkpoint = result.run_dir / "checkpoints" / "latest.safetensors"
    crops = _crops(prepared)
    if get_method(name).produces == "restorer":
        on_gpu = np.stack(load_restorer(checkpoint, "cuda")(crops)).astype(int)
        on_cpu = np.stack(load_restorer(checkpoint, "cpu")(crops)).astype(int)
        # float32 on both; convolution algorithms differ, so a pixel may round to the next level
        assert np.abs(on_gpu - on_cpu).mean() < 0.1 and np.abs(on_gpu - on_cpu).max() <= 3
    elif get_method(name).produces == "manipulator":
        gpu_model, cpu_model = load_model(checkpoint, "cuda"), load_model(checkpoint, "cpu")
        changes = np.stack([gpu_model.condition({gpu_model.aus[0]: 0.5})] * len(crops))
        on_gpu = np.stack(gpu_model(crops, changes)).astype(int)
        on_cpu = np.stack(cpu_model(crops, changes)).astype(int)
        assert np.abs(on_gpu - on_cpu).mean() < 0.1 and np.abs(on_gpu - on_cpu).max() <= 3
    else:
        gpu_model, cpu_model = load_analysis_model(checkpoint, "cuda"), load_analysis_model(checkpoint, "cpu")
        np.testing.assert_allclose(gpu_model(crops), cpu_model(crops), atol=1e-3)


def test_restore_on_cuda_in_batches_writes_what_the_cpu_writes_frame_by_frame(prepared: Path, tmp_path: Path
                                                                              ) -> None:
    from unveil.data.datasets import load_image
    from unveil.data.manifest import load_manifest
    from unveil.restore import restore
    from unveil.train.loop import TrainConfig, train

    config = TrainConfig(**CONFIGS["deoccluder"], n_epochs=1, n_epochs_decay=0, load_size=72, crop_size=64,
                         batch_size=4, device="cuda", save_epoch_freq=100)
    result = train(prepared, tmp_path / "run", config, progress=False)
    manifest = load_manifest(prepared.parent / "bench" / "manifest.yaml")
    source = next(manifest.resolve(r.media) for r in manifest.recordings if r.condition == "occluded")
    outputs = {}
    for device, batch in (("cuda", 8), ("cpu", 1)):
        restore(result.run_dir, source, tmp_path / device, crop="none", batch_size=batch, device=device,
                progress=False)
        outputs[device] = sorted((tmp_path / device).iterdir())
    assert len(outputs["cuda"]) == len(outputs["cpu"]) > 0
    difference = np.stack([np.abs(load_image(a).astype(int) - load_image(b).astype(int))
                           for a, b in zip(outputs["cuda"], outputs["cpu"], strict=True)])
    print(f"CUDA batch 8 against CPU batch 1: mean {difference.mean():.4f}, max {difference.max()}, "
          f"share > 3 levels {(difference > 3).mean():.5f}")
    assert difference.mean() < 0.1 and (difference > 3).mean() < 1e-3
