"""Decoding the real third-party clips: exact frame counts and timestamps, seeking, audio kept."""

from pathlib import Path

import av
import numpy as np
import pytest

from unveil.data.video import VideoWriter, frame_times, probe, read_frames

CLIPS = ["WolfgangLanger_Pexels.mp4", "face_noface.mov", "noface_face.mov", "single_face.mp4", "talking_1.mp4",
         "talking_2.mp4", "talking_3.mp4", "talking_4.mp4"]


@pytest.mark.parametrize("name", CLIPS)
def test_counts_and_timestamps_match_the_container(shared_data: Path, name: str) -> None:
    path = shared_data / "videos" / name
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        listed, base, unit = stream.frames, stream.start_time or 0, float(stream.time_base)
        decoded_pts = [f.pts for f in container.decode(stream)]
    frames = [(f.index, f.time) for f in read_frames(path)]
    assert len(frames) == listed == probe(path).n_frames
    assert [i for i, _ in frames] == list(range(listed))
    np.testing.assert_allclose([t for _, t in frames], (np.array(decoded_pts) - base) * unit, atol=1e-9)
    np.testing.assert_allclose(frame_times(path), [t for _, t in frames], atol=1e-9)


def test_variable_frame_rate_is_kept(shared_data: Path) -> None:
    times = frame_times(shared_data / "videos" / "face_noface.mov")
    steps = np.diff(times)
    assert steps.min() > 0 and steps.max() / steps.min() > 1.5  # not one constant frame duration


@pytest.mark.parametrize("name", ["talking_4.mp4", "face_noface.mov"])
def test_seeking_gives_the_sequential_frame(shared_data: Path, name: str) -> None:
    path = shared_data / "videos" / name
    sequential = {f.index: f for f in read_frames(path)}
    for start in (1, 57, len(sequential) - 3):
        first = next(read_frames(path, start=start))
        assert first.index == start and first.time == sequential[start].time
        assert np.array_equal(first.image, sequential[start].image)
    assert [f.index for f in read_frames(path, start=10, stop=14)] == [10, 11, 12, 13]


def test_reencoding_keeps_count_fps_duration_and_audio(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "videos" / "talking_2.mp4"
    info = probe(source)
    with VideoWriter(tmp_path / "copy.mp4", info.fps, audio_from=source) as writer:
        for frame in read_frames(source):
            writer.write(frame.image)
    copy = probe(tmp_path / "copy.mp4")
    assert (copy.n_frames, copy.fps, copy.duration, copy.has_audio) == (info.n_frames, info.fps, info.duration, True)
    with av.open(str(source)) as a, av.open(str(tmp_path / "copy.mp4")) as b:
        sa, sb = a.streams.audio[0], b.streams.audio[0]
        assert sa.frames == sb.frames
        assert float(sa.duration * sa.time_base) == pytest.approx(float(sb.duration * sb.time_base), abs=1e-3)


def test_only_selected_frames_are_returned(shared_data: Path) -> None:
    path = shared_data / "videos" / "single_face.mp4"
    every = {f.index: f for f in read_frames(path)}
    chosen = list(read_frames(path, only={3, 40, 71}))
    assert [f.index for f in chosen] == [3, 40, 71]
    assert all(np.array_equal(f.image, every[f.index].image) and f.time == every[f.index].time for f in chosen)
