"""Tiny datasets written in the real on-disk formats, for tests and the data benchmark.

These are not the demo world (:mod:`multiseg.demo.world` renders a coherent street scene); they are
random pixels with known labels and boxes, small enough to write in milliseconds, so tests can
build exactly the layout (or the broken layout) they need.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from multiseg.labels import vistas_v12_config


def noise_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random RGB uint8 image."""
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def street_like_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like RGB frame (smooth field + gradient + flat rectangles + noise) that compresses like one.

    Same recipe as the decode measurements of specs/environment.md §6, so PNG sizes and decode times
    resemble Cityscapes frames.
    """
    field = rng.random((height // 64 + 2, width // 64 + 2, 3)).astype(np.float32)
    img = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC) * 160
    img += np.linspace(0, 80, height, dtype=np.float32)[:, None, None]
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, width // 6)), int(rng.integers(10, height // 6))
        img[y : y + h, x : x + w] = rng.integers(0, 256, 3)
    img += rng.normal(0, 2.5, img.shape).astype(np.float32)
    return img.clip(0, 255).astype(np.uint8)


def blocky_label(height: int, width: int, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uint8 label of rectangles of random ``values`` (compresses like a real label map)."""
    label = np.full((height, width), values[0], np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(4, max(5, width // 4))), int(rng.integers(4, max(5, height // 4)))
        label[y : y + h, x : x + w] = rng.choice(values)
    return label


def write_rgb(path: Path, image: np.ndarray) -> None:
    """Write an RGB image (format from the suffix: .png, .jpg, .ppm)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def write_gray(path: Path, label: np.ndarray) -> None:
    """Write a single-channel PNG (uint8 mode L, or uint16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), label):
        raise OSError(f"could not write {path}")


def write_palette_png(path: Path, indices: np.ndarray, colors: list[tuple[int, int, int]]) -> None:
    """Write a mode-'P' PNG whose pixel values are ``indices`` and palette ``colors``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(indices.astype(np.uint8), mode="P")
    flat = [c for rgb in colors for c in rgb]
    im.putpalette(flat + [0] * (768 - len(flat)))
    im.save(path)


def write_cityscapes(
    root: Path,
    split: str = "train",
    frames: dict[str, int] | None = None,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
    photo_like: bool = False,
) -> list[Path]:
    """Cityscapes layout with random label ids 0..33; ``frames`` = city -> count. Returns the images."""
    rng = np.random.default_rng(seed)
    width, height = size
    images = []
    for city, count in (frames or {"aachen": 2, "bremen": 1}).items():
        for k in range(count):
            stem = f"{city}_{k:06d}_{19 * k:06d}"
            img_path = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            image = street_like_image(height, width, rng) if photo_like else noise_image(height, width, rng)
            write_rgb(img_path, image)
            label = blocky_label(height, width, np.arange(34), rng)
            write_gray(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
            images.append(img_path)
    return images


#: Boxes of the default synthetic GTSDB frames: frame -> [(x1, y1, x2, y2 inclusive, class)].
DEFAULT_GTSDB_BOXES: dict[int, list[tuple[int, int, int, int, int]]] = {
    0: [(10, 12, 29, 31, 14)],
    1: [(50, 20, 69, 45, 33), (90, 10, 109, 29, 13)],
    2: [(5, 5, 24, 24, 1)],
    3: [(30, 30, 59, 59, 20)],
    5: [(100, 40, 129, 69, 12)],
}


def write_gtsdb(
    root: Path,
    n_frames: int = 6,
    size: tuple[int, int] = (136, 80),
    boxes: dict[int, list[tuple[int, int, int, int, int]]] | None = None,
    ext: str = ".ppm",
    seed: int = 0,
) -> Path:
    """FullIJCNN2013 layout: ``n_frames`` frames and a gt.txt of ``boxes``. Returns the folder."""
    rng = np.random.default_rng(seed)
    folder = root / "FullIJCNN2013"
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for f in range(n_frames):
        write_rgb(folder / f"{f:05d}{ext}", noise_image(height, width, rng))
    lines = [
        f"{f:05d}.ppm;{x1};{y1};{x2};{y2};{c}\n"
        for f, rows in sorted((boxes if boxes is not None else DEFAULT_GTSDB_BOXES).items())
        for x1, y1, x2, y2, c in rows
    ]
    (folder / "gt.txt").write_text("".join(lines))
    return folder


def write_vistas(
    root: Path,
    split: str = "training",
    n: int = 3,
    size: tuple[int, int] = (60, 40),
    config: dict | None = None,
    seed: int = 0,
    labels_subdir: str = "labels",
    config_name: str = "config.json",
) -> list[str]:
    """Vistas layout (default: v1.2 config) with palette label PNGs of random indices. Returns the keys."""
    rng = np.random.default_rng(seed)
    config = config or vistas_v12_config()
    (root / config_name).parent.mkdir(parents=True, exist_ok=True)
    (root / config_name).write_text(json.dumps(config))
    colors = [tuple(lab["color"]) for lab in config["labels"]]
    width, height = size
    keys = []
    for k in range(n):
        key = f"{k:02d}" + "x" * 20
        write_rgb(root / split / "images" / f"{key}.jpg", noise_image(height, width, rng))
        label = blocky_label(height, width, np.arange(len(colors)), rng)
        write_palette_png(root / split / labels_subdir / f"{key}.png", label, colors)
        keys.append(key)
    return keys


def write_folder_dataset(
    root: Path,
    classes: list[str],
    split: str = "train",
    n: int = 2,
    size: tuple[int, int] = (40, 30),
    seed: int = 0,
) -> None:
    """The generic folder layout: classes.yaml, images/<split>/*.png, labels/<split>/*.png."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text("name: mine\nclasses: [" + ", ".join(classes) + "]\n")
    width, height = size
    for k in range(n):
        write_rgb(root / "images" / split / f"img{k}.png", noise_image(height, width, rng))
        write_gray(
            root / "labels" / split / f"img{k}.png", blocky_label(height, width, np.arange(len(classes)), rng)
        )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def corrupt_png(path: Path) -> None:
    """Rewrite a PNG so that it is complete (IEND, valid CRCs) but cannot be decoded, as bit rot leaves it.

    The first row's filter byte becomes 9 (only 0-4 exist): libpng stops with "bad adaptive filter
    value", which no completeness check can see before decoding.
    """
    data = Path(path).read_bytes()
    pos, head, idat = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            idat += body
        elif kind != b"IEND":
            head += data[pos : pos + 12 + length]
        pos += 12 + length
    rows = bytearray(zlib.decompress(idat))
    rows[0] = 9
    Path(path).write_bytes(
        data[:8] + head + _png_chunk(b"IDAT", zlib.compress(bytes(rows))) + _png_chunk(b"IEND", b"")
    )
