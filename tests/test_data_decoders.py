"""The imagecodecs fast path gives OpenCV's arrays (Pillow's indices for palette PNGs), or falls back.

References are decoded here straight with OpenCV (``IMREAD_COLOR_RGB`` for images,
``IMREAD_UNCHANGED`` for labels) and Pillow (palette indices): what ``multiseg.data.io`` returned
before the fast path existed. Each case also says whether the fast path must have taken the file, so
an equality cannot pass by falling back everywhere.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from multiseg.data import decoders
from multiseg.data.io import FileError, decode_image, decode_label

pytest.importorskip("imagecodecs")


def cv2_rgb(data: bytes) -> np.ndarray:
    """OpenCV's decode of an image file as RGB (the reference)."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)


def reference_label(data: bytes) -> np.ndarray:
    """Pillow's indices for a palette PNG, else OpenCV's IMREAD_UNCHANGED (the reference)."""
    if data[25] == 3:
        return np.asarray(Image.open(io.BytesIO(data)))
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def assert_image_equal(data: bytes, fast: bool) -> None:
    """decode_image equals OpenCV's decode; ``fast``: imagecodecs must (not) have taken the file."""
    assert (decoders.decode_rgb(data) is not None) == fast
    out, ref = decode_image(data), cv2_rgb(data)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)


def assert_label_equal(data: bytes, fast: bool) -> None:
    """decode_label equals the reference; ``fast``: imagecodecs must (not) have taken the file."""
    assert (decoders.decode_grey_label(data) is not None) == fast
    out, ref = decode_label(data), reference_label(data)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)


# (path under ../shared/fixtures, how it is read, whether imagecodecs takes it)
FIXTURE_CASES = [
    ("cityscapes/iv2018_sample_results_1/image_1.png", "image", True),  # 2048x1024 RGB leftImg8bit
    ("cityscapes/iv2018_sample_results_1/ground_truth_1.png", "image", True),  # RGBA colour GT
    ("cityscapes/hrnet_ocr_prediction_NOT_ground_truth/frankfurt_000000_001016_gtFine_labelIds.png",
     "label", False),  # palette: Pillow
    ("cityscapes/mmseg_pseudo_cityscapes_256x128/leftImg8bit/val/frankfurt/"
     "frankfurt_000000_000294_leftImg8bit.png", "image", True),
    ("cityscapes/mmseg_pseudo_cityscapes_256x128/gtFine/val/frankfurt/"
     "frankfurt_000000_000294_gtFine_labelIds.png", "label", True),  # 8-bit grey
    ("cityscapes/mmseg_pseudo_cityscapes_256x128/gtFine/val/frankfurt/"
     "frankfurt_000000_000294_gtFine_labelTrainIds.png", "label", True),
    ("cityscapes/mmseg_pseudo_cityscapes_256x128/gtFine/val/frankfurt/"
     "frankfurt_000000_000294_gtFine_instanceIds.png", "label", True),  # 16-bit grey
    ("vistas/iv2018_sample_results_2/image_1.jpg", "image", True),  # 3984x2988 JPEG
    ("vistas/iv2018_sample_results_2/ground_truth_1.png", "label", False),  # palette 3984x2988
    ("vistas/mmseg_pseudo_mapillary_100x100/images/__CRyFzoDOXn6unQ6a3DnQ.jpg", "image", True),
    ("vistas/mmseg_pseudo_mapillary_100x100/v1.2/__CRyFzoDOXn6unQ6a3DnQ.png", "label", False),
    ("gtsdb/johpetsc_jpeg_converted/00000.jpg", "image", True),  # 1360x800 JPEG
    ("gtsdb/iv2018_sample_results_3/image_3.png", "image", True),
    ("gtsdb/iv2018_sample_results_3/ground_truth_3.png", "image", True),
    ("gtsdb/ppm_samples/00000.ppm", "image", False),  # PPM: OpenCV
    ("gtsdb/ppm_samples/00013.ppm", "image", False),
]  # fmt: skip


FIXTURE_IDS = [Path(name).name for name, _, _ in FIXTURE_CASES]


