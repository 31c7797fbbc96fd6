"""A contact sheet of the synthetic benchmark: identities x expressions, and every occluder with its mask."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from unveil.files import atomic_path
from unveil.synth.face import expression_shape
from unveil.synth.generate import SynthConfig, occlude, session_look, subject_identity
from unveil.synth.occluders import PATCH_LEVELS, FaceFrame, Hand, Occluder, build_occluder
from unveil.synth.protocols import EMOTION_INTENSITIES, SCHAEDE_MOVEMENTS
from unveil.synth.render import draw_face, light

EXPRESSIONS: dict[str, dict[int, float]] = {
    "neutral": {},
    **EMOTION_INTENSITIES,
    **{name: aus for name, aus in SCHAEDE_MOVEMENTS.items() if name not in ("rest", "gentle_eye_closure")},
}


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with a white caption strip on top."""
    width = tile.shape[1]
    strip = np.full((16, width, 3), 255, np.uint8)
    scale = min(0.36, 0.36 * width / max(1, 7.0 * len(text)))
    cv2.putText(strip, text.replace("_", " "), (3, 12), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([strip, tile], axis=0)


def _render(config: SynthConfig, subject: int, aus: dict[int, float],
            occluders: list[Occluder] | None = None, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    identity = subject_identity(config.seed, subject)
    look, pose = session_look(config, subject, 0, identity)
    shape = expression_shape(identity.shape, aus)
    unlit = draw_face(identity, look, shape, pose, aus)
    mask = np.zeros(unlit.shape[:2], np.uint8)
    if occluders:
        unlit, mask = occlude(unlit, occluders, FaceFrame(identity, shape, pose, index))
    return light(unlit, look.illumination, np.zeros(unlit.shape, np.float32)), mask


def contact_sheet(config: SynthConfig, identities: int = 6) -> np.ndarray:
    """RGB image: one row per identity over :data:`EXPRESSIONS`, then rows of occluders with their masks."""
    rows = []
    for subject in range(identities):
        tiles = [_render(config, subject, aus)[0] for aus in EXPRESSIONS.values()]
        if subject == 0:
            tiles = [_label(t, name) for t, name in zip(tiles, EXPRESSIONS, strict=True)]
        rows.append(np.concatenate(tiles, axis=1))
    smile = EMOTION_INTENSITIES["happiness"]
    for subject in range(min(2, identities)):
        identity = subject_identity(config.seed, subject)
        rng = np.random.default_rng([config.seed, subject, 99])
        tiles = [_label(_render(config, subject, smile)[0], "hidden clean")]
        variants: list[tuple[str, Occluder, int]] = []
        for name in ("semg", "mask", "glasses", "hand"):
            occluder = build_occluder(name, identity, subject_rng=rng, session_rng=rng, recording_rng=rng,
                                      n_frames=int(60 * config.fps), fps=config.fps)
            index = 0
            if isinstance(occluder, Hand) and occluder.passes:
                start, ramp, *_ = occluder.passes[0]
                index = start + ramp + 1
            variants.append((name, occluder, index))
        for level in range(1, len(PATCH_LEVELS) + 1):
            occluder = build_occluder("patch", identity, subject_rng=rng, session_rng=rng, recording_rng=rng,
                                      n_frames=1, fps=config.fps, patch_level=level)
            variants.append((f"patch {int(PATCH_LEVELS[level - 1] * 100)}%", occluder, 0))
        for name, occluder, index in variants:
            image, mask = _render(config, subject, smile, [occluder], index)
            tiles.append(_label(image, name))
            if name in ("semg", "hand"):
                tiles.append(_label(np.repeat(mask[..., None], 3, axis=2), f"{name} mask"))
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def write_preview(config: SynthConfig, path: str | os.PathLike[str], identities: int = 6) -> Path:
    """Write :func:`contact_sheet` as a PNG (atomically) and return its path."""
    target = Path(path)
    sheet = contact_sheet(config, identities)
    with atomic_path(target) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return target
