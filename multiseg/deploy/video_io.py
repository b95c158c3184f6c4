"""Video in and out for ``multiseg predict``: frame sources (a video file, a folder of frames, a camera)
and the video writer, with one-line errors for what OpenCV cannot read or write here.

Reading goes through OpenCV's FFmpeg backend for files and its default backend (V4L2 on Linux) for
cameras. Writing: the OpenCV wheels (``opencv-python-headless``) bundle an FFmpeg without an H.264
encoder, so what they write everywhere is MPEG-4 Part 2 (``mp4v``) in ``.mp4``/``.m4v``/``.mov``/
``.mkv`` and Motion JPEG (``MJPG``) in ``.avi``; :data:`CONTAINERS` maps each container to that
default and ``--codec`` picks another FOURCC (``XVID``, ``FFV1`` ...). A combination OpenCV cannot open is
refused before any work with the ones that do work named.

OpenCV and FFmpeg print their own complaints on the process's stderr (``moov atom not found``, failed
encoder probes); opening is done with that file descriptor silenced and FFmpeg's log level set to quiet,
so a bad input reads as the one line :class:`~multiseg.errors.MultisegError` gives.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from multiseg.data.io import IMAGE_EXTENSIONS, read_image
from multiseg.errors import MultisegError

#: Output containers OpenCV's bundled FFmpeg writes, with the FOURCC used by default.
CONTAINERS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
#: Names that say "a video" (as ``--out``: a video is asked for, even one OpenCV cannot write here).
VIDEO_SUFFIXES = frozenset({*CONTAINERS, ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".gif", ".3gp"})
WORKING = "use .mp4 (mp4v) or .avi (MJPG)"
#: Frame rate given to a folder of frames, and to a camera that reports none.
DEFAULT_FPS = 10.0


def is_video_name(path: Path | str) -> bool:
    """Whether a file name has a video container's suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def camera_index(source: str) -> int | None:
    """``"0"``, ``"1"`` ... -> the camera index; anything else -> None."""
    return int(source) if source.isdigit() and not Path(source).exists() else None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the block (what C libraries print), keeping Python's stderr."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg is first used
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# -- sources --------------------------------------------------------------------------------------


@dataclass
class FrameSource:
    """Frames to predict on: RGB uint8 arrays of one size, one at a time.

    ``fps`` is the source's frame rate, ``total`` its frame count where known (None for a camera),
    ``live`` whether it runs until stopped (a camera: Ctrl-C ends the video instead of discarding it).
    """

    name: str
    size: tuple[int, int]  # width, height
    fps: float
    total: int | None
    live: bool = False
    decoded: int = 0
    _capture: cv2.VideoCapture | None = field(default=None, repr=False)
    _files: list[Path] = field(default_factory=list, repr=False)
    _first: np.ndarray | None = field(default=None, repr=False)

    def frames(self, every: int = 1) -> Iterator[np.ndarray]:
        """Frames 0, ``every``, 2 ``every`` ... in order (a folder's resized to its first frame's size).

        ``decoded`` counts what was taken from the source, skipped frames included.
        """
        if self._capture is not None:
            first, self._first = self._first, None
            if first is not None:
                self.decoded += 1
                yield first
            while True:
                for _ in range(every - 1):  # grab without the colour conversion: skipped anyway
                    if not self._capture.grab():
                        return
                    self.decoded += 1
                ok, bgr = self._capture.read()
                if not ok:
                    return
                self.decoded += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for i, path in enumerate(self._files):
            if i % every:
                continue
            image = read_image(path)
            self.decoded = i + 1
            if (image.shape[1], image.shape[0]) != self.size:
                image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
            yield image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def _from_capture(name: str, capture: cv2.VideoCapture, live: bool) -> FrameSource:
    ok, bgr = capture.read()
    if not ok:
        capture.release()
        what = "gives no frames" if live else "holds no frames (empty or truncated)"
        raise MultisegError(f"{name}: {what}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    h, w = bgr.shape[:2]
    return FrameSource(
        name, (w, h), fps if 0 < fps < 1000 else DEFAULT_FPS, None if live or count <= 0 else count, live,
        _capture=capture, _first=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
    )  # fmt: skip


def open_source(source: str | Path) -> FrameSource:
    """A video file, a folder of frames (sorted by name) or a camera index; a one-line error otherwise."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise MultisegError(f"{path}: a folder of frames with no images ({', '.join(IMAGE_EXTENSIONS)})")
        first = read_image(files[0])
        size = (first.shape[1], first.shape[0])
        return FrameSource(str(path), size, DEFAULT_FPS, len(files), _files=files)
    if (index := camera_index(text)) is not None:
        with quiet_native_stderr():
            capture = cv2.VideoCapture(index)
            if not capture.isOpened():
                capture.release()
                raise MultisegError(f"camera {index} does not open (no such device, busy, or no permission)")
            return _from_capture(f"camera {index}", capture, live=True)
    if not path.is_file():
        raise MultisegError(f"{path}: no such video file, folder of frames or camera index")
    with quiet_native_stderr():
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise MultisegError(
                f"{path}: cannot be read as a video (empty, truncated or not a video OpenCV decodes)"
            )
        return _from_capture(str(path), capture, live=False)


# -- the writer -----------------------------------------------------------------------------------


def open_writer(
    path: Path, target: Path, fps: float, size: tuple[int, int], codec: str | None
) -> cv2.VideoWriter:
    """An OpenCV writer on ``path`` (``target``'s temporary name), or a one-line error saying what works."""
    suffix = target.suffix.lower()
    fourcc = codec or CONTAINERS.get(suffix)
    if fourcc is None:
        raise MultisegError(f"--out {target}: OpenCV here cannot write {suffix or 'no'} videos; {WORKING}")
    if len(fourcc) != 4:
        raise MultisegError(f"--codec {fourcc!r}: a FOURCC has 4 characters (mp4v, MJPG, XVID ...)")
    with quiet_native_stderr():
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        writer.release()
        raise MultisegError(f"--out {target}: OpenCV here cannot write {fourcc} into {suffix}; {WORKING}")
    return writer
