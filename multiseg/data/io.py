"""Image and label readers with one-line errors.

Decoding dominates the per-sample cost (specs/environment.md §6). 8-bit PNGs and JPEGs go through
``imagecodecs`` (libpng with zlib-ng, libjpeg-turbo: about 30 % faster than OpenCV here) wherever it
gives OpenCV's very pixels (:mod:`multiseg.data.decoders`), everything else and every machine
without ``imagecodecs`` through OpenCV. Palette ('P') PNGs go through Pillow, because both others
expand them to colours and their *indices* are the labels.
Every reader raises :class:`FileError` (a :class:`~multiseg.errors.MultisegError`) naming the file and
the problem, never returns ``None`` the way ``cv2.imread`` does.

libpng and libjpeg print their own complaints ("libpng error: bad adaptive filter value", "Corrupt JPEG
data: ...") straight to file descriptor 2, before multiseg's one-line error. Every OpenCV decode runs
with descriptor 2 pointed at a private file (:func:`_imdecode`): the codec's text becomes the reason in
the :class:`FileError`, and anything else written meanwhile is passed on to the real stderr.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from multiseg.data.decoders import decode_grey_label, decode_rgb
from multiseg.errors import MultisegError

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked after the parent ran
# a parallel cv2 call deadlocks on its first cv2 call. Like mmcv and detectron2, run OpenCV
# single-threaded (0 = no pool); parallelism comes from DataLoader workers (specs/environment.md §9).
cv2.setNumThreads(0)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PALETTE = 3


class FileError(MultisegError):
    """A bad data file (missing, truncated, corrupt, unknown label value ...): one line naming the file.

    Samples are mostly read in DataLoader worker processes, and torch re-raises a worker's exception
    in the main process as ``type(exc)(text)``, where ``text`` is the worker's whole traceback
    ("Caught FileError in DataLoader worker process 0. Original Traceback ..."). This class keeps only
    the original message (the traceback's last line), so the CLI still prints one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_original_message(message))


def _original_message(text: str) -> str:
    """The message inside torch's re-raised worker text, or ``text`` itself when it is not one."""
    prefix = f"{FileError.__module__}.{FileError.__qualname__}: "
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().rsplit("\n", 1)[-1]
        if last.startswith(prefix):
            return last[len(prefix) :]
    return text


def read_bytes(path: str | Path) -> bytes:
    """The raw bytes of ``path``; a missing or unreadable file is a FileError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FileError(f"{path}: file not found") from None
    except OSError as exc:
        raise FileError(f"{path}: cannot read ({exc.strerror or exc})") from None


#: One redirection of descriptor 2 at a time per process (threads decoding at once would swap it wrongly).
_STDERR_LOCK = threading.Lock()
_capture: tuple[int, int] | None = None  # (pid, descriptor of this process's capture file)
#: Line starts of what the image codecs print; the rest of what a capture holds goes back to stderr.
_CODEC_PREFIXES = ("libpng ", "Corrupt JPEG data", "Premature end of JPEG", "Invalid JPEG", "Not a JPEG")


def _capture_fd() -> int:
    """This process's capture file (an unlinked temporary file; a forked worker opens its own)."""
    global _capture
    if _capture is None or _capture[0] != os.getpid():
        fd, name = tempfile.mkstemp(prefix="multiseg-codec-", suffix=".txt")
        os.unlink(name)
        _capture = (os.getpid(), fd)
    return _capture[1]


def _imdecode(buffer: np.ndarray, flags: int) -> tuple[np.ndarray | None, str]:
    """``cv2.imdecode`` with the codecs' stderr text captured: (array or None, the codec's message).

    Costs about 40 us per image (five system calls and a flush; busy 2-core host), against the
    milliseconds of decoding a frame (about 30 ms for 2048x1024).
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            capture, saved = _capture_fd(), os.dup(2)
        except (OSError, ValueError):  # no usable descriptor 2 (a detached daemon): nothing to capture
            return cv2.imdecode(buffer, flags), ""
        try:
            os.dup2(capture, 2)
            try:
                arr = cv2.imdecode(buffer, flags)
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        if os.fstat(capture).st_size == 0:
            return arr, ""
        os.lseek(capture, 0, os.SEEK_SET)
        text = b""
        while chunk := os.read(capture, 65536):
            text += chunk
        os.ftruncate(capture, 0)
        os.lseek(capture, 0, os.SEEK_SET)
    lines = text.decode("utf-8", "replace").splitlines(keepends=True)
    codec = [line.strip() for line in lines if line.startswith(_CODEC_PREFIXES)]
    other = "".join(line for line in lines if not line.startswith(_CODEC_PREFIXES))
    if other:  # another thread's output (a progress bar ...), passed on unchanged
        os.write(2, other.encode())
    return arr, "; ".join(codec)


def _reason(codec: str) -> str:
    """`` (libpng error: ...)`` when the codec said why, for the end of a one-line error."""
    return f" ({codec})" if codec else ""


def _check_complete(path: str | Path, data: bytes) -> None:
    """Reject truncated JPEG/PNG files, which some decoders accept silently with grey rows."""
    if not data:
        raise FileError(f"{path}: empty file")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise FileError(f"{path}: truncated JPEG (no end-of-image marker)")
    if data[:8] == _PNG_SIGNATURE and b"IEND" not in data[-32:]:
        raise FileError(f"{path}: truncated PNG (no IEND chunk)")


#: OpenCV >= 4.11 decodes straight to RGB; older versions decode BGR and convert.
_IMREAD_RGB: int | None = getattr(cv2, "IMREAD_COLOR_RGB", None)


def decode_image(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode an RGB image (PNG, JPEG, PPM ...) from bytes into an HxWx3 uint8 RGB array.

    ``IMREAD_COLOR_RGB`` lets the codec write RGB directly: the same pixels as BGR + ``cvtColor``
    without a second full-frame buffer (about 2-4 ms less per 2048x1024 frame here, most of it page
    faults of the extra 6 MB).
    """
    _check_complete(path, data)
    fast = decode_rgb(data)
    if fast is not None:
        return fast
    buffer = np.frombuffer(data, np.uint8)
    if _IMREAD_RGB is not None:
        rgb, codec = _imdecode(buffer, _IMREAD_RGB)
    else:  # pragma: no cover - OpenCV < 4.11
        bgr, codec = _imdecode(buffer, cv2.IMREAD_COLOR)
        rgb = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb is None:
        raise FileError(f"{path}: corrupt or unsupported image file{_reason(codec)}")
    return rgb


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, binary PPM P6 ...) as HxWx3 uint8 RGB."""
    return decode_image(read_bytes(path), path)


def is_palette_png(data: bytes) -> bool:
    """True when ``data`` is a PNG whose IHDR colour type is 3 (palette)."""
    return data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[25] == _PNG_PALETTE


def decode_label(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode a single-channel label image: uint8 or uint16 HxW, palette PNGs as their indices.

    Palette PNGs go through Pillow (``np.asarray`` of a 'P' image is the index array); greyscale
    PNGs through imagecodecs where present; everything else through ``cv2.IMREAD_UNCHANGED``, which
    keeps 16-bit values (plain ``cv2.imread`` would squash them to 8 bits and add channels).
    """
    _check_complete(path, data)
    if is_palette_png(data):
        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im)
        except (OSError, ValueError, SyntaxError) as exc:
            raise FileError(f"{path}: corrupt label image ({exc})") from None
    fast = decode_grey_label(data)
    if fast is not None:
        return fast
    arr, codec = _imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FileError(f"{path}: corrupt or unsupported label image{_reason(codec)}")
    if arr.ndim != 2:
        raise FileError(
            f"{path}: label image has {arr.shape[2]} channels; expected a single-channel id/index image"
        )
    return arr


