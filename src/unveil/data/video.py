"""Streaming video input/output on PyAV: frames go through one at a time, never a whole video in memory.

Colour video is H.264 (libx264, yuv420p; lossy); binary masks are FFV1 (lossless, gray) in Matroska so
they decode to exactly the pixels written. Output files are written atomically.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Container, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from unveil.errors import UnveilError
from unveil.files import ensure_dir, temp_path_beside


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the stream, its presentation time in seconds and RGB (or gray) pixels."""

    index: int
    time: float
    image: np.ndarray


class VideoWriter:
    """Encode frames to ``path`` as they come; the file appears only when the writer closes without error.

    ``lossless=True`` writes FFV1 (use a ``.mkv`` path), exact for masks and ground truth; otherwise H.264
    at constant quality ``crf`` (18 is visually lossless for faces). ``gray=True`` takes (H, W) uint8 frames.
    ``audio_from``: a video whose audio track is copied (not re-encoded) alongside, interleaved as frames come.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        *,
        lossless: bool = False,
        gray: bool = False,
        crf: int = 18,
        preset: str = "veryfast",
        audio_from: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.lossless, self.gray = lossless, gray
        # threads=1 (parallelism comes from encoding several files at once) and no macroblock tree: with it,
        # libx264's SIMD path gave different bytes for the same frames from one run to the next.
        self._options = {} if lossless else {"crf": str(crf), "preset": preset, "threads": "1",
                                             "x264-params": "mbtree=0"}
        self._audio_source = Path(audio_from) if audio_from is not None else None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_out: av.audio.stream.AudioStream | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._pending_audio: av.Packet | None = None
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self.frames_written = 0

    def __enter__(self) -> VideoWriter:
        self._tmp = temp_path_beside(self.path)
        # bitexact: no random segment ids or encoder dates, so the same frames give the same bytes.
        self._container = av.open(str(self._tmp), mode="w", options={"fflags": "+bitexact"})
        return self

    def _open_audio(self) -> None:
        """Add the source's audio stream (stream copy); called once the video stream exists."""
        assert self._container is not None and self._audio_source is not None
        try:
            self._audio_in = av.open(str(self._audio_source))
        except (av.error.FFmpegError, OSError) as exc:
            raise UnveilError(f"Cannot read the audio of {self._audio_source}: {exc}.") from None
        if not self._audio_in.streams.audio:
            return
        source = self._audio_in.streams.audio[0]
        self._audio_out = self._container.add_stream_from_template(source)
        self._audio_packets = (p for p in self._audio_in.demux(source) if p.dts is not None and p.size > 0)

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Copy audio packets that start before ``seconds`` (all remaining ones for None)."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                return
            if seconds is not None and float(packet.pts * packet.time_base) > seconds:
                self._pending_audio = packet
                return
            packet.stream = self._audio_out
            self._container.mux(packet)  # type: ignore[union-attr]

    def write(self, image: np.ndarray) -> None:
        """Append one frame: (H, W, 3) RGB uint8, or (H, W) uint8 for a gray writer."""
        assert self._container is not None, "VideoWriter must be used as a context manager"
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if self._stream is None:
            self._stream = self._open_stream(image.shape[1], image.shape[0])
            if self._audio_source is not None:
                self._open_audio()
        frame = av.VideoFrame.from_ndarray(image, format="gray" if self.gray else "rgb24")
        frame.pts = self.frames_written  # explicit: the stream's time base is 1/fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1
        self._mux_audio_until(self.frames_written / float(self.fps))

    def _open_stream(self, width: int, height: int) -> av.video.stream.VideoStream:
        assert self._container is not None
        codec = "ffv1" if self.lossless else "libx264"
        if not self.lossless and (width % 2 or height % 2):
            raise UnveilError(f"H.264 needs even frame sizes; {self.path.name} would be {width}x{height}.")
        stream = self._container.add_stream(codec, rate=self.fps, options=self._options)
        stream.width, stream.height = width, height
        stream.time_base = 1 / self.fps
        stream.pix_fmt = ("gray" if self.gray else "bgr0") if self.lossless else "yuv420p"
        stream.thread_count = 1
        return stream

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._container is not None and self._tmp is not None
        error = exc
        try:
            if error is None and self._stream is None:
                error = UnveilError(f"No frames were written to {self.path}.")
            elif error is None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._mux_audio_until(None)
        except BaseException as flush_error:  # noqa: BLE001 - re-raised below after cleaning up
            error = flush_error
        finally:
            self._container.close()
            if self._audio_in is not None:
                self._audio_in.close()
        if error is None:
            os.replace(self._tmp, self.path)
            return
        self._tmp.unlink(missing_ok=True)
        if error is not exc:
            raise error


class FrameFolderWriter:
    """Write frames as numbered lossless PNGs (``000000.png`` ...) into ``path``, a folder that appears
    complete or not at all (frames go to a temporary folder renamed on success)."""

    def __init__(self, path: str | os.PathLike[str], fps: float, *, gray: bool = False) -> None:
        self.path, self.fps, self.gray = Path(path), fps, gray
        self._tmp: Path | None = None
        self.frames_written = 0

    def __enter__(self) -> FrameFolderWriter:
        ensure_dir(self.path.parent)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.path.name}-", dir=self.path.parent))
        return self

    def write(self, image: np.ndarray) -> None:
        assert self._tmp is not None, "FrameFolderWriter must be used as a context manager"
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(self._tmp / f"{self.frames_written:06d}.png"), bgr):
            raise UnveilError(f"Cannot write frames into {self.path}.")
        self.frames_written += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tmp is not None
        if exc is None and self.frames_written == 0:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise UnveilError(f"No frames were written to {self.path}.")
        if exc is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        os.chmod(self._tmp, 0o777 & ~_umask())
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self._tmp, self.path)


