"""Atomic file output: an interrupted run never leaves a half-written file that looks complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from unveil.errors import UnveilError

if TYPE_CHECKING:
    import numpy as np

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure delete it.

    The temporary name keeps the suffix (writers such as PyAV and pandas choose the format from it) and
    starts with ``.tmp-`` so that globbing for results never picks it up.
    """
    target = Path(path)
    tmp = temp_path_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_path_beside(target: Path) -> Path:
    """A new empty temporary file in ``target``'s folder (created if needed), to be renamed over ``target``."""
    ensure_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{target.stem}-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; results should get the usual permissions
    return Path(tmp_name)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_image_atomic(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an RGB (or one-channel) uint8 ``image`` to ``path`` atomically, in the format its suffix names; one
    sentence when OpenCV cannot write it."""
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise UnveilError(f"Cannot write the image {path}.")


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) or raise a one-sentence error saying why it cannot be written."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnveilError(f"Cannot create the output folder {directory}: {exc.strerror or exc}.") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UnveilError(f"The output folder {directory} is not writable.")
    return directory
