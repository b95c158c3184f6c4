"""The demo world: one procedural street-scene model written as Cityscapes, GTSDB and Vistas look-alikes.

The real datasets cannot be downloaded everywhere, so ``multiseg demo-data`` renders the same kind of
street (:mod:`.scene`) through three cameras (:mod:`.render`) that differ in frame size and aspect,
colour cast, brightness and noise, and writes each in its dataset's real on-disk format
(:mod:`.writers`). Every frame has its own random generator seeded by (seed, dataset, frame index),
so a seed gives byte-identical files and another seed gives a held-out world of the same kind.

Sizes: ``small`` and ``medium`` render at about a quarter of the real frame sizes (512x256 Cityscapes,
680x400 GTSDB, Vistas up to 640x480); ``full`` renders the same scenes at the real datasets' sizes
(:data:`FULL`): Cityscapes 2048x1024, GTSDB 1360x800 with signs of the real 16-128 px, and Vistas
photos from 800x600 to 4000x3000 in 4:3, 16:9 and portrait, so that training, full-resolution
evaluation and ``predict`` can be run at the sizes users have.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from multiseg.demo.builder import SceneStyle
from multiseg.demo.render import Camera, Frame, render
from multiseg.demo.scene import make_scene, random_sign_classes
from multiseg.demo.writers import (
    write_cityscapes_frame,
    write_gtsdb_frame,
    write_gtsdb_meta,
    write_vistas_config,
    write_vistas_frame,
)
from multiseg.errors import MultisegError
from multiseg.files import replace_dir
from multiseg.labels import GTSDB_NUM_CLASSES

__all__ = ["MARKER", "DatasetSummary", "DemoWorldSummary", "is_demo_world", "write_demo_world"]

MARKER = "multiseg_demo.json"
GENERATOR = "multiseg-demo-world"
FORMAT = 1
SIZES = ("small", "medium", "full")

_CITYSCAPES, _GTSDB, _VISTAS = 1, 2, 3
CITYSCAPES_SIZE = (512, 256)
GTSDB_SIZE = (680, 400)
VISTAS_SIZES = ((640, 480), (640, 360), (600, 400))
CITIES = {"train": ("aachen", "bremen", "hamburg", "zurich"), "val": ("frankfurt", "lindau", "munster")}
_KEY_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
_EMPTY_GTSDB_FRAME = 0.08

CITYSCAPES_SCENE = SceneStyle(focal=(0.95, 1.05), horizon=(0.38, 0.46), ego_hood=True, n_signs=(1, 3))
CITYSCAPES_CAMERA = Camera(
    gain=(0.9, 1.0, 0.92), brightness=(0.7, 0.9), contrast=(0.85, 1.0), gamma=(1.0, 1.15), noise=3.0, blur=0.6
)
GTSDB_SCENE = SceneStyle(
    focal=(1.1, 1.3),
    horizon=(0.42, 0.5),
    urban=0.45,
    n_signs=(1, 5),
    sign_size=(14 / 400, 70 / 400),
    occlude_signs=0.3,
    people=0.5,
)
GTSDB_CAMERA = Camera(
    gain=(0.95, 0.98, 1.08),
    gain_jitter=0.05,
    brightness=(0.75, 1.1),
    contrast=(0.75, 0.95),
    gamma=(0.9, 1.1),
    noise=5.0,
    blur=0.7,
    vignette=0.25,
)
VISTAS_SCENE = SceneStyle(
    focal=(0.8, 1.15), horizon=(0.35, 0.55), urban=0.7, n_signs=(1, 3), sign_size=(0.04, 0.13)
)
#: GTSDB at 1360x800: signs 17 to 128 px high, as the real boxes (the ReadMe says 16 to 128).
GTSDB_FULL_SCENE = replace(GTSDB_SCENE, sign_size=(17 / 800, 128 / 800))
VISTAS_CAMERA = Camera(
    gain_jitter=0.1,
    brightness=(0.85, 1.25),
    contrast=(0.9, 1.15),
    gamma=(0.85, 1.1),
    noise=2.0,
    blur=0.4,
    vignette=0.05,
)


@dataclass(frozen=True)
class Resolution:
    """The frame sizes of a world and what goes with them (sign sizes, texture grain).

    Vistas: ``vistas_cycle`` False picks each frame's size at random from ``vistas_sizes``; True
    takes them in turn within each split, so a few frames already cover every size and aspect.
    ``vistas_cell_ref``: None keeps the default texture grain, else a frame's grain is 10 px per
    ``vistas_cell_ref`` px of its shorter side.
    """

    cityscapes: tuple[int, int]
    gtsdb: tuple[int, int]
    vistas_sizes: tuple[tuple[int, int], ...]
    gtsdb_scene: SceneStyle = GTSDB_SCENE
    vistas_cycle: bool = False
    cityscapes_cell: int = 10
    gtsdb_cell: int = 10
    vistas_cell_ref: int | None = None

    def vistas_cell(self, size: tuple[int, int]) -> int:
        if self.vistas_cell_ref is None:
            return 10
        return max(10, round(10 * min(size) / self.vistas_cell_ref))


#: The scaled-down demo world (``small``, ``medium``).
DEMO = Resolution(CITYSCAPES_SIZE, GTSDB_SIZE, VISTAS_SIZES)
#: Vistas photo sizes of the full world, in the order each split takes them: 4:3 (a 12 MP phone,
#: as the 3984x2988 real frame in the fixtures), portrait 3:4, 16:9, small 4:3, 8 MP 4:3, 16:9 QHD.
FULL_VISTAS_SIZES = ((4000, 3000), (3024, 4032), (1920, 1080), (800, 600), (3264, 2448), (2560, 1440))
#: The real datasets' frame sizes (``full``); the texture grain grows with the resolution.
FULL = Resolution(
    cityscapes=(2048, 1024),
    gtsdb=(1360, 800),
    vistas_sizes=FULL_VISTAS_SIZES,
    gtsdb_scene=GTSDB_FULL_SCENE,
    vistas_cycle=True,
    cityscapes_cell=40,
    gtsdb_cell=20,
    vistas_cell_ref=400,
)


def resolution(size: str) -> Resolution:
    """The frame sizes of a world of ``size``."""
    return FULL if size == "full" else DEMO


@dataclass(frozen=True)
class DatasetSummary:
    """Where one demo dataset went and how many frames each split holds."""

    name: str
    path: Path
    splits: dict[str, int]

    def __str__(self) -> str:
        parts = ", ".join(f"{split} {n}" for split, n in self.splits.items())
        return f"{self.name:<11} {self.path}  ({parts})"


@dataclass(frozen=True)
class DemoWorldSummary:
    """What :func:`write_demo_world` wrote; ``str()`` is a readable multi-line report."""

    root: Path
    seed: int
    size: str
    datasets: tuple[DatasetSummary, ...]
    seconds: float

    @property
    def frames(self) -> int:
        return sum(n for d in self.datasets for n in d.splits.values())

    def __str__(self) -> str:
        head = (
            f"demo world (seed {self.seed}, size {self.size}): {self.frames} frames "
            f"in {self.seconds:.1f} s -> {self.root}"
        )
        return "\n".join([head, *(f"  {d}" for d in self.datasets)])


@dataclass(frozen=True)
class FrameCounts:
    """How many frames each split of a demo world has."""

    cs_train: int
    cs_val: int
    gtsdb: int
    vistas_train: int
    vistas_val: int

    @property
    def gtsdb_train(self) -> int:
        return self.gtsdb * 2 // 3

    @property
    def total(self) -> int:
        return self.cs_train + self.cs_val + self.gtsdb + self.vistas_train + self.vistas_val


def frame_counts(size: str, n_frames: int | None) -> FrameCounts:
    """The frame counts of a world of ``size``, or of ``n_frames`` per dataset (a fifth held out)."""
    if size not in SIZES:
        raise MultisegError(f"unknown demo world size {size!r}; choose one of {', '.join(SIZES)}")
    if n_frames is not None:
        if n_frames < 3:
            raise MultisegError(f"frames per dataset (--frames, n_frames) must be at least 3, got {n_frames}")
        val = max(1, n_frames // 5)
        return FrameCounts(n_frames - val, val, n_frames, n_frames - val, val)
    if size == "full":  # a smoke-test world: every frame size, a few frames each (about a minute)
        return FrameCounts(4, 2, 12, 4, 3)
    k = 1 if size == "small" else 3
    return FrameCounts(80 * k, 20 * k, 90 * k, 80 * k, 20 * k)


def _rng(seed: int, dataset: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, dataset, index])


def cityscapes_frame(seed: int, index: int, res: Resolution = DEMO) -> Frame:
    """Frame ``index`` of the demo Cityscapes (train frames first, then val)."""
    rng = _rng(seed, _CITYSCAPES, index)
    w, h = res.cityscapes
    scene = make_scene(rng, w / h, CITYSCAPES_SCENE, random_sign_classes(rng, CITYSCAPES_SCENE.n_signs))
    return render(scene, w, h, CITYSCAPES_CAMERA, rng, res.cityscapes_cell)


def gtsdb_required_classes(seed: int, n_train: int, index: int) -> list[int]:
    """The GTSDB classes train frame ``index`` must show, so that the train split covers all 43."""
    if index >= n_train:
        return []
    order = np.random.default_rng([seed, _GTSDB, 10**9]).permutation(GTSDB_NUM_CLASSES)
    return [int(c) for j, c in enumerate(order) if j % n_train == index]


def gtsdb_frame(seed: int, index: int, n_train: int, res: Resolution = DEMO) -> Frame:
    """Frame ``index`` of the demo GTSDB: 1-5 signs (now and then none), required classes first."""
    rng = _rng(seed, _GTSDB, index)
    required = gtsdb_required_classes(seed, n_train, index)
    style = res.gtsdb_scene
    empty = not required and rng.random() < _EMPTY_GTSDB_FRAME
    classes = [] if empty else random_sign_classes(rng, style.n_signs, required)
    w, h = res.gtsdb
    return render(make_scene(rng, w / h, style, classes), w, h, GTSDB_CAMERA, rng, res.gtsdb_cell)


def vistas_frame(seed: int, index: int, res: Resolution = DEMO, slot: int = 0) -> tuple[str, Frame, int]:
    """Frame ``index`` of the demo Vistas: (22-character key, frame, JPEG quality).

    ``slot`` (the frame's place in its split) picks the size when ``res`` takes sizes in turn.
    """
    rng = _rng(seed, _VISTAS, index)
    key = "".join(_KEY_ALPHABET[rng.integers(0, len(_KEY_ALPHABET), 22)])
    pick = int(rng.integers(len(VISTAS_SIZES)))  # drawn at every size: same keys and scenes
    sizes = res.vistas_sizes
    w, h = sizes[slot % len(sizes)] if res.vistas_cycle else sizes[pick]
    quality = int(rng.integers(85, 96))
    scene = make_scene(rng, w / h, VISTAS_SCENE, random_sign_classes(rng, VISTAS_SCENE.n_signs))
    return key, render(scene, w, h, VISTAS_CAMERA, rng, res.vistas_cell((w, h))), quality


def _write_cityscapes(
    root: Path, seed: int, counts: FrameCounts, res: Resolution, bar: tqdm
) -> DatasetSummary:
    index = 0
    for split, n in (("train", counts.cs_train), ("val", counts.cs_val)):
        cities = CITIES[split]
        seq = dict.fromkeys(cities, 0)
        for j in range(n):
            city = cities[j * len(cities) // n]
            stem = f"{city}_{seq[city]:06d}_000019"
            write_cityscapes_frame(root, split, city, stem, cityscapes_frame(seed, index, res))
            seq[city] += 1
            index += 1
            bar.update()
    return DatasetSummary("cityscapes", root, {"train": counts.cs_train, "val": counts.cs_val})


def _write_gtsdb(root: Path, seed: int, counts: FrameCounts, res: Resolution, bar: tqdm) -> DatasetSummary:
    n, n_train = counts.gtsdb, counts.gtsdb_train
    lines: list[str] = []
    for i in range(n):
        split, k = ("train", i) if i < n_train else ("test", i - n_train)
        mask = root / "true_masks" / "gtFine" / split / f"{k:05d}_labelIds.png"
        lines += write_gtsdb_frame(root, i, mask, gtsdb_frame(seed, i, n_train, res))
        bar.update()
    write_gtsdb_meta(root, lines, n, n_train)
    return DatasetSummary("gtsdb", root / "FullIJCNN2013", {"train": n_train, "test": n - n_train})


def _write_vistas(root: Path, seed: int, counts: FrameCounts, res: Resolution, bar: tqdm) -> DatasetSummary:
    write_vistas_config(root)
    keys: set[str] = set()
    index = 0
    for split, n in (("training", counts.vistas_train), ("validation", counts.vistas_val)):
        for slot in range(n):
            key, frame, quality = vistas_frame(seed, index, res, slot)
            if key in keys:  # pragma: no cover - 64**22 keys
                raise RuntimeError(f"duplicate Vistas key {key}")
            keys.add(key)
            write_vistas_frame(root, split, key, frame, quality)
            index += 1
            bar.update()
    return DatasetSummary("vistas", root, {"training": counts.vistas_train, "validation": counts.vistas_val})


def is_demo_world(root: Path) -> bool:
    """Whether ``root`` holds a valid demo-world marker (so it may be replaced without ``force``)."""
    try:
        marker = json.loads((Path(root) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("generator") == GENERATOR


def _check_target(root: Path, force: bool) -> None:
    if not root.name:
        raise MultisegError(f"cannot write a demo world into {root}: give a folder below it")
    if root.exists() and not root.is_dir():
        raise MultisegError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force and not is_demo_world(root):
        raise MultisegError(
            f"{root} is not empty and holds no demo world (no valid {MARKER}); "
            "choose another folder or pass --force (force=True) to replace it"
        )


def write_demo_world(
    root: Path, seed: int = 0, size: str = "small", force: bool = False, *, n_frames: int | None = None
) -> DemoWorldSummary:
    """Generate the demo world (Cityscapes, GTSDB and Vistas look-alikes) under ``root``.

    Refuses (:class:`MultisegError`) a non-empty folder that is not a previous demo world unless
    ``force``. Everything is written into a temporary sibling folder that replaces ``root`` only when
    complete, so a failure or Ctrl-C leaves ``root`` as it was. ``n_frames`` (for tests) overrides the
    frame count per dataset.
    """
    start = time.perf_counter()
    counts = frame_counts(size, n_frames)
    if seed < 0:
        raise MultisegError(f"seed must be >= 0, got {seed}")
    root = Path(root).expanduser().absolute()
    _check_target(root, force)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        with tqdm(
            total=counts.total, desc="demo world", unit="frame", file=sys.stderr, mininterval=0.5
        ) as bar:
            res = resolution(size)
            datasets = (
                _write_cityscapes(tmp / "cityscapes", seed, counts, res, bar),
                _write_gtsdb(tmp / "gtsdb", seed, counts, res, bar),
                _write_vistas(tmp / "vistas", seed, counts, res, bar),
            )
        marker = {"generator": GENERATOR, "format": FORMAT, "seed": seed, "size": size}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        replace_dir(tmp, root)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        where = err.filename or root
        raise MultisegError(
            f"cannot write the demo world to {root}: {err.strerror or err} ({where})"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    moved = tuple(DatasetSummary(d.name, root / d.path.relative_to(tmp), d.splits) for d in datasets)
    return DemoWorldSummary(root, seed, size, moved, time.perf_counter() - start)
