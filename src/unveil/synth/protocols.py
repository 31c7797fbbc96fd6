"""Recording protocols of seed 000 as AU-intensity time lines: Schaede (eleven facial movements, three
repetitions each), Emotion (EMFACS prototypes with neutral between) and Sentence (speech-like mouth movement);
beyond the seed, Single AU (each AU alone: the uncorrelated faces an AU classifier is tested on, seed 002).

Every call draws its own start delay, tempo, per-event timing and intensity variation and random blinks, so
two recordings of the same protocol are never frame-aligned (the unpaired setting of the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unveil.errors import UnveilError
from unveil.facs import BASIC_EMOTIONS, EMOTION_PROTOTYPES, au_column
from unveil.synth.face import SYNTH_AUS

#: Seed 000's tasks, recorded by default.
PROTOCOLS: tuple[str, ...] = ("schaede", "emotion", "sentence")
#: Every task the generator can record: the seed's, then ``single_au``.
TASKS: tuple[str, ...] = (*PROTOCOLS, "single_au")

#: The apex of each AU in the ``single_au`` task (seed 002 activates one AU at a time at 0.7 on faces).
SINGLE_AU_INTENSITY = 0.7

#: The eleven Schaede movements as AU intensities. Seed 000 does not list them; this is the usual clinical
#: set (FACS.md) and an approximation of the instruction video.
SCHAEDE_MOVEMENTS: dict[str, dict[int, float]] = {
    "rest": {},
    "forehead_wrinkling": {1: 0.9, 2: 0.9},
    "gentle_eye_closure": {43: 1.0},
    "forceful_eye_closure": {43: 1.0, 6: 0.8, 7: 0.8, 4: 0.5, 9: 0.3},
    "nose_wrinkling": {9: 1.0, 4: 0.3, 10: 0.3},
    "closed_mouth_smile": {12: 0.9, 6: 0.5},
    "open_mouth_smile": {12: 1.0, 6: 0.7, 25: 0.8, 26: 0.3, 10: 0.3},
    "lip_pucker": {18: 1.0},
    "cheek_blowing": {34: 1.0, 24: 0.6},
    "lower_lip_depression": {16: 1.0, 25: 0.6},
    "snarl": {10: 1.0, 9: 0.4, 25: 0.3},
}

#: Apex intensities for the EMFACS prototypes (the AU sets are those of :data:`EMOTION_PROTOTYPES`).
EMOTION_INTENSITIES: dict[str, dict[int, float]] = {
    "happiness": {6: 0.75, 12: 1.0},
    "sadness": {1: 0.8, 4: 0.6, 15: 0.9},
    "surprise": {1: 0.85, 2: 0.85, 5: 0.7, 26: 0.7},
    "fear": {1: 0.75, 2: 0.5, 4: 0.5, 5: 0.8, 7: 0.4, 20: 0.8, 26: 0.45},
    "anger": {4: 1.0, 5: 0.5, 7: 0.8, 23: 0.8},
    "disgust": {9: 0.9, 15: 0.5, 16: 0.45},
}
for _name, _aus in EMOTION_INTENSITIES.items():
    assert set(_aus) == set(EMOTION_PROTOTYPES[_name]), _name


@dataclass(frozen=True)
class Timeline:
    """Per-frame AU intensities (frames x :data:`SYNTH_AUS`) and the name of the event shown in each frame."""

    intensities: np.ndarray
    events: np.ndarray  # object array of str; "neutral" between events, "blink" is not an event
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.intensities.shape[0])

    def au(self, number: int) -> np.ndarray:
        return self.intensities[:, SYNTH_AUS.index(number)]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Builder:
    """Accumulates events on a time line in seconds, then samples it at ``fps``."""

    def __init__(self, fps: float, rng: np.random.Generator) -> None:
        self.fps, self.rng = fps, rng
        self.tempo = rng.uniform(0.85, 1.2)  # this recording's overall pace
        self.t = rng.uniform(0.4, 1.6)  # the subject does not start at the same moment every time
        self.events: list[tuple[str, dict[int, float], float, float, float, float]] = []
        self.curves: list[tuple[str, float, float, dict[int, np.ndarray]]] = []

    def event(self, name: str, aus: dict[int, float], onset: float = 0.35, apex: float = 0.7,
              offset: float = 0.35, rest: float = 0.45) -> None:
        jitter = self.tempo * self.rng.uniform(0.8, 1.25, 4)
        on, hold, off, pause = onset * jitter[0], apex * jitter[1], offset * jitter[2], rest * jitter[3]
        overall = self.rng.uniform(0.75, 1.0)  # intensity varies between repetitions
        scaled = {au: float(np.clip(v * overall * self.rng.uniform(0.9, 1.1), 0, 1)) for au, v in aus.items()}
        if 43 in aus:  # an instructed eye closure closes the eye fully
            scaled[43] = aus[43]
        self.events.append((name, scaled, self.t, on, hold, off))
        self.t += on + hold + off + pause

    def sampled(self, name: str, duration: float, curves: dict[int, np.ndarray]) -> None:
        """Add AU curves already sampled at ``fps`` (speech), starting now."""
        self.curves.append((name, self.t, duration, curves))
        self.t += duration

    def build(self, blink_rate: float) -> Timeline:
        n = int(np.ceil((self.t + self.rng.uniform(0.5, 1.2)) * self.fps))
        time = np.arange(n) / self.fps
        values = np.zeros((n, len(SYNTH_AUS)))
        events = np.full(n, "neutral", dtype=object)
        for name, start, _, curves in self.curves:
            first = int(round(start * self.fps))
            length = max(len(c) for c in curves.values())
            for au, curve in curves.items():
                seg = curve[: max(0, n - first)]
                col = SYNTH_AUS.index(au)
                values[first:first + len(seg), col] = np.maximum(values[first:first + len(seg), col], seg)
            events[first:first + length] = name
        for name, aus, start, on, hold, off in self.events:
            rise = _smoothstep((time - start) / on)
            fall = 1.0 - _smoothstep((time - start - on - hold) / off)
            envelope = np.minimum(rise, fall)
            envelope[(time < start) | (time > start + on + hold + off)] = 0.0
            for au, v in aus.items():
                col = SYNTH_AUS.index(au)
                values[:, col] = np.maximum(values[:, col], v * envelope)
            events[envelope > 0.5] = name
        values[:, SYNTH_AUS.index(43)] = np.maximum(values[:, SYNTH_AUS.index(43)], self._blinks(time, blink_rate))
        return Timeline(intensities=values, events=events, fps=self.fps)

    def _blinks(self, time: np.ndarray, rate: float) -> np.ndarray:
        """Spontaneous blinks: a Poisson process (``rate`` per second), each about 0.25 s long."""
        closure = np.zeros_like(time)
        if rate <= 0:
            return closure
        t = self.rng.exponential(1 / rate)
        while t < time[-1]:
            half = self.rng.uniform(0.08, 0.14)
            closure = np.maximum(closure, np.clip(1 - np.abs(time - t) / half, 0, 1) * self.rng.uniform(0.85, 1))
            t += max(self.rng.exponential(1 / rate), 0.6)
        return closure


def schaede(fps: float, rng: np.random.Generator, repetitions: int = 3, blink_rate: float = 0.25) -> Timeline:
    """Eleven facial movements (:data:`SCHAEDE_MOVEMENTS`), each ``repetitions`` times in a row."""
    b = _Builder(fps, rng)
    for name, aus in SCHAEDE_MOVEMENTS.items():
        for _ in range(repetitions):
            b.event(name, aus)
    return b.build(blink_rate)


def emotion(fps: float, rng: np.random.Generator, repetitions: int = 2, blink_rate: float = 0.25) -> Timeline:
    """The six basic emotions as EMFACS prototypes, in a fixed order, ``repetitions`` rounds, neutral between."""
    b = _Builder(fps, rng)
    for _ in range(repetitions):
        for name in BASIC_EMOTIONS:
            b.event(name, EMOTION_INTENSITIES[name], onset=0.4, apex=1.0, offset=0.4, rest=0.6)
    return b.build(blink_rate)


def sentence(fps: float, rng: np.random.Generator, repetitions: int = 5, blink_rate: float = 0.3) -> Timeline:
    """``repetitions`` spoken sentences: syllables at about 4-5 Hz open the lips and jaw (AU25, AU26) with
    rounded (AU18) and spread (AU20) vowels, lip closures (AU24) and occasional brow emphasis (AU1+2)."""
    b = _Builder(fps, rng)
    for k in range(repetitions):
        n_syllables = int(rng.integers(8, 15))
        rate = rng.uniform(4.0, 5.2) / b.tempo
        duration = n_syllables / rate
        n = int(np.ceil(duration * fps))
        t = np.arange(n) / fps
        curves = {au: np.zeros(n) for au in (25, 26, 18, 20, 24, 1, 2)}
        for s in range(n_syllables):
            centre, width = (s + 0.5) / rate, 0.55 / rate
            bump = np.cos(np.clip((t - centre) / width, -0.5, 0.5) * np.pi)
            bump[bump < 1e-6] = 0.0
            opening = rng.uniform(0.35, 0.9)
            curves[25] = np.maximum(curves[25], bump * min(1.0, opening + 0.2))
            curves[26] = np.maximum(curves[26], bump * opening * 0.55)
            vowel = rng.uniform()
            if vowel < 0.25:
                curves[18] = np.maximum(curves[18], bump * rng.uniform(0.3, 0.7))
            elif vowel < 0.5:
                curves[20] = np.maximum(curves[20], bump * rng.uniform(0.2, 0.5))
            if rng.uniform() < 0.2:  # bilabial consonant: lips pressed between syllables
                curves[24] = np.maximum(curves[24], (1 - bump) * np.exp(-((t - centre - width) * rate * 3) ** 2) * 0.6)
        if rng.uniform() < 0.5:  # emphasis on a word
            centre = rng.uniform(0.2, 0.8) * duration
            emphasis = np.exp(-((t - centre) / 0.3) ** 2) * rng.uniform(0.3, 0.6)
            curves[1], curves[2] = emphasis, emphasis * 0.8
        b.sampled(f"sentence_{k + 1}", duration, curves)
        b.t += rng.uniform(0.6, 1.2) * b.tempo
    return b.build(blink_rate)


def single_au(fps: float, rng: np.random.Generator, repetitions: int = 2, blink_rate: float = 0.0) -> Timeline:
    """Every synthesised AU alone (:data:`SYNTH_AUS`, apex :data:`SINGLE_AU_INTENSITY`), ``repetitions`` rounds in
    a shuffled order, neutral between and no blinks: no frame shows two AUs, so a classifier that learnt AU6 from
    smiles and calls it on a lone AU12 is caught (seed 002's uncorrelated test, on faces)."""
    b = _Builder(fps, rng)
    for _ in range(repetitions):
        for au in rng.permutation(SYNTH_AUS):
            b.event(au_column(int(au)), {int(au): SINGLE_AU_INTENSITY})
    return b.build(blink_rate)


def build_timeline(protocol: str, fps: float, rng: np.random.Generator, repetitions: int | None = None) -> Timeline:
    """The time line of ``protocol`` (one of :data:`TASKS`) at ``fps``."""
    builders = {"schaede": schaede, "emotion": emotion, "sentence": sentence, "single_au": single_au}
    if protocol not in builders:
        raise UnveilError(f"Unknown task '{protocol}'; choose from {', '.join(TASKS)}.")
    if repetitions is None:
        return builders[protocol](fps, rng)
    return builders[protocol](fps, rng, repetitions=repetitions)
