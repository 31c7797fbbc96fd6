"""``unveil restore``: run any restorer (:mod:`unveil.restorers`; CycleGAN's G_A, pix2pix's G, ...) over an
image, a folder, a video or every occluded recording of a manifest (each with its subject's model).

The pipeline: decode, cut the face box (fixed, tracked or given) at the restorer's size, restore in batches
(with each frame's context: its index and, where given, its occluder mask), composite, paste back into the full
frame with a feathered edge, encode. Videos keep their frame count, rate and audio. Optional occlusion-aware
compositing keeps visible pixels exactly: only where the input is occluded (a given mask, the mask the restorer
found itself, or where the restorer changed the crop markedly) is the output used.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from unveil.data.faces import Box, CropTransform, FaceTracker, centred_square, estimate_fixed_box, make_detector
from unveil.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, open_writer, probe, read_media
from unveil.errors import UnveilError
from unveil.files import atomic_path, ensure_dir, write_text_atomic
from unveil.methods.registry import load_restorer
from unveil.progress import progress_bar
from unveil.restorers import FrameContext, Restorer

Composite = Literal["none", "mask", "restorer", "difference"]
COMPOSITES: tuple[str, ...] = get_args(Composite)
Outside = Literal["inpaint", "keep"]


def use_segmenter(restorer: Restorer, segmenter: str | os.PathLike[str]) -> None:
    """Let an inversion restorer find each crop's hidden pixels with ``segmenter``'s network (a segmenter, de-occluder
    or pix2pix run); other restorers find their own (a predicted mask) or take ``--mask``."""
    if not hasattr(restorer, "segmenter"):
        raise UnveilError(f"--segmenter finds the hidden pixels for inversion (a stylegan2 run); a {restorer.method} "
                          "restorer finds its own (mask_input predicted) or takes --mask.")
    from unveil.methods.segmenter import load_segmenter

    restorer.segmenter = load_segmenter(segmenter, getattr(restorer, "device", "cpu"))


def frame_occlusion(restorer: Restorer, image: np.ndarray, transform: CropTransform,
                    hidden: np.ndarray | None, reference: np.ndarray | None = None) -> np.ndarray | None:
    """Where the occluder is in the whole frame (bool), beyond the face box too: the given mask, else the
    restorer's segmentation network run on the frame scaled as the crop is, kept only where the frame differs
    from ``reference`` (a clean frame of the same camera) when one is given; None when neither exists."""
    if hidden is not None:
        return hidden > 127
    if not getattr(restorer, "segments", False):
        return None
    height, width = image.shape[:2]
    scale = restorer.size / transform.box.w
    small = cv2.resize(image, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = restorer.segment(small)  # type: ignore[attr-defined]
    found = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    return found if reference is None else found & changed_from(image, reference)


def changed_from(image: np.ndarray, reference: np.ndarray, threshold: float = 0.1, grow: int = 2) -> np.ndarray:
    """Pixels of ``image`` that differ from ``reference`` by more than ``threshold`` of the value range in any
    channel, grown by ``grow`` pixels (an occluder's blended edge): a segmentation network trained on face crops
    has never seen a background or a shirt, and marks some; a clean frame of the same camera (the session's normal
    recording) tells them from a cable that was not there."""
    change = np.abs(image.astype(np.int16) - reference.astype(np.int16)).max(axis=2) > threshold * 255
    return grown(change, grow) > 0 if grow else change


def grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` (bool or uint8) dilated by ``pixels`` in a square neighbourhood, as uint8: an occluder's colour
    bleeds a few pixels past its outline (the numpy twin of :func:`unveil.nets.segmentation.grow_mask`)."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8))


def reference_frame(source: str | os.PathLike[str], frames: int = 25) -> np.ndarray:
    """A clean frame of a camera: the per-pixel median of ``frames`` frames spread over a video (a moving face
    drops out of the background), or the image itself."""
    from unveil.data.video import read_frames

    path = Path(source)
    if not path.is_file():
        raise UnveilError(f"The reference {path} does not exist.")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return next(iter(read_media(path))).image
    count = probe(path).n_frames or frames
    chosen = set(np.linspace(0, count - 1, min(frames, count)).astype(int).tolist())
    return np.median(np.stack([f.image for f in read_frames(path, only=chosen)]), axis=0).astype(np.uint8)


def fill_outside(frame: np.ndarray, occluded: np.ndarray, box_weight: np.ndarray, grow: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Occluder pixels the restored face box does not cover (cables down the neck, over the hair; the box's
    feathered seam) filled from their surroundings by OpenCV's Telea inpainting, the mask grown by ``grow`` pixels
    for codec bleed. Returns the frame and the filled pixels (bool)."""
    residual = (occluded & (box_weight < 0.99)).astype(np.uint8)
    if not residual.any():
        return frame, residual.astype(bool)
    if grow:
        residual = grown(residual, grow)
    return cv2.inpaint(frame, residual, 3, cv2.INPAINT_TELEA), residual.astype(bool)


def occlusion_from_difference(crop: np.ndarray, restored: np.ndarray, threshold: float = 0.12,
                              grow: int = 2) -> np.ndarray:
    """Where the restorer changed the crop by more than ``threshold`` (of the value range), grown by ``grow``
    pixels and softened: a float mask in [0, 1], 1 = occluded."""
    change = np.abs(restored.astype(np.float32) - crop.astype(np.float32)).max(axis=2) / 255.0
    mask = (change > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if grow:
        mask = grown(mask, grow)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(grow / 2, 0.5)) * (mask > 0)


@dataclass
class RestoreResult:
    """What was written and how much the compositing kept of the input."""

    output: Path
    frames: int
    occluded_share: float  # mean share of the crop taken from the restorer (1.0 without compositing)
    restorer: str  # what made the output (Restorer.describe)


def restore(checkpoint: str | os.PathLike[str] | Restorer, source: str | os.PathLike[str],
            out: str | os.PathLike[str], *,
            crop: Literal["fixed", "track", "none"] = "fixed", box: tuple[float, float, float, float] | None = None,
            composite: Composite = "none", mask: str | os.PathLike[str] | None = None, threshold: float = 0.12,
            side_by_side: bool = False, mask_out: str | os.PathLike[str] | None = None, batch_size: int = 8,
            device: str = "auto", feather: float = 0.06, outside: Outside = "inpaint",
            reference: str | os.PathLike[str] | np.ndarray | None = None,
            segmenter: str | os.PathLike[str] | None = None, options: Mapping[str, Any] | None = None,
            progress: bool = True) -> RestoreResult:
    """Restore ``source`` (image, folder of images or video) into ``out`` (a file or folder of the same kind) with
    ``checkpoint`` (a checkpoint of any restoring method, or a loaded :class:`~unveil.restorers.Restorer`).

    ``crop``: ``fixed`` box (``box`` or estimated from the first frames), ``track`` (a smoothed box per frame),
    ``none`` (the centred square). ``composite``: ``none`` pastes the restored crop as it is; ``mask`` takes the
    restorer's pixels only where ``mask`` (same frames, 255 = occluded) says so; ``restorer`` only where the
    restorer's own mask of the crop says so (a restorer that finds or takes masks: ``last_masks``);
    ``difference`` only where the restorer changed the crop by more than ``threshold``. ``mask_out`` also writes,
    per frame, the share of each pixel that comes from the restorer (255) rather than the input (0): a PNG for an
    image input, else a lossless .mkv or a folder of PNGs. ``outside``: where the occluder reaches beyond the face
    box (known from the given ``mask``, or from the restorer's segmentation network run on the whole frame),
    ``inpaint`` fills those pixels from their surroundings (:func:`fill_outside`); ``keep`` leaves them.
    ``reference``: a clean frame of the same camera (an image, or a video whose median frame is taken): a found
    occluder pixel outside the box is filled only where the frame differs from it (:func:`changed_from`).
    ``segmenter``: for inversion, a run whose segmentation network finds each crop's hidden pixels
    (:func:`use_segmenter`). ``options``: values of the method's restore-time options that replace the checkpoint's
    (``unveil restore --set``; :func:`~unveil.methods.registry.load_restorer`).
    """
    src, target = Path(source), Path(out)
    if not src.exists():
        raise UnveilError(f"The input {src} does not exist.")
    if composite not in COMPOSITES:
        raise UnveilError(f"Unknown composite '{composite}'; use one of {', '.join(COMPOSITES)}.")
    if composite == "mask" and mask is None:
        raise UnveilError("--composite mask needs --mask, the occluder mask of the same frames.")
    if batch_size < 1:
        raise UnveilError(f"The batch size must be at least 1, not {batch_size}.")
    mask_target = Path(mask_out) if mask_out is not None else None
    is_video = src.is_file() and src.suffix.lower() in VIDEO_SUFFIXES
    is_image = src.is_file() and src.suffix.lower() in IMAGE_SUFFIXES
    if src.is_file() and not (is_video or is_image):
        raise UnveilError(f"{src} is neither a video ({', '.join(VIDEO_SUFFIXES)}) nor an image.")
    if mask_target is not None and is_image and mask_target.suffix.lower() != ".png":
        raise UnveilError(f"Write the mask of an image as .png (lossless), not {mask_target}.")
    if mask_target is not None and not is_image and mask_target.suffix.lower() not in ("", ".mkv"):
        raise UnveilError(f"Write the mask of a video as .mkv (lossless FFV1) or a folder of PNGs, not {mask_target}.")
    clean = reference_frame(reference) if isinstance(reference, (str, os.PathLike)) else reference
    if isinstance(checkpoint, Restorer) and options:
        raise ValueError("restore-time options apply when a checkpoint is loaded; this restorer is loaded already")
    restorer = checkpoint if isinstance(checkpoint, Restorer) else load_restorer(checkpoint, device, options)
    if segmenter is not None:
        use_segmenter(restorer, segmenter)
    if composite == "restorer" and not hasattr(restorer, "last_masks"):
        raise UnveilError(f"--composite restorer needs a restorer that finds or takes the occluder mask; "
                          f"{restorer.describe()} does not (use difference, or mask with --mask).")
    restorer.reset()
    info = None if is_image else probe(src)
    fps = info.fps if info is not None and info.fps == info.fps else 25.0
    masks = iter(read_media(mask, gray=True)) if mask is not None else None

    tracker = None
    fixed: Box | None = Box(*box) if box else None
    if crop == "track":
        tracker = FaceTracker(make_detector(), no_face="hold")
    elif crop == "fixed" and fixed is None:
        fixed = estimate_fixed_box((f.image for f in read_media(src)), make_detector())

    ensure_dir(target.parent)
    writer = mask_writer = None
    if not is_image:
        writer = open_writer(target, fps, preset="veryfast",
                             audio_from=src if is_video and info is not None and info.has_audio else None)
        if mask_target is not None:
            ensure_dir(mask_target.parent)
            mask_writer = open_writer(mask_target, fps, gray=True, lossless=True)
    shares: list[float] = []
    pending: list[tuple[np.ndarray, CropTransform, np.ndarray | None]] = []

    def flush() -> None:
        crops = [t.crop(im) for im, t, _ in pending]
        contexts = [FrameContext(len(shares) + k, None if hidden is None else
                                 (t.crop(hidden, interpolation=cv2.INTER_NEAREST) > 127).astype(np.float32))
                    for k, (_, t, hidden) in enumerate(pending)]
        outputs = restorer(crops, contexts)
        own = list(getattr(restorer, "last_masks", [])) if composite == "restorer" else [None] * len(outputs)
        if len(own) != len(outputs):
            raise UnveilError(f"{restorer.describe()} gave no occluder mask for these frames; use --composite "
                              "difference.")
        for (image, transform, hidden), crop, output, found in zip(pending, crops, outputs, own, strict=True):
            result, weight = _composite(image, transform, crop, output, hidden, composite, threshold, feather, shares,
                                        share_map=mask_target is not None, found=found)
            if clean is not None and clean.shape != image.shape:
                raise UnveilError(f"The reference frame is {clean.shape[1]}x{clean.shape[0]}, the frames of {src} "
                                  f"{image.shape[1]}x{image.shape[0]}; give a clean frame of the same camera.")
            occluded = frame_occlusion(restorer, image, transform, hidden, clean) if outside == "inpaint" else None
            if occluded is not None:
                result, filled = fill_outside(result, occluded, transform.paste_weight(*image.shape[:2], feather))
                if weight is not None:
                    weight = np.where(filled, 1.0, weight).astype(np.float32)
            frame = np.concatenate([image, result], axis=1) if side_by_side else result
            share = None if weight is None else np.rint(weight * 255).astype(np.uint8)
            if writer is not None:
                writer.write(frame)
                if mask_writer is not None:
                    mask_writer.write(share)
            else:
                with atomic_path(target) as tmp:
                    cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if mask_target is not None:
                    with atomic_path(mask_target) as tmp:
                        cv2.imwrite(str(tmp), share)
        pending.clear()

    n = info.n_frames if info is not None else 1
    with progress_bar(n, f"restore {src.name}", progress and n > 1) as advance, \
            (writer if writer is not None else contextlib.nullcontext()), \
            (mask_writer if mask_writer is not None else contextlib.nullcontext()):
        for image in (f.image for f in read_media(src)):
            if tracker is not None:
                tracked = tracker(image)
                frame_box = tracked.box or Box(0, 0, *image.shape[1::-1]).square()
            elif crop == "none":
                frame_box = centred_square(image.shape[1], image.shape[0])
            else:
                frame_box = fixed  # type: ignore[assignment]
            hidden = None
            if masks is not None:
                mask_frame = next(masks, None)
                if mask_frame is None:
                    raise UnveilError(f"The mask {mask} has fewer frames than {src}.")
                hidden = mask_frame.image
            pending.append((image, CropTransform(frame_box, restorer.size), hidden))
            if len(pending) == batch_size:
                flush()
                advance(batch_size)
        if pending:
            count = len(pending)
            flush()
            advance(count)
    frames = len(shares)
    return RestoreResult(target, frames, float(np.mean(shares)) if shares else 0.0, restorer.describe())


def _composite(image: np.ndarray, transform: CropTransform, crop: np.ndarray, restored: np.ndarray,
               hidden: np.ndarray | None, mode: Composite, threshold: float, feather: float, shares: list[float],
               share_map: bool = False, found: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Paste ``restored`` (the restorer's output for ``crop``, cut from ``image`` by ``transform``) back; with
    compositing, only over the occluded part of the box (``found``: the restorer's own mask of the crop, for mode
    ``restorer``). Returns the frame and, with ``share_map``, the share of each of its pixels that comes from the
    restorer (0: the input's exactly)."""
    height, width = image.shape[:2]
    box_weight = transform.paste_weight(height, width, feather) if share_map else None
    full = transform.paste(image, restored, feather)
    if mode == "none":
        shares.append(1.0)
        return full, box_weight
    if mode == "mask":
        assert hidden is not None
        weight = (hidden > 127).astype(np.float32)
    else:
        local = occlusion_from_difference(crop, restored, threshold) if found is None else found.astype(np.float32)
        inverse = cv2.invertAffineTransform(transform.matrix)
        weight = cv2.warpAffine(local, inverse, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    shares.append(float(min(1.0, weight.sum() / max(transform.box.w**2, 1.0))))
    # Outside the box's footprint the pasted frame is the input, so blending there would give the input back.
    region = transform.footprint(height, width, feather)
    w = weight[region][..., None]
    blended = image[region].astype(np.float32) * (1 - w) + full[region].astype(np.float32) * w
    inside = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    visible = weight[region] == 0
    inside[visible] = image[region][visible]  # visible pixels are kept bit for bit
    result = image.copy()
    result[region] = inside
    return result, None if box_weight is None else weight * box_weight


def subject_checkpoint(runs: str | os.PathLike[str], subject: str) -> Path:
    """The restorer of ``subject`` in a folder of per-subject runs (``runs/<subject>/checkpoints/latest``), or
    the pooled model (``runs/pooled/...``) when the subject has none."""
    for name in (subject, "pooled"):
        path = Path(runs) / name / "checkpoints" / "latest.safetensors"
        if path.is_file():
            return path
    raise UnveilError(f"No restorer for subject {subject} in {runs} (expected {subject}/checkpoints/latest.safetensors"
                      " or pooled/...); train one with 'unveil train cyclegan' or 'unveil train pix2pix'.")


#: Written beside the restored videos of a manifest: which restorer made each (read by evaluate and the report).
RESTORERS_FILE = "restorers.json"


def restorers_of(folder: str | os.PathLike[str] | None) -> dict[str, str]:
    """Recording id -> the restorer that made its C video, from ``folder/restorers.json`` (empty without it)."""
    path = Path(folder) / RESTORERS_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def restore_recordings(manifest, runs: str | os.PathLike[str], out: str | os.PathLike[str],  # noqa: ANN001
                       samples: str | os.PathLike[str] | None = None, *, composite: Composite = "none",
                       outside: Outside = "inpaint", device: str = "auto", resume: bool = False,
                       options: Mapping[str, Any] | None = None, progress: bool = True) -> dict[str, Path]:
    """Restore every occluded recording of ``manifest`` with its subject's model into ``out/<recording id>.mp4``
    (the C videos of seed 000's protocol). The face box of each recording is the one ``unveil prepare`` used
    (``samples``), else the session's box estimated from its normal recordings. With ``outside`` inpaint and a
    restorer that segments, the session's normal recording (same subject and session, the same task if there is
    one) gives the clean reference frame (:func:`reference_frame`). ``resume`` keeps outputs that already exist
    (an interrupted run continues where it stopped); otherwise every video is written anew. ``options`` replace
    the checkpoints' restore-time options (as in :func:`restore`)."""
    from unveil.data.prepare import recording_boxes

    occluded = [r for r in manifest.recordings if r.condition == "occluded"]
    if not occluded:
        raise UnveilError("The manifest has no occluded recordings to restore.")
    boxes = recording_boxes(manifest, occluded, samples)
    folder = ensure_dir(out)
    outputs = {}
    made_by = restorers_of(folder) if resume else {}
    loaded: dict[Path, Restorer] = {}
    references: dict[Path, np.ndarray] = {}

    def reference_of(rec, restorer: Restorer) -> np.ndarray | None:  # noqa: ANN001 - a Recording
        normal = [r for r in manifest.recordings if r.condition == "normal" and r.subject == rec.subject
                  and r.session == rec.session]
        if outside != "inpaint" or not getattr(restorer, "segments", False) or not normal:
            return None
        path = manifest.resolve(next((r for r in normal if r.task == rec.task), normal[0]).media)
        if path not in references:
            references[path] = reference_frame(path)
        return references[path]

    with progress_bar(len(occluded), "restore recordings", progress) as advance:
        for rec in occluded:
            target = folder / f"{rec.id}.mp4"
            if not (resume and target.is_file()):
                checkpoint = subject_checkpoint(runs, rec.subject)
                if checkpoint not in loaded:
                    loaded[checkpoint] = load_restorer(checkpoint, device, options)
                box = boxes.get(rec.id)
                result = restore(loaded[checkpoint], manifest.resolve(rec.media), target,
                                 box=(box.x, box.y, box.w, box.h) if box else None, composite=composite,
                                 mask=manifest.resolve(rec.mask) if composite == "mask" else None, batch_size=16,
                                 outside=outside, reference=reference_of(rec, loaded[checkpoint]), progress=False)
                made_by[rec.id] = result.restorer + (f", composite {composite}" if composite != "none" else "")
                write_text_atomic(folder / RESTORERS_FILE, json.dumps(made_by, indent=1))
            outputs[rec.id] = target
            advance(1)
    return outputs