def open_writer(path: str | os.PathLike[str], fps: float, *, gray: bool = False, lossless: bool = False,
                crf: int = 18, preset: str = "veryfast", audio_from: str | os.PathLike[str] | None = None
                ) -> VideoWriter | FrameFolderWriter:
    """A writer chosen by ``path``: a video file for a video suffix (.mp4, .mkv, ...), else a folder of PNGs
    (which cannot carry ``audio_from``)."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        return FrameFolderWriter(path, fps, gray=gray)
    return VideoWriter(path, fps, gray=gray, lossless=lossless, crf=crf, preset=preset, audio_from=audio_from)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask




@dataclass(frozen=True)
class VideoInfo:
    """What a video (or frame folder) holds, from its container, without decoding pictures."""

    path: Path
    width: int
    height: int
    n_frames: int  # counted from the demuxed packets, exact also for variable frame rates
    fps: float  # average frame rate
    duration: float  # seconds, from the first to the last frame plus one average frame
    has_audio: bool
    codec: str


def probe(path: str | os.PathLike[str], fps: float | None = None) -> VideoInfo:
    """Describe ``path`` (a video file or a folder of images; ``fps`` sets a folder's frame rate)."""
    file = Path(path)
    if file.is_dir():
        images = _folder_images(file)
        if not images:
            raise UnveilError(f"The folder {file} holds no images.")
        first = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
        if first is None:
            raise UnveilError(f"Cannot read the image {images[0]}.")
        rate = fps or float("nan")
        return VideoInfo(file, first.shape[1], first.shape[0], len(images), rate, len(images) / rate if fps else
                         float("nan"), False, "images")
    times = frame_times(file)
    with _open(file) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else len(times) / max(times[-1], 1e-9)
        return VideoInfo(file, stream.codec_context.width, stream.codec_context.height, len(times), rate,
                         float(times[-1] - times[0] + 1 / rate) if len(times) else 0.0,
                         bool(container.streams.audio), stream.codec_context.name)


def frame_times(path: str | os.PathLike[str]) -> np.ndarray:
    """Presentation time (s) of every frame, in display order, read from the packets without decoding.

    Exact for variable frame rates; frame ``k`` of :func:`read_frames` has time ``frame_times(path)[k]``.
    """
    file = Path(path)
    with _open(file) as container:
        stream = container.streams.video[0]
        try:
            pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
        except av.error.FFmpegError as exc:
            raise UnveilError(f"The video {file} is corrupt or truncated: {exc}.") from None
        start = stream.start_time or 0
        return (np.sort(np.array(pts, dtype=np.int64)) - start) * float(stream.time_base)


def read_frames(path: str | os.PathLike[str], *, gray: bool = False, fps: float | None = None,
                start: int = 0, stop: int | None = None, only: Container[int] | None = None) -> Iterator[Frame]:
    """Decode ``path`` frame by frame (RGB, or gray for masks), with index and presentation time (seconds from
    the first frame). ``start`` / ``stop`` select frames by index; a late ``start`` seeks instead of decoding
    everything before it.

    ``only``: yield just these frame indices (the others are decoded, as a stream requires, but not converted
    to arrays: much faster when sampling a few frames of a long video).

    ``path`` may be a video file or a folder of images (sorted by name; times are ``index / fps``, or NaN
    when no ``fps`` is given).
    """
    file = Path(path)
    if file.is_dir():
        for frame in _read_folder(file, gray, fps, only):
            if frame.index >= start and (stop is None or frame.index < stop):
                yield frame
        return
    fmt = "gray" if gray else "rgb24"
    with _open(file) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.start_time or 0
        index, skip_to_pts = 0, None
        if start > 0:
            times = frame_times(file)
            if start >= len(times):
                return
            target = int(round(times[start] / float(stream.time_base))) + base
            container.seek(target, stream=stream, backward=True, any_frame=False)
            index, skip_to_pts = start, target
        try:
            for frame in container.decode(stream):
                if skip_to_pts is not None:
                    if frame.pts is not None and frame.pts < skip_to_pts:
                        continue
                    skip_to_pts = None
                if stop is not None and index >= stop:
                    return
                if only is None or index in only:
                    pts = frame.pts if frame.pts is not None else base
                    yield Frame(index=index, time=float((pts - base) * stream.time_base),
                                image=frame.to_ndarray(format=fmt))
                index += 1
        except av.error.FFmpegError as exc:
            raise UnveilError(f"The video {file} is corrupt or truncated: {exc}.") from None


@contextlib.contextmanager
def _open(file: Path) -> Iterator[av.container.InputContainer]:
    if not file.exists():
        raise UnveilError(f"The video {file} does not exist.")
    try:
        container = av.open(str(file))
    except (av.error.FFmpegError, OSError) as exc:
        raise UnveilError(f"Cannot open the video {file}: {exc}.") from None
    with container:
        if not container.streams.video:
            raise UnveilError(f"{file} has no video stream.")
        yield container


def read_media(path: str | os.PathLike[str], gray: bool = False) -> Iterator[Frame]:
    """Frames of a single image file, a folder of images or a video, alike (an image is one frame at t=0)."""
    file = Path(path)
    if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is None:
            raise UnveilError(f"Cannot read the image {file}.")
        yield Frame(0, 0.0, image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        return
    yield from read_frames(file, gray=gray)


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_folder(folder: Path, gray: bool, fps: float | None, only: Container[int] | None = None
                 ) -> Iterator[Frame]:
    files = _folder_images(folder)
    for index, file in enumerate(files):
        if only is not None and index not in only:
            continue
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is None:
            raise UnveilError(f"Cannot read the image {file}.")
        if not gray:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        yield Frame(index=index, time=index / fps if fps else float("nan"), image=image)
