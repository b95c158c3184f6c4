"""Fast PNG and JPEG decoding through ``imagecodecs``, for the files where it gives OpenCV's pixels.

Decoding dominates a training sample's CPU cost (specs/environment.md §6). On a real 2048x1024
Cityscapes PNG, one thread, best of 7, on the project's machines: PIL 64.8 ms, OpenCV 48.4 ms,
``imagecodecs.png_decode`` 34.9 ms; on a real 3984x2988 Vistas JPEG, OpenCV about 52 ms and
``imagecodecs.jpeg8_decode`` (libjpeg-turbo) about 34 ms. ``benchmarks/bench_data.py`` measures it.

Each function here returns the decoded array, or ``None`` where the file is one whose result could
differ from OpenCV's (16-bit colour, palette or grey+alpha PNGs, a ``tRNS`` chunk, CMYK JPEGs, a JPEG
whose EXIF orientation OpenCV would apply ...), is corrupt, or ``imagecodecs`` is not installed; the
caller then decodes with OpenCV as before. So the arrays are OpenCV's in every case
(``tests/test_data_decoders.py`` checks that on the real fixtures and on demo frames), and a corrupt
file still gets OpenCV's one-line error.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

try:
    import imagecodecs
except ImportError:  # pragma: no cover - exercised by flipping HAVE_IMAGECODECS in the tests
    imagecodecs = None

#: Whether the fast path is used; False falls back to OpenCV everywhere (tests flip it).
HAVE_IMAGECODECS: bool = imagecodecs is not None

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _RGB, _RGBA = 0, 2, 6
#: PNG colour types whose 8-bit pixels imagecodecs decodes exactly as OpenCV's IMREAD_COLOR_RGB.
_IMAGE_COLOUR_TYPES = (_GREY, _RGB, _RGBA)
_EXIF_ORIENTATION_TAG = 0x0112


def png_header(data: bytes) -> tuple[int, int, bool] | None:
    """(bit depth, colour type, has a tRNS chunk) of a PNG, or None when ``data`` is not a PNG."""
    if data[:8] != _PNG_SIGNATURE or len(data) < 33:
        return None
    idat = data.find(b"IDAT", 33)
    has_trns = b"tRNS" in data[33 : idat if idat > 0 else len(data)]
    return data[24], data[25], has_trns


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) in a JPEG's APP1 segment; 1 where there is none or it is unreadable.

    Walks the marker segments up to the first scan; OpenCV rotates by this tag, imagecodecs does not.
    """
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more header segments
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
            return _tiff_orientation(segment[6:])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    """The orientation tag of IFD0 of an EXIF TIFF block; 1 where absent or malformed."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, _, _, value = struct.unpack(order + "HHIH", entry[:10])
        if tag == _EXIF_ORIENTATION_TAG:
            return value if 1 <= value <= 8 else 1
    return 1


def decode_rgb(data: bytes) -> np.ndarray | None:
    """An 8-bit grey/RGB/RGBA PNG or a YCbCr/grey JPEG as HxWx3 uint8 RGB; None -> decode with OpenCV."""
    if not HAVE_IMAGECODECS:
        return None
    header = png_header(data)
    try:
        if header is not None:
            depth, colour, has_trns = header
            if depth != 8 or colour not in _IMAGE_COLOUR_TYPES or has_trns:
                return None
            return _as_rgb(imagecodecs.png_decode(data), has_alpha=colour == _RGBA)
        if data[:3] == b"\xff\xd8\xff":
            if jpeg_orientation(data) != 1:
                return None
            return _as_rgb(imagecodecs.jpeg8_decode(data), has_alpha=False)  # 4 channels = CMYK: None
    except (RuntimeError, ValueError):  # imagecodecs' codec errors: let OpenCV report the file
        return None
    return None


def _as_rgb(arr: np.ndarray, has_alpha: bool) -> np.ndarray | None:
    """HxWx3 uint8 from a decoder's grey, RGB or (``has_alpha``) RGBA array, alpha dropped as OpenCV
    does; None for anything else."""
    if arr.dtype != np.uint8:
        return None
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    channels = arr.shape[2] if arr.ndim == 3 else 0
    if channels == 3 and not has_alpha:
        return arr
    if channels == 4 and has_alpha:
        return np.ascontiguousarray(arr[..., :3])
    return None


def decode_grey_label(data: bytes) -> np.ndarray | None:
    """An 8- or 16-bit greyscale PNG (ids, train ids, instance ids) as HxW; None -> decode with OpenCV."""
    if not HAVE_IMAGECODECS:
        return None
    header = png_header(data)
    if header is None:
        return None
    depth, colour, has_trns = header
    if colour != _GREY or depth not in (8, 16) or has_trns:
        return None
    try:
        arr = imagecodecs.png_decode(data)
    except (RuntimeError, ValueError):
        return None
    return arr if arr.ndim == 2 else None
