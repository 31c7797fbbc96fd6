"""`unveil restore` with a small trained CycleGAN: videos keep frame count, rate, duration and audio;
compositing keeps visible pixels bit for bit; untrusted checkpoints are refused."""

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from unveil.data.video import probe, read_frames
from unveil.methods.cyclegan import CycleGANConfig
from unveil.data.faces import CropTransform, centred_square
from unveil.methods.registry import load_restorer
from unveil.restore import occlusion_from_difference, restore
from unveil.train.loop import TrainConfig, train

from conftest import tiny_prepared
from test_cli import unveil


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("restore")
    samples = tiny_prepared(root, fraction=0.3)
    config = TrainConfig(model=CycleGANConfig(ngf=4, ndf=4, netG="resnet_6blocks"), n_epochs=1, n_epochs_decay=0,
                         load_size=36, crop_size=32, batch_size=4)
    train(samples, root / "run", config, progress=False)
    return root / "run" / "checkpoints" / "latest.safetensors"


def test_real_video_keeps_frames_fps_duration_and_audio(shared_data: Path, checkpoint: Path, tmp_path: Path) -> None:
    source = shared_data / "videos" / "talking_4.mp4"
    result = restore(checkpoint, source, tmp_path / "restored.mp4", crop="track", progress=False)
    a, b = probe(source), probe(result.output)
    assert (b.n_frames, b.fps, b.duration, b.has_audio) == (a.n_frames, a.fps, a.duration, a.has_audio)
    assert (b.width, b.height) == (a.width, a.height) and result.frames == a.n_frames


def test_side_by_side_doubles_the_width(shared_data: Path, checkpoint: Path, tmp_path: Path) -> None:
    source = shared_data / "videos" / "single_face.mp4"
    result = restore(checkpoint, source, tmp_path / "both.mp4", side_by_side=True, progress=False)
    a, b = probe(source), probe(result.output)
    assert (b.width, b.height, b.n_frames) == (2 * a.width, a.height, a.n_frames)