def read_label(path: str | Path) -> np.ndarray:
    """Read a single-channel label PNG (ids, train ids or palette indices) as an HxW integer array."""
    return decode_label(read_bytes(path), path)


def read_color_label(path: str | Path) -> np.ndarray:
    """Read a colour-coded label image (e.g. ``*_gtFine_color.png``, RGBA) as HxWx3 uint8 RGB."""
    data = read_bytes(path)
    _check_complete(path, data)
    arr, codec = _imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FileError(f"{path}: corrupt or unsupported colour label image{_reason(codec)}")
    if arr.ndim == 2:
        raise FileError(f"{path}: expected a colour (RGB/RGBA) label image, got a single channel")
    code = cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(arr, code)


def check_same_size(
    image: np.ndarray, label: np.ndarray, image_path: str | Path, label_path: str | Path
) -> None:
    """Raise when an image and its label differ in width or height."""
    if image.shape[:2] != label.shape[:2]:
        ih, iw = image.shape[:2]
        lh, lw = label.shape[:2]
        raise FileError(
            f"{label_path}: label is {lw}x{lh} but its image {Path(image_path).name} is {iw}x{ih}"
        )


#: Marks a value the dataset does not know in a label lookup table (no head has 254 classes).
UNKNOWN = 254


def make_lut(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """A uint8 lookup table of ``size`` entries: known values per ``mapping``, every other value UNKNOWN."""
    lut = np.full(size, UNKNOWN, np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def map_labels(label: np.ndarray, lut: np.ndarray, path: str | Path, what: str) -> np.ndarray:
    """Map raw label values through ``lut``; a value the table marks UNKNOWN is a FileError.

    One table look-up plus one comparison, so validating costs about as much as mapping (no histogram).
    """
    if label.dtype == np.uint8 and lut.size == 256:
        out = cv2.LUT(label, lut)
    else:
        if label.size and int(label.max()) >= lut.size:
            raise FileError(f"{path}: label value {int(label.max())} is not a known {what}")
        out = lut[label]
    bad = out == UNKNOWN
    if bad.any():
        raise FileError(f"{path}: label value {int(label[bad][0])} is not a known {what}")
    return out