@pytest.mark.fixtures
@pytest.mark.parametrize(("name", "kind", "fast"), FIXTURE_CASES, ids=FIXTURE_IDS)
def test_real_fixture_decodes_as_opencv(fixtures_dir: Path, name: str, kind: str, fast: bool) -> None:
    data = (fixtures_dir / name).read_bytes()
    if kind == "image":
        assert_image_equal(data, fast)
    else:
        assert_label_equal(data, fast)


@pytest.mark.fixtures
def test_real_gtsdb_16bit_per_pixel_labels_decode_as_opencv(fixtures_dir: Path) -> None:
    with zipfile.ZipFile(fixtures_dir / "gtsdb/iv2018_per_pixel/gtCoarse.zip") as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))[:3]
        for name in names:
            data = z.read(name)
            assert_label_equal(data, fast=True)
            assert decode_label(data).dtype == np.uint16


def test_demo_frames_decode_as_opencv(tmp_path: Path) -> None:
    from multiseg.demo.world import write_demo_world

    root = tmp_path / "world"
    write_demo_world(root, seed=0, n_frames=3)
    images = [*root.glob("cityscapes/leftImg8bit/*/*/*.png"), *root.glob("vistas/*/images/*.jpg")]
    grey = [*root.glob("cityscapes/gtFine/*/*/*_[li]*Ids.png")]  # labelIds, instanceIds
    palette = list(root.glob("vistas/*/v1.2/labels/*.png"))
    assert images and grey and palette
    for path in images:
        assert_image_equal(path.read_bytes(), fast=True)
    for path in root.glob("gtsdb/**/*.ppm"):
        assert_image_equal(path.read_bytes(), fast=False)
    for path in grey:
        assert_label_equal(path.read_bytes(), fast=True)
    for path in palette:
        assert_label_equal(path.read_bytes(), fast=False)


def grey16(h: int, w: int) -> Image.Image:
    """A 16-bit greyscale Pillow image."""
    return Image.fromarray(photo(h, w, 1).astype(np.uint16) * 257)


def encoded(array: np.ndarray, ext: str, **pil: object) -> bytes:
    """``array`` (RGB/RGBA/grey, or a PIL image) encoded by Pillow."""
    im = array if isinstance(array, Image.Image) else Image.fromarray(array)
    buf = io.BytesIO()
    im.save(buf, format={"png": "PNG", "jpg": "JPEG"}[ext], **pil)
    return buf.getvalue()


