"""A classification set cut from the demo world, so encoder pretraining runs without ImageNet.

Frames are rendered exactly like the demo Cityscapes, GTSDB and Vistas (same scene model and cameras),
from a world seed of their own, so the crops never show a frame of the segmentation world. Every object
is cut out with its true mask and label: people, riders, cars, trucks, buses, two-wheelers and traffic
lights by their world class, traffic signs by their GTSDB category. Each crop is a square around the
object's box with some context, resized to ``size`` x ``size`` and written as PNG in the
ImageNet-style layout ``ROOT/{train,val}/<class>/<frame>_<object>.png`` that ``multiseg pretrain`` reads.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from multiseg.demo.builder import WC
from multiseg.demo.render import Frame
from multiseg.demo.world import cityscapes_frame, frame_counts, gtsdb_frame, vistas_frame
from multiseg.errors import MultisegError
from multiseg.labels import GTSDB_CATEGORIES, gtsdb_class_categories

MARKER = "multiseg_crops.json"
#: World classes kept as objects, and the class folder each one goes to.
THING_CLASSES = {
    WC.PERSON: "person",
    WC.BICYCLIST: "rider",
    WC.MOTORCYCLIST: "rider",
    WC.CAR: "car",
    WC.TRUCK: "truck",
    WC.BUS: "bus",
    WC.BICYCLE: "two_wheeler",
    WC.MOTORCYCLE: "two_wheeler",
    WC.TRAFFIC_LIGHT: "traffic_light",
}
SIGN_CLASSES = {i: f"sign_{c}" for i, c in enumerate(GTSDB_CATEGORIES)}
MIN_SIDE = 10  # pixels: smaller objects are too blurred to name
CONTEXT = 0.15  # margin around the box, as a fraction of its longer side
_WORLD_SEED_OFFSET = 7919  # crops come from another world than the segmentation data of the same seed


@dataclass(frozen=True)
class CropSetSummary:
    """What :func:`write_classification_set` wrote: images per split and class."""

    root: Path
    counts: dict[str, dict[str, int]]

    def __str__(self) -> str:
        lines = [f"demo classification set -> {self.root}"]
        for split, per_class in self.counts.items():
            total = sum(per_class.values())
            lines.append(f"  {split}: {total} crops in {len(per_class)} classes")
        return "\n".join(lines)


def _frames(seed: int, n_frames: int) -> Iterator[Frame]:
    """Frames of the three demo cameras in turn (seeded like the demo world, from another world seed)."""
    world = seed + _WORLD_SEED_OFFSET
    for i in range(n_frames):
        kind = i % 3
        if kind == 0:
            yield cityscapes_frame(world, i)
        elif kind == 1:
            yield gtsdb_frame(world, i, n_train=0)
        else:
            yield vistas_frame(world, i)[1]


def object_boxes(frame: Frame) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(class folder, (x0, y0, x1, y1)) of every visible object and sign large enough to name."""
    found = []
    categories = gtsdb_class_categories()
    for k, cls in enumerate(frame.sign_classes, start=1):
        found.append((SIGN_CLASSES[int(categories[cls])], frame.signs == k))
    for key in np.unique(frame.objects):
        if key == 0:
            continue
        mask = frame.objects == key
        world = np.bincount(frame.world[mask].ravel(), minlength=len(WC)).argmax()
        if WC(int(world)) in THING_CLASSES:
            found.append((THING_CLASSES[WC(int(world))], mask & (frame.signs == 0)))
    boxes = []
    for name, mask in found:
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        if min(x1 - x0, y1 - y0) >= MIN_SIDE:
            boxes.append((name, (x0, y0, x1, y1)))
    return boxes


def square_crop(rgb: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """A square of the box's longer side plus context, centred on the box, zero-padded at the border."""
    x0, y0, x1, y1 = box
    side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * CONTEXT)))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left, top = cx - side // 2, cy - side // 2
    h, w = rgb.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    out[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = rgb[sy0:sy1, sx0:sx1]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


def write_classification_set(
    root: Path, seed: int = 0, n_frames: int | None = None, size: int = 64, val_every: int = 5
) -> CropSetSummary:
    """Write object and sign crops of ``n_frames`` demo frames (default: as many as the small world).

    Every ``val_every``-th frame goes to ``val``. Written into a temporary folder that replaces ``root``
    when complete; a ``root`` already holding a crop set of the same settings is kept as it is.
    """
    n = n_frames if n_frames is not None else frame_counts("small", None).total
    if n < 1 or size < 8:
        raise MultisegError(f"classification set: need n_frames >= 1 and size >= 8, got {n}, {size}")
    root = Path(root).expanduser().absolute()
    settings = {"seed": seed, "n_frames": n, "size": size, "val_every": val_every}
    marker = root / MARKER
    if marker.is_file():
        saved = json.loads(marker.read_text(encoding="utf-8"))
        if saved.get("settings") == settings:
            return CropSetSummary(root, saved["counts"])
    if root.exists() and any(root.iterdir()) and not marker.is_file():
        raise MultisegError(f"{root} is not empty and holds no demo classification set ({MARKER})")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    try:
        for i, frame in enumerate(_frames(seed, n)):
            split = "val" if i % val_every == val_every - 1 else "train"
            for j, (name, box) in enumerate(object_boxes(frame)):
                folder = tmp / split / name
                folder.mkdir(parents=True, exist_ok=True)
                crop = square_crop(frame.rgb, box, size)
                cv2.imwrite(str(folder / f"{i:05d}_{j:02d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                counts[split][name] = counts[split].get(name, 0) + 1
        (tmp / MARKER).write_text(json.dumps({"settings": settings, "counts": counts}) + "\n")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CropSetSummary(root, counts)
