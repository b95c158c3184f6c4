"""Image and label readers with one-line errors.

OpenCV is the fast path (specs/environment.md §6: PNG decode is about 30 % faster than PIL and
dominates the per-sample cost). Two exceptions go through Pillow because OpenCV gets them wrong:
palette ('P') PNGs, whose *indices* are the labels (OpenCV expands them to colours), and nothing else.
Every reader raises :class:`~multiseg.errors.MultisegError` naming the file and the problem, never
returns ``None`` the way ``cv2.imread`` does.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from multiseg.errors import MultisegError

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked after the parent ran
# a parallel cv2 call deadlocks on its first cv2 call. Like mmcv and detectron2, run OpenCV
# single-threaded (0 = no pool); parallelism comes from DataLoader workers (specs/environment.md §9).
cv2.setNumThreads(0)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PALETTE = 3


def read_bytes(path: str | Path) -> bytes:
    """The raw bytes of ``path``; a missing or unreadable file is a MultisegError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise MultisegError(f"{path}: file not found") from None
    except OSError as exc:
        raise MultisegError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _check_complete(path: str | Path, data: bytes) -> None:
    """Reject truncated JPEG/PNG files, which some decoders accept silently with grey rows."""
    if not data:
        raise MultisegError(f"{path}: empty file")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise MultisegError(f"{path}: truncated JPEG (no end-of-image marker)")
    if data[:8] == _PNG_SIGNATURE and b"IEND" not in data[-32:]:
        raise MultisegError(f"{path}: truncated PNG (no IEND chunk)")


def decode_image(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode an RGB image (PNG, JPEG, PPM ...) from bytes into an HxWx3 uint8 RGB array."""
    _check_complete(path, data)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MultisegError(f"{path}: corrupt or unsupported image file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, binary PPM P6 ...) as HxWx3 uint8 RGB."""
    return decode_image(read_bytes(path), path)


def is_palette_png(data: bytes) -> bool:
    """True when ``data`` is a PNG whose IHDR colour type is 3 (palette)."""
    return data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[25] == _PNG_PALETTE


def decode_label(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode a single-channel label image: uint8 or uint16 HxW, palette PNGs as their indices.

    Palette PNGs go through Pillow (``np.asarray`` of a 'P' image is the index array); everything
    else through ``cv2.IMREAD_UNCHANGED``, which keeps 16-bit values (plain ``cv2.imread`` would
    squash them to 8 bits and add channels).
    """
    _check_complete(path, data)
    if is_palette_png(data):
        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im)
        except (OSError, ValueError, SyntaxError) as exc:
            raise MultisegError(f"{path}: corrupt label image ({exc})") from None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MultisegError(f"{path}: corrupt or unsupported label image")
    if arr.ndim != 2:
        raise MultisegError(
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
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MultisegError(f"{path}: corrupt or unsupported colour label image")
    if arr.ndim == 2:
        raise MultisegError(f"{path}: expected a colour (RGB/RGBA) label image, got a single channel")
    code = cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(arr, code)


def check_same_size(
    image: np.ndarray, label: np.ndarray, image_path: str | Path, label_path: str | Path
) -> None:
    """Raise when an image and its label differ in width or height."""
    if image.shape[:2] != label.shape[:2]:
        ih, iw = image.shape[:2]
        lh, lw = label.shape[:2]
        raise MultisegError(
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
    """Map raw label values through ``lut``; a value the table marks UNKNOWN is a MultisegError.

    One table look-up plus one comparison, so validating costs about as much as mapping (no histogram).
    """
    if label.dtype == np.uint8 and lut.size == 256:
        out = cv2.LUT(label, lut)
    else:
        if label.size and int(label.max()) >= lut.size:
            raise MultisegError(f"{path}: label value {int(label.max())} is not a known {what}")
        out = lut[label]
    bad = out == UNKNOWN
    if bad.any():
        raise MultisegError(f"{path}: label value {int(label[bad][0])} is not a known {what}")
    return out