def photo(h: int, w: int, channels: int = 3) -> np.ndarray:
    """Smooth random content, so JPEG chroma subsampling and rounding have something to do."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, channels), dtype=np.uint8)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return big.reshape(h, w, channels) if channels > 1 else big.reshape(h, w)


def exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def with_trns(png: bytes) -> bytes:
    """A grey PNG with a tRNS chunk (grey value 0 transparent) inserted before IDAT."""
    import zlib

    chunk = b"tRNS" + b"\x00\x00"
    body = len(b"\x00\x00").to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    at = png.find(b"IDAT") - 4
    return png[:at] + body + png[at:]


# (name, encoded file, whether imagecodecs takes it as an image)
SYNTHETIC_IMAGES = [
    ("rgb png", lambda: encoded(photo(37, 53), "png"), True),
    ("rgba png", lambda: encoded(photo(37, 53, 4), "png"), True),
    ("grey png", lambda: encoded(photo(37, 53, 1), "png"), True),
    ("grey+alpha png", lambda: encoded(Image.fromarray(photo(37, 53, 2), "LA"), "png"), False),
    ("16-bit grey png", lambda: encoded(grey16(37, 53), "png"), False),
    ("1-bit png", lambda: encoded(Image.fromarray(photo(37, 53, 1) > 128), "png"), False),
    ("palette png", lambda: encoded(Image.fromarray(photo(37, 53)).convert("P"), "png"), False),
    ("grey png with tRNS", lambda: with_trns(encoded(photo(37, 53, 1), "png")), False),
    ("16-bit rgb png", lambda: cv2.imencode(".png", photo(37, 53).astype(np.uint16) * 257)[1].tobytes(), False),  # noqa: E501
    ("jpeg 4:2:0", lambda: encoded(photo(37, 53), "jpg", quality=90, subsampling=2), True),
    ("jpeg 4:4:4", lambda: encoded(photo(37, 53), "jpg", quality=95, subsampling=0), True),
    ("progressive jpeg", lambda: encoded(photo(64, 96), "jpg", progressive=True), True),
    ("grey jpeg", lambda: encoded(photo(37, 53, 1), "jpg"), True),
    ("cmyk jpeg", lambda: encoded(Image.fromarray(photo(37, 53, 4), "CMYK"), "jpg"), False),
    ("jpeg exif orientation 1", lambda: encoded(photo(37, 53), "jpg", exif=exif_orientation(1)), True),
    ("jpeg exif orientation 6", lambda: encoded(photo(37, 53), "jpg", exif=exif_orientation(6)), False),
    ("opencv jpeg", lambda: cv2.imencode(".jpg", photo(37, 53))[1].tobytes(), True),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "fast"), SYNTHETIC_IMAGES, ids=[c[0] for c in SYNTHETIC_IMAGES])
def test_image_kinds_decode_as_opencv(name: str, make, fast: bool) -> None:
    assert_image_equal(make(), fast)


def big_endian_exif_jpeg(orientation: int) -> bytes:
    """A JPEG with an APP1 EXIF block in Motorola byte order (Pillow writes Intel order)."""
    import struct

    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    segment = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment
    plain = encoded(photo(16, 24), "jpg")
    return plain[:2] + app1 + plain[2:]


def test_exif_orientation_is_read_in_both_byte_orders() -> None:
    assert decoders.jpeg_orientation(encoded(photo(16, 24), "jpg", exif=exif_orientation(8))) == 8
    assert decoders.jpeg_orientation(big_endian_exif_jpeg(3)) == 3
    assert decoders.jpeg_orientation(encoded(photo(16, 24), "jpg")) == 1
    assert_image_equal(big_endian_exif_jpeg(3), fast=False)
    assert_image_equal(big_endian_exif_jpeg(1), fast=True)
    assert cv2_rgb(big_endian_exif_jpeg(6)).shape[:2] == (24, 16)  # why: OpenCV turns the frame
    padded = big_endian_exif_jpeg(6).replace(b"\xff\xe1", b"\xff\xff\xe1", 1)  # a fill byte
    assert decoders.jpeg_orientation(padded) == 6


def test_label_kinds_decode_as_before() -> None:
    grey = photo(37, 53, 1)
    assert_label_equal(encoded(grey, "png"), fast=True)
    assert_label_equal(encoded(grey16(37, 53), "png"), fast=True)
    assert_label_equal(encoded(Image.fromarray(grey).convert("P"), "png"), fast=False)
    with pytest.raises(FileError, match="3 channels"):
        decode_label(encoded(photo(37, 53), "png"), "rgb.png")


def test_corrupt_png_is_still_opencvs_one_line_error() -> None:
    data = bytearray(encoded(photo(37, 53), "png"))
    start = data.find(b"IDAT") + 8
    data[start : start + 40] = bytes(40)  # zeroed compressed pixels, chunk sizes intact
    assert decoders.decode_rgb(bytes(data)) is None
    with pytest.raises(FileError, match="bad.png: corrupt or unsupported image file"):
        decode_image(bytes(data), "bad.png")


def test_without_the_flag_everything_goes_through_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(photo(37, 53), "png")
    label = encoded(photo(37, 53, 1), "png")
    monkeypatch.setattr(decoders, "HAVE_IMAGECODECS", False)
    assert decoders.decode_rgb(data) is None and decoders.decode_grey_label(label) is None
    np.testing.assert_array_equal(decode_image(data), cv2_rgb(data))
    np.testing.assert_array_equal(decode_label(label), reference_label(label))


def test_a_missing_imagecodecs_falls_back_to_opencv(tmp_path: Path) -> None:
    """In a fresh interpreter where ``import imagecodecs`` fails, files still decode (through OpenCV)."""
    png, jpg = tmp_path / "a.png", tmp_path / "a.jpg"
    png.write_bytes(encoded(photo(37, 53), "png"))
    jpg.write_bytes(encoded(photo(37, 53), "jpg"))
    code = (
        "import sys; sys.modules['imagecodecs'] = None\n"  # makes `import imagecodecs` raise ImportError
        "from multiseg.data import decoders\n"
        "from multiseg.data.io import read_image\n"
        "assert not decoders.HAVE_IMAGECODECS\n"
        f"print(read_image({str(png)!r}).shape, read_image({str(jpg)!r}).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(37, 53, 3) (37, 53, 3)"