def _noise_and_mask(folder: Path, seed: int, width: int, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """A random 80 x ``width`` RGB image and an occluder mask (255 on ``rows`` x ``cols``), written as in.png and
    mask.png into ``folder``."""
    image = np.random.default_rng(seed).integers(0, 255, (80, width, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "in.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    hidden = np.zeros((80, width), np.uint8)
    hidden[rows, cols] = 255
    cv2.imwrite(str(folder / "mask.png"), hidden)
    return image, hidden


def test_mask_compositing_keeps_visible_pixels_exactly(checkpoint: Path, tmp_path: Path) -> None:
    image, hidden = _noise_and_mask(tmp_path, 0, 96, slice(30, 50), slice(40, 60))
    result = restore(checkpoint, tmp_path / "in.png", tmp_path / "out.png", crop="none", composite="mask",
                     mask=tmp_path / "mask.png", progress=False)
    restored = cv2.cvtColor(cv2.imread(str(result.output)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(restored[hidden == 0], image[hidden == 0])
    assert np.any(restored[hidden > 0] != image[hidden > 0])
    plain = restore(checkpoint, tmp_path / "in.png", tmp_path / "plain.png", crop="none", progress=False)
    assert np.any(cv2.imread(str(plain.output))[hidden == 0] != cv2.imread(str(tmp_path / "in.png"))[hidden == 0])


@pytest.mark.parametrize("mode", ["mask", "difference"])
def test_compositing_is_the_whole_frame_blend(checkpoint: Path, tmp_path: Path, mode: str) -> None:
    """Restore blends only the box's footprint; the result equals blending every pixel of the frame."""
    image, hidden = _noise_and_mask(tmp_path, 3, 120, slice(20, 60), slice(5, 70))  # reaches outside the face box
    restore(checkpoint, tmp_path / "in.png", tmp_path / "out.png", crop="none", composite=mode,
            mask=tmp_path / "mask.png", outside="keep", progress=False)  # the blend alone, no inpainting
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)

    restorer = load_restorer(checkpoint, device="cpu")
    transform = CropTransform(centred_square(120, 80), restorer.size)
    restored = restorer([transform.crop(image)])[0]
    full = transform.paste(image, restored)
    if mode == "mask":
        weight = (hidden > 127).astype(np.float32)
    else:
        local = occlusion_from_difference(transform.crop(image), restored)
        weight = cv2.warpAffine(local, cv2.invertAffineTransform(transform.matrix), (120, 80),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    w = weight[..., None]
    expected = np.clip(np.rint(image * (1 - w) + full.astype(np.float32) * w), 0, 255).astype(np.uint8)
    expected[weight == 0] = image[weight == 0]
    assert np.array_equal(out, expected)


def test_mask_out_says_which_pixels_come_from_the_restorer(checkpoint: Path, tmp_path: Path) -> None:
    _, hidden = _noise_and_mask(tmp_path, 1, 96, slice(30, 50), slice(40, 60))
    restore(checkpoint, tmp_path / "in.png", tmp_path / "out.png", crop="none", composite="mask",
            mask=tmp_path / "mask.png", mask_out=tmp_path / "share.png", progress=False)
    share = cv2.imread(str(tmp_path / "share.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(share, hidden)  # the given mask lies well inside the (feathered) face box

    plain = restore(checkpoint, tmp_path / "in.png", tmp_path / "plain.png", crop="none", mask_out=tmp_path / "p.png",
                    progress=False)
    share = cv2.imread(str(tmp_path / "p.png"), cv2.IMREAD_GRAYSCALE)
    assert plain.occluded_share == 1.0
    assert (share[:, :6] == 0).all() and (share[:, -6:] == 0).all()  # outside the centred 80 px square (8-88)
    assert (share[20:60, 28:68] == 255).all()  # the box inside its feathered seam


def test_mask_out_of_an_estimated_occlusion_marks_every_changed_pixel(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    restore(checkpoint, folder, tmp_path / "out", crop="none", composite="difference", mask_out=tmp_path / "share",
            batch_size=2, progress=False)
    outputs = [f.image for f in read_frames(tmp_path / "out")]
    shares = [f.image for f in read_frames(tmp_path / "share")]
    assert len(outputs) == len(shares) == 3
    for frame, output, share in zip(frames, outputs, shares, strict=True):
        share = share if share.ndim == 2 else share[..., 0]
        assert np.array_equal(output[share == 0], frame[share == 0])  # untouched where the map says 0
        assert (share > 0).any() and np.any(output[share > 0] != frame[share > 0])


def test_mask_out_format_errors(checkpoint: Path, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((16, 16, 3), np.uint8))
    result = unveil("restore", str(checkpoint), str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                    "--mask-out", str(tmp_path / "m.jpg"))
    assert result.returncode == 2 and "Write the mask of an image as .png (lossless)" in result.stderr


def test_cli_refuses_a_pickle(tmp_path: Path) -> None:
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"weights": 1}))
    (tmp_path / "in.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    result = unveil("restore", str(evil), str(tmp_path / "in.png"), "--out", str(tmp_path / "out.png"))
    assert result.returncode == 2 and "never unpickles" in result.stderr and "Traceback" not in result.stderr


def test_folder_of_images(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((40, 40, 3), 60 * i, np.uint8))
    result = restore(checkpoint, folder, tmp_path / "out", crop="none", batch_size=2, progress=False)
    assert len(list(read_frames(result.output))) == 3


def test_every_occluded_recording_of_a_manifest(checkpoint: Path, tmp_path: Path) -> None:
    from unveil.data.manifest import load_manifest
    from unveil.restore import restore_recordings

    root = checkpoint.parents[2]  # the fixture's folder: bench/, prepared/, run/
    manifest = load_manifest(root / "bench" / "manifest.yaml")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "pooled").symlink_to(root / "run")  # no per-subject model: the pooled one is used
    outputs = restore_recordings(manifest, runs, tmp_path / "restored", root / "prepared", progress=False)
    occluded = manifest.select(condition="occluded")
    assert sorted(outputs) == sorted(r.id for r in occluded)
    for rec in occluded:
        assert outputs[rec.id] == tmp_path / "restored" / f"{rec.id}.mp4"
        assert probe(outputs[rec.id]).n_frames == probe(manifest.resolve(rec.media), fps=rec.fps).n_frames
    stamp = outputs[occluded[0].id].stat().st_mtime_ns
    restore_recordings(manifest, runs, tmp_path / "restored", root / "prepared", resume=True, progress=False)
    assert outputs[occluded[0].id].stat().st_mtime_ns == stamp  # resume keeps what is there


def test_the_restorers_own_mask_keeps_every_other_pixel_exactly(checkpoint: Path, tmp_path: Path) -> None:
    """--composite restorer: a mask-aware restorer whose segmentation network marks a known block of the crop; the
    frame takes the restorer's pixels there and keeps every pixel the warped mask does not reach, bit for bit."""
    import torch

    from unveil.errors import UnveilError
    from unveil.methods.paired import MaskAwareGenerator, MaskOptions
    from unveil.restorers import MaskAwareRestorer

    class Painter(torch.nn.Module):  # paints every pixel 0.5 (grey 191)
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((len(x), 3, *x.shape[-2:]), 0.5)

    class Block(torch.nn.Module):  # 'finds' the occluder on crop rows 8-15, columns 4-27, whatever the crop
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.full((len(x), 1, *x.shape[-2:]), -20.0)
            logits[..., 8:16, 4:28] = 20.0
            return logits

    image, _ = _noise_and_mask(tmp_path, 4, 96, slice(0, 1), slice(0, 1))
    restorer = MaskAwareRestorer(MaskAwareGenerator(Painter(), Block(), MaskOptions()), 32, torch.device("cpu"),
                                 "stand-in")
    restore(restorer, tmp_path / "in.png", tmp_path / "out.png", crop="none", composite="restorer", outside="keep",
            mask_out=tmp_path / "share.png", progress=False)
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
    share = cv2.imread(str(tmp_path / "share.png"), cv2.IMREAD_GRAYSCALE)
    # the centred 80 px box (columns 8-87) at 32 px: 2.5 frame pixels a crop pixel; the block is rows 20-40,
    # columns 18-78 of the frame
    assert np.array_equal(out[share == 0], image[share == 0])
    assert (share[:17] == 0).all() and (share[43:] == 0).all() and (share[:, :15] == 0).all()
    assert (out[23:37, 22:74] == 191).all()  # inside the block: the restorer's grey
    assert (share > 0).sum() < 0.2 * share.size

    with pytest.raises(UnveilError, match="finds or takes the occluder mask"):
        restore(checkpoint, tmp_path / "in.png", tmp_path / "x.png", crop="none", composite="restorer",
                progress=False)  # CycleGAN's generator has no mask
