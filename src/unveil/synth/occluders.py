"""Occluders drawn over a synthetic face, each with an exact per-frame binary mask.

Occluders are rasterised without anti-aliasing, so the mask is exactly the set of pixels they changed:
outside it the occluded frame equals the hidden clean frame bit for bit. Every occluder is attached to the
face (canonical coordinates under the head pose, following the local skin where it moves), as sensors glued
to the skin, a worn mask or glasses would be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from unveil.errors import UnveilError
from unveil.synth.face import Identity
from unveil.synth.render import Pose

_SHIFT = 4
_ONE = 1 << _SHIFT

#: Occluders :func:`build_occluder` knows, in the order the docs list them.
OCCLUDERS: tuple[str, ...] = ("semg", "mask", "glasses", "hand", "patch")
#: Target share of the face area covered by the ``patch`` occluder at levels 1-4 (seed 001's four amounts;
#: the seed gives no numbers, these are ours).
PATCH_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)


@dataclass(frozen=True)
class FaceFrame:
    """Where the face is in one frame: canonical expression shape, its identity and the head pose."""

    identity: Identity
    shape: np.ndarray  # (68, 2) canonical, with the expression
    pose: Pose
    index: int  # frame number in the recording


class Paint:
    """Draws opaque or translucent shapes on ``img`` and marks exactly the touched pixels in ``mask``."""

    def __init__(self, img: np.ndarray, mask: np.ndarray) -> None:
        self.img, self.mask = img, mask

    @staticmethod
    def _pts(points: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(points, dtype=float) * _ONE).astype(np.int32)

    def polygon(self, points: np.ndarray, colour: Sequence[float], alpha: float = 1.0) -> None:
        if alpha >= 1.0:
            cv2.fillPoly(self.img, [self._pts(points)], [float(c) for c in colour], cv2.LINE_8, _SHIFT)
            cv2.fillPoly(self.mask, [self._pts(points)], 255, cv2.LINE_8, _SHIFT)
            return
        region = np.zeros_like(self.mask)
        cv2.fillPoly(region, [self._pts(points)], 255, cv2.LINE_8, _SHIFT)
        self._blend(region, colour, alpha)

    def line(self, points: np.ndarray, colour: Sequence[float], thickness: float) -> None:
        self.lines([points], colour, thickness)

    def lines(self, paths: Sequence[np.ndarray] | np.ndarray, colour: Sequence[float], thickness: float) -> None:
        """Several open polylines of one colour and thickness in one call; an (n, k, 2) array is n paths."""
        if len(paths) == 0:
            return
        t = max(1, int(round(thickness)))
        if isinstance(paths, np.ndarray):
            pts = list(self._pts(paths))
        else:
            pts = np.split(self._pts(np.concatenate(paths)), np.cumsum([len(p) for p in paths])[:-1])
        cv2.polylines(self.img, pts, False, [float(c) for c in colour], t, cv2.LINE_8, _SHIFT)
        cv2.polylines(self.mask, pts, False, 255, t, cv2.LINE_8, _SHIFT)

    def discs(self, centres: np.ndarray, radius: float, colour: Sequence[float]) -> None:
        """Filled circles of one radius (sub-pixel, so coverage does not jump with the frame size) and colour."""
        region = np.zeros_like(self.mask)
        r = max(int(round(radius * _ONE)), _ONE // 2)
        for x, y in self._pts(centres).tolist():
            cv2.circle(region, (x, y), r, 255, -1, cv2.LINE_8, _SHIFT)
        inside = region > 0
        self.img[inside] = np.array(colour, dtype=np.float64).round().astype(np.uint8)
        self.mask[inside] = 255

    def ellipse(self, centre: np.ndarray, axes: tuple[float, float], angle_deg: float,
                colour: Sequence[float]) -> None:
        args = (tuple(self._pts(centre).tolist()), (max(int(axes[0] * _ONE), _ONE // 2),
                max(int(axes[1] * _ONE), _ONE // 2)), angle_deg, 0, 360)
        cv2.ellipse(self.img, *args, [float(c) for c in colour], -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(self.mask, *args, 255, -1, cv2.LINE_8, _SHIFT)

    def _blend(self, region: np.ndarray, colour: Sequence[float], alpha: float) -> None:
        inside = region > 0
        mixed = self.img[inside].astype(np.float32) * (1 - alpha) + np.array(colour, np.float32) * alpha
        self.img[inside] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        self.mask[inside] = 255


class Occluder(Protocol):
    """Something that hides part of the face. Implementations draw all randomness in ``__init__``, so that
    drawing frame ``index`` twice gives the same pixels."""

    name: str

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        """Draw this occluder for ``frame`` with ``paint`` (which records the exact mask)."""


def _follow_skin(points: np.ndarray, neutral: np.ndarray, k: int = 3) -> Callable[[np.ndarray], np.ndarray]:
    """Return f(shape) giving ``points`` (canonical, on the neutral face) moved as the nearby skin moves.

    Each point takes the inverse-distance-weighted displacement of its ``k`` nearest landmarks, so a forehead
    electrode rises with the brows and a chin electrode drops with the jaw.
    """
    d = np.linalg.norm(points[:, None, :] - neutral[None, :, :], axis=2)
    nearest = np.argsort(d, axis=1)[:, :k]
    w = 1.0 / (np.take_along_axis(d, nearest, axis=1) + 0.05)
    w /= w.sum(axis=1, keepdims=True)

    def moved(shape: np.ndarray) -> np.ndarray:
        displacement = shape - neutral
        return points + np.einsum("nk,nkd->nd", w, displacement[nearest])

    return moved


# Electrode sites on the subject's right half (canonical units); mirrored to 62 sites, "the same anatomical
# locations for all test subjects" (seed 000): forehead grid, temple, around the eye, nose, cheek,
# perioral, chin and jaw.
_ELECTRODE_SITES_RIGHT = np.array(
    [(-0.12, -0.42), (-0.30, -0.42), (-0.48, -0.40), (-0.12, -0.57), (-0.30, -0.58), (-0.48, -0.55),
     (-0.15, -0.72), (-0.32, -0.73), (-0.50, -0.68),
     (-0.64, -0.32), (-0.74, -0.12),
     (-0.30, 0.14), (-0.46, 0.14), (-0.63, 0.04),
     (-0.10, 0.20), (-0.16, 0.35),
     (-0.34, 0.30), (-0.55, 0.30), (-0.44, 0.45), (-0.63, 0.50), (-0.29, 0.47),
     (-0.12, 0.58), (-0.31, 0.62), (-0.37, 0.76), (-0.27, 0.88), (-0.12, 0.94),
     (-0.15, 1.04), (-0.39, 0.99), (-0.58, 0.85), (-0.69, 0.66),
     (-0.22, 0.52)]
)
_RED, _WHITE = (196, 34, 40), (228, 226, 218)


class SEMG:
    """62 surface-EMG electrodes: white patches with a dark snap, red or white cables routed off the face
    (forehead cables over the head, the others sideways and down), held by white cotton swabs.

    The cable colour order is drawn per subject (it "may change among test subjects"); placement jitters a
    little per session (sensors are re-attached), never within a session.
    """

    name = "semg"

    def __init__(self, identity: Identity, subject_rng: np.random.Generator,
                 session_rng: np.random.Generator) -> None:
        sites = np.concatenate([_ELECTRODE_SITES_RIGHT, _ELECTRODE_SITES_RIGHT * [-1, 1]])
        scale = (identity.shape[16, 0] - identity.shape[0, 0]) / 1.56  # follow the subject's face width
        sites = sites * [scale, 1.0] + session_rng.normal(0, 0.012, sites.shape)
        self.sites = sites
        self.move_sites = _follow_skin(sites, identity.shape)
        self.red = subject_rng.permutation(len(sites)) < len(sites) // 2
        self.patch_radius = subject_rng.uniform(0.058, 0.064)
        self.cable_width = 0.05
        side = np.sign(sites[:, 0])
        routes = []
        for (x, y), sgn in zip(sites, side, strict=True):
            if y < -0.35:  # forehead: up over the head (last point repeated: every route has three points)
                end = [x * 1.2 + sgn * 0.1, -1.7]
                routes.append([[x * 1.05, -1.05], end, end])
            else:  # sideways to the bundle, then down off the frame
                bundle_x = sgn * (0.92 + 0.1 * abs(y - 0.3))
                routes.append([[(x + bundle_x) / 2, y + 0.04], [bundle_x, y + 0.25], [sgn * 1.05, 2.4]])
        self.routes = np.array(routes)  # (62, 3, 2) canonical
        swab_sites = np.array([(-0.9, 0.15), (-0.92, 0.75), (-0.45, -0.95), (-0.62, 0.22), (-0.2, 1.12)])
        swabs = np.concatenate([swab_sites, swab_sites * [-1, 1]])
        self.swabs = swabs[session_rng.permutation(len(swabs))[: int(session_rng.integers(5, 9))]]
        self.swab_angles = session_rng.uniform(-60, 60, len(self.swabs))

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        pose, s = frame.pose, frame.pose.scale
        sites = pose.apply(self.move_sites(frame.shape))
        width = max(self.cable_width * s, 1.0)
        cables = np.concatenate([sites[:, None, :], pose.apply(self.routes)], axis=1)
        paint.lines(cables[self.red], _RED, width)
        paint.lines(cables[~self.red], _WHITE, width)
        paint.discs(sites, self.patch_radius * s, (238, 236, 230))
        paint.discs(sites, self.patch_radius * s * 0.35, (95, 95, 100))
        for centre, angle in zip(pose.apply(self.swabs), self.swab_angles, strict=True):
            paint.ellipse(centre, (0.09 * s, 0.028 * s), angle + np.degrees(pose.roll), (248, 248, 244))


#: Every colour the benchmark's sensor renderer draws (electrode patch, snap, red and white cable, swab).
BENCHMARK_SENSOR_COLOURS = np.array([(238, 236, 230), (95, 95, 100), _RED, _WHITE, (248, 248, 244)], dtype=float)


def held_out_colour(rng: np.random.Generator, distance: float = 80.0) -> np.ndarray:
    """A random RGB colour at least ``distance`` away from every colour of the benchmark's sensors, and not a light
    grey or white (so a held-out look never shows white patches or red / white cables)."""
    while True:
        colour = rng.uniform(0, 255, 3)
        near = np.linalg.norm(BENCHMARK_SENSOR_COLOURS - colour, axis=1).min() < distance
        if not near and not (colour.min() > 160 and np.ptp(colour) < 60):
            return colour


class RandomSensors:
    """Electrodes and cables in looks the benchmark never draws, to train restorers whose test sensors they have
    not seen: 8-90 electrodes (discs, squares or ellipses of one random size) at random, sometimes mirrored, sites
    on the face (montages from sparse to denser than the benchmark's, whose sensors hide half the face crop), in
    colours away from the benchmark's white patches, with cables of one to three other colours leaving up, sideways
    or down, and a few tapes; no white patches, no red or white cables, no swabs."""

    name = "sensors"

    def __init__(self, identity: Identity, rng: np.random.Generator) -> None:
        from matplotlib.path import Path as Polygon

        from unveil.synth.render import face_outline  # local: render imports nothing from here

        n = int(rng.integers(8, 91))
        face = Polygon(face_outline(identity, identity.shape))
        candidates = rng.uniform([-0.8, -0.8], [0.8, 1.1], (8 * n, 2))
        inside = candidates[face.contains_points(candidates)]
        if rng.uniform() < 0.5:  # a mirrored layout, as most EMG montages are
            right = inside[inside[:, 0] < -0.05][: (n + 1) // 2]
            sites = np.concatenate([right, right * [-1, 1]])
        else:
            sites = inside[:n]
        self.sites = sites
        self.move_sites = _follow_skin(sites, identity.shape)
        self.shape = str(rng.choice(["disc", "square", "ellipse"]))
        self.radius = rng.uniform(0.035, 0.085)
        self.angle = rng.uniform(0, 180)
        self.colour = held_out_colour(rng)
        self.snap = held_out_colour(rng) if rng.uniform() < 0.6 else None
        self.cable_colours = [held_out_colour(rng) for _ in range(int(rng.integers(1, 4)))]
        self.cable_of = rng.integers(0, len(self.cable_colours), len(sites))
        self.cable_width = rng.uniform(0.02, 0.08)
        self.has_cables = bool(rng.uniform() < 0.85)
        exit_side = str(rng.choice(["up", "sides", "down", "mixed"]))
        routes = []
        for x, y in sites:
            side = exit_side if exit_side != "mixed" else str(rng.choice(["up", "sides", "down"]))
            sign = 1.0 if x >= 0 else -1.0
            if side == "up":
                end = [x * 1.3 + rng.normal(0, 0.1), -1.9]
            elif side == "sides":
                end = [sign * 1.7, y + rng.uniform(0.0, 0.9)]
            else:
                end = [x * 1.4 + rng.normal(0, 0.1), 2.5]
            bend = (np.array([x, y]) + end) / 2 + rng.normal(0, 0.08, 2)
            routes.append([bend, end])
        self.routes = np.array(routes).reshape(len(sites), 2, 2)
        n_tapes = int(rng.integers(0, 5)) if len(sites) else 0
        self.tapes = [(sites[int(rng.integers(len(sites)))] + rng.normal(0, 0.12, 2), rng.uniform(0.05, 0.15),
                       rng.uniform(0.02, 0.06), rng.uniform(0, 180), held_out_colour(rng)) for _ in range(n_tapes)]

    def _electrode(self, centre: np.ndarray, size: float, roll: float) -> np.ndarray:
        """The outline of one square or elliptic electrode around ``centre`` (image pixels)."""
        a = np.radians(self.angle) + roll
        t = np.linspace(0, 2 * np.pi, 4 if self.shape == "square" else 20, endpoint=False) + np.pi / 4
        local = np.stack([np.cos(t), np.sin(t) * (0.6 if self.shape == "ellipse" else 1.0)], axis=1) * size
        if self.shape == "square":
            local = local / np.sqrt(2) * 1.6
        return local @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + centre

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        if not len(self.sites):
            return
        pose, s = frame.pose, frame.pose.scale
        sites = pose.apply(self.move_sites(frame.shape))
        if self.has_cables:
            cables = np.concatenate([sites[:, None, :], pose.apply(self.routes)], axis=1)
            for k, colour in enumerate(self.cable_colours):
                paint.lines(cables[self.cable_of == k], colour, max(self.cable_width * s, 1.0))
        for centre, length, width, angle, colour in self.tapes:
            a = np.radians(angle)  # canonical units: the pose adds the head's roll
            corners = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
            corners = corners @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + centre
            paint.polygon(pose.apply(corners), colour)
        if self.shape == "disc":
            paint.discs(sites, self.radius * s, self.colour)
        else:
            for centre in sites:
                paint.polygon(self._electrode(centre, self.radius * s, pose.roll), self.colour)
        if self.snap is not None:
            paint.discs(sites, self.radius * s * 0.35, self.snap)


class SurgicalMask:
    """A pleated surgical (or cloth) mask over nose, mouth and chin, stretched by the jaw, with ear loops."""

    name = "mask"
    COLOURS = ((150, 190, 222), (232, 234, 236), (42, 42, 48), (120, 150, 110))

    def __init__(self, rng: np.random.Generator) -> None:
        self.colour = np.array(self.COLOURS[int(rng.integers(len(self.COLOURS)))], dtype=float)
        self.top = rng.uniform(0.1, 0.2)  # how high on the nose bridge it sits

    def outline(self, shape: np.ndarray) -> np.ndarray:
        jaw = shape[1:16].copy()
        centre_x = shape[27, 0]
        jaw[:, 0] = centre_x + (jaw[:, 0] - centre_x) * 1.04
        jaw[:, 1] += 0.05
        bridge_y = shape[28, 1] + self.top * (shape[29, 1] - shape[28, 1])
        top = np.array([[shape[15, 0] * 0.98, shape[15, 1] - 0.02], [0.3, bridge_y + 0.03],
                        [centre_x, bridge_y], [-0.3, bridge_y + 0.03], [shape[1, 0] * 0.98, shape[1, 1] - 0.02]])
        return np.concatenate([jaw, top])

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        pose, s, shape = frame.pose, frame.pose.scale, frame.shape
        outline = self.outline(shape)
        for side in (1, 15):
            ear = shape[side] + [(-0.08 if side == 1 else 0.08), -0.05]
            loop = np.array([outline[0 if side == 1 else 14] + [0, 0.0], ear, shape[side] + [0, -0.35]])
            paint.line(pose.apply(loop), self.colour * 0.9, max(0.015 * s, 1.0))
        paint.polygon(pose.apply(outline), self.colour)
        half = (shape[15, 0] - shape[1, 0]) / 2
        for k, y in enumerate(np.linspace(shape[30, 1] + 0.05, shape[57, 1] + 0.05, 3)):
            pleat = np.array([[-half * (0.95 - 0.05 * k), y], [0.0, y + 0.03], [half * (0.95 - 0.05 * k), y]])
            paint.line(pose.apply(pleat), self.colour * 0.82, max(0.012 * s, 1.0))


class Glasses:
    """Spectacles or sunglasses: frames, bridge, temples and tinted lenses (a tint changes pixels too)."""

    name = "glasses"

    def __init__(self, rng: np.random.Generator) -> None:
        self.sunglasses = bool(rng.uniform() < 0.4)
        self.frame_colour = rng.choice(np.array([(20, 20, 22), (90, 60, 30), (150, 150, 160), (120, 20, 30)]))
        self.lens = (28.0, 30.0, 34.0) if self.sunglasses else (205.0, 222.0, 232.0)
        self.alpha = 0.78 if self.sunglasses else 0.28
        self.half = (rng.uniform(0.2, 0.24), rng.uniform(0.12, 0.16))

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        pose, s, shape = frame.pose, frame.pose.scale, frame.shape
        hw, hh = self.half
        width = max(0.03 * s, 1.0)
        rims = []
        for eye in (shape[36:42], shape[42:48]):
            cx, cy = eye.mean(axis=0) + [0, 0.02]
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            # A rounded rectangle as a superellipse.
            rim = np.stack([cx + hw * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.5,
                            cy + hh * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.5], axis=1)
            rims.append(rim)
            paint.polygon(pose.apply(rim), self.lens, self.alpha)
        for rim, ear_side in ((rims[0], 0), (rims[1], 16)):
            outer = rim[np.argmax(np.abs(rim[:, 0]))]
            ear = shape[ear_side] * [1.02, 1.0] + [0, -0.04]
            paint.line(pose.apply(np.array([outer, ear])), self.frame_colour, width)
            paint.line(pose.apply(np.concatenate([rim, rim[:1]])), self.frame_colour, width)
        inner_r = rims[0][np.argmax(rims[0][:, 0])]
        inner_l = rims[1][np.argmin(rims[1][:, 0])]
        bridge = np.array([inner_r, [shape[27, 0], shape[27, 1] - 0.01], inner_l])
        paint.line(pose.apply(bridge), self.frame_colour, width)


class Hand:
    """A hand that passes over the face a few times per recording (as when a sensor is re-attached): it comes
    from below, rests over the mouth, a cheek, an eye or the chin, and leaves; most frames show no hand."""

    name = "hand"
    TARGETS = {"mouth": (0.0, 0.72), "right_cheek": (-0.4, 0.4), "left_cheek": (0.4, 0.4),
               "right_eye": (-0.33, 0.05), "chin": (0.0, 1.0), "nose": (0.0, 0.35)}

    def __init__(self, identity: Identity, rng: np.random.Generator, n_frames: int, fps: float) -> None:
        self.colour = np.clip(np.array(identity.skin) * rng.uniform(0.88, 1.05), 0, 255)
        self.passes: list[tuple[int, int, int, np.ndarray, float, float]] = []
        duration = n_frames / fps
        t = rng.uniform(0.5, 3.0)
        while t < duration - 1.5:
            enter, stay = rng.uniform(0.4, 0.7), rng.uniform(0.8, 2.5)
            start, end = int(t * fps), int((t + 2 * enter + stay) * fps)
            target = np.array(self.TARGETS[rng.choice(list(self.TARGETS))]) + rng.normal(0, 0.05, 2)
            self.passes.append((start, int(enter * fps), end, target, rng.uniform(-35, 35), rng.uniform(0.95, 1.2)))
            t += 2 * enter + stay + rng.uniform(2.0, 6.0)

    @classmethod
    def still(cls, identity: Identity, rng: np.random.Generator) -> Hand:
        """A hand resting over a random target in every frame (a photo, or one frame of a synthesised pair)."""
        hand = cls(identity, rng, n_frames=0, fps=1.0)
        target = np.array(cls.TARGETS[rng.choice(list(cls.TARGETS))]) + rng.normal(0, 0.05, 2)
        # Far from both ramps: the hand is fully in place from frame 0 on.
        hand.passes = [(-10**6, 1, 10**6, target, rng.uniform(-35, 35), rng.uniform(0.95, 1.2))]
        return hand

    def _placement(self, index: int) -> tuple[np.ndarray, float, float] | None:
        for start, ramp, end, target, angle, size in self.passes:
            if start <= index < end:
                k = min(index - start, end - 1 - index) / max(ramp, 1)
                k = min(k, 1.0)
                k = k * k * (3 - 2 * k)
                offscreen = target + [0.4 * np.sign(angle), 2.6]
                return offscreen + (target - offscreen) * k, angle, size
        return None

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        placed = self._placement(frame.index)
        if placed is None:
            return
        centre, angle, size = placed
        pose, s = frame.pose, frame.pose.scale
        rot = np.radians(angle)
        r = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) * size

        def hand(points: np.ndarray) -> np.ndarray:
            return pose.apply(np.asarray(points) @ r.T + centre)

        wrist = hand([[-0.16, 0.35], [0.16, 0.35], [0.14, 1.4], [-0.14, 1.4]])
        paint.polygon(wrist, self.colour * 0.93)
        palm = hand(np.stack([0.24 * np.cos(np.linspace(0, 2 * np.pi, 20)),
                              0.3 * np.sin(np.linspace(0, 2 * np.pi, 20)) + 0.12], axis=1))
        paint.polygon(palm, self.colour)
        finger_width = max(0.11 * size * s, 1.0)
        for x, length in ((-0.16, 0.42), (-0.055, 0.5), (0.055, 0.48), (0.16, 0.38)):
            paint.line(hand([[x, -0.05], [x * 1.1, -0.05 - length]]), self.colour, finger_width)
        paint.line(hand([[0.2, 0.15], [0.38, -0.08], [0.44, -0.25]]), self.colour * 0.97, finger_width * 1.05)
        for x in (-0.11, 0.0, 0.11):  # creases between the fingers
            paint.line(hand([[x, -0.06], [x * 1.1, -0.3]]), self.colour * 0.78, max(0.012 * s, 1.0))


class Patches:
    """Random rectangles stuck on the face (seed 001's synthetic occlusions), covering about
    ``PATCH_LEVELS[level - 1]`` of the face area; flat colours or fixed noise textures."""

    name = "patch"

    def __init__(self, identity: Identity, rng: np.random.Generator, level: int | None = None) -> None:
        from unveil.synth.render import face_outline  # local: render imports nothing from here

        self.level = int(level if level is not None else rng.integers(1, len(PATCH_LEVELS) + 1))
        if not 1 <= self.level <= len(PATCH_LEVELS):
            raise UnveilError(f"The patch level must be between 1 and {len(PATCH_LEVELS)}, not {self.level}.")
        outline = face_outline(identity, identity.shape)
        x, y = outline[:, 0], outline[:, 1]
        face_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        n = int(rng.integers(1, 4))
        areas = rng.dirichlet(np.ones(n)) * face_area * PATCH_LEVELS[self.level - 1]
        lo, hi = np.array([-0.4, -0.35]), np.array([0.4, 0.85])  # centres stay on the face
        self.rects = []
        for area in areas:
            aspect = rng.uniform(0.5, 2.0)
            w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
            centre = rng.uniform(lo, hi)
            colour = rng.uniform(0, 255, 3)
            self.rects.append((centre, w, h, rng.uniform(-20, 20), colour, bool(rng.uniform() < 0.5)))
        self.placement = _follow_skin(np.array([r[0] for r in self.rects]), identity.shape)
        self.noise = rng.uniform(-60, 60, (16, 16, 3))

    def draw(self, paint: Paint, frame: FaceFrame) -> None:
        centres = self.placement(frame.shape)
        for (_, w, h, angle, colour, textured), centre in zip(self.rects, centres, strict=True):
            a = np.radians(angle)
            corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
            corners = corners @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + centre
            pts = frame.pose.apply(corners)
            if not textured:
                paint.polygon(pts, colour)
                continue
            region = np.zeros_like(paint.mask)
            cv2.fillPoly(region, [Paint._pts(pts)], 255, cv2.LINE_8, _SHIFT)
            inside = region > 0
            texture = cv2.resize(self.noise, (paint.img.shape[1], paint.img.shape[0]),
                                 interpolation=cv2.INTER_NEAREST)
            paint.img[inside] = np.clip(colour + texture[inside], 0, 255).astype(np.uint8)
            paint.mask[inside] = 255


def build_occluder(name: str, identity: Identity, *, subject_rng: np.random.Generator,
                   session_rng: np.random.Generator, recording_rng: np.random.Generator, n_frames: int,
                   fps: float, patch_level: int | None = None) -> Occluder:
    """Create occluder ``name`` for one recording; random draws come from the matching-level generator."""
    if name == "semg":
        return SEMG(identity, subject_rng, session_rng)
    if name == "mask":
        return SurgicalMask(session_rng)
    if name == "glasses":
        return Glasses(subject_rng)
    if name == "hand":
        return Hand(identity, recording_rng, n_frames, fps)
    if name == "patch":
        return Patches(identity, recording_rng, patch_level)
    raise UnveilError(f"Unknown occluder '{name}'; choose from {', '.join(OCCLUDERS)}.")

