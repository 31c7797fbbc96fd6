import numpy as np
import pytest

from unveil.facs import EMOTION_PROTOTYPES
from unveil.synth.face import SYNTH_AUS
from unveil.synth.protocols import SCHAEDE_MOVEMENTS, build_timeline


def _segments(events: np.ndarray) -> list[str]:
    """Event names in order, one per contiguous run, without the neutral gaps."""
    runs = [e for k, e in enumerate(events) if k == 0 or e != events[k - 1]]
    return [e for e in runs if e != "neutral"]


def test_schaede_is_eleven_movements_three_times() -> None:
    timeline = build_timeline("schaede", 15, np.random.default_rng(0))
    segments = _segments(timeline.events)
    assert len(SCHAEDE_MOVEMENTS) == 11
    # Repetitions of one movement are separated by neutral, so each movement appears three times in a row.
    assert segments == [name for name in SCHAEDE_MOVEMENTS for _ in range(3)]


def test_emotion_events_show_their_emfacs_prototype() -> None:
    timeline = build_timeline("emotion", 15, np.random.default_rng(1))
    for name in ("happiness", "sadness", "surprise", "fear", "anger", "disgust"):
        rows = timeline.events == name
        active = {au for k, au in enumerate(SYNTH_AUS) if timeline.intensities[rows, k].max() > 0.05}
        assert active - {43} == set(EMOTION_PROTOTYPES[name]), name  # blinks may fall anywhere


def test_sentence_moves_the_mouth_only_while_speaking() -> None:
    timeline = build_timeline("sentence", 15, np.random.default_rng(2))
    speaking = np.array([e.startswith("sentence_") for e in timeline.events])
    lips = timeline.au(25)
    assert len(_segments(timeline.events)) == 5
    assert lips[speaking].max() > 0.5 and lips[~speaking].max() == 0
    # Syllables: the lips open and close several times a second.
    openings = np.sum(np.diff((lips > 0.3).astype(int)) == 1)
    assert openings >= 5 * 8


@pytest.mark.parametrize("task", ["schaede", "emotion", "sentence"])
def test_recordings_are_not_frame_aligned(task: str) -> None:
    a = build_timeline(task, 15, np.random.default_rng(10))
    b = build_timeline(task, 15, np.random.default_rng(11))
    n = min(a.n_frames, b.n_frames)
    assert a.n_frames != b.n_frames or not np.array_equal(a.intensities, b.intensities)
    assert np.abs(a.intensities[:n] - b.intensities[:n]).max() > 0.5


def test_random_blinks_close_the_eyes_briefly() -> None:
    timeline = build_timeline("emotion", 30, np.random.default_rng(3))
    closed = timeline.au(43) > 0.8
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    ends = np.flatnonzero(np.diff(closed.astype(int)) == -1)
    assert len(starts) >= 3  # about one every four seconds in a half-minute recording
    assert np.all((ends[: len(starts)] - starts[: len(ends)]) <= 0.3 * 30)


def test_unknown_task() -> None:
    from unveil.errors import UnveilError

    with pytest.raises(UnveilError, match="Unknown task 'dance'"):
        build_timeline("dance", 15, np.random.default_rng(0))


def test_single_au_shows_every_au_alone() -> None:
    from unveil.synth import SynthConfig
    from unveil.synth.protocols import PROTOCOLS, SINGLE_AU_INTENSITY

    timeline = build_timeline("single_au", 15, np.random.default_rng(4), repetitions=2)
    assert (timeline.intensities > 0).sum(axis=1).max() == 1  # no frame moves two AUs, not even a blink
    segments = _segments(timeline.events)
    assert sorted(segments) == sorted(f"AU{au:02d}" for au in SYNTH_AUS for _ in range(2))
    apex = timeline.intensities.max(axis=0)
    low, high = SINGLE_AU_INTENSITY * 0.75 * 0.9, SINGLE_AU_INTENSITY * 1.1  # per-event intensity variation
    assert np.all((apex >= low) & (apex <= high)), apex
    assert SynthConfig().tasks == list(PROTOCOLS) == ["schaede", "emotion", "sentence"]  # not recorded by default
