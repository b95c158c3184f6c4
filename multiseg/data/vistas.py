"""Mapillary Vistas v1.2 (66 labels) and v2.0 (124 labels), full or in the Lane Markings setting.

Layouts: the stand-alone v1.x release ``ROOT/config.json`` + ``ROOT/<split>/{images/<key>.jpg,
labels/<key>.png}``, and the combined v2.0 release ``ROOT/config_v{1.2,2.0}.json`` +
``ROOT/<split>/v{1.2,2.0}/labels/<key>.png`` (images stay in ``<split>/images``). Splits are
``training`` / ``validation`` (``train`` / ``val`` accepted). The config is parsed *by key* (the two
versions order the keys differently); its list position is the class index.

Labels are palette PNGs whose *indices* are the classes; they are read with Pillow (OpenCV would
expand them to colours). An index past the config's labels is an error naming the file.

``setting="full"`` (head "vistas"): every label but ``void--unlabeled`` is a class (65 for v1.2,
123 for v2.0), ``void--unlabeled`` -> 255; mIoU counts the labels with ``evaluate: true``. For v1.2,
``to_cityscapes`` is the strict Vistas->Cityscapes train-id table (specs section 3.4) for evaluation.
``setting="lanes"`` (head "lanes"): road, lane marking, crosswalk plain, crosswalk zebra and a
trained "other" class 4 that mIoU leaves out (``lanes_other="ignore"`` makes it 255 instead), folded
by name so v2.0's split marking classes all become "lane marking" (``labels.lane_marking_lut``).
A flip swaps v2.0's arrow-left/right (and split-left/right-or-straight) markings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from multiseg.data.base import Record, SegDataset, Transform, require_dir, unpaired_error
from multiseg.data.io import check_same_size, make_lut, map_labels, read_image, read_label
from multiseg.data.sample import Mirror, Sample, swap_lut
from multiseg.errors import MultisegError
from multiseg.labels import (
    IGNORE_INDEX,
    LANE_MARKING_CLASSES,
    LANE_MARKING_OTHER,
    lane_marking_lut,
    vistas_mirror_pairs,
    vistas_to_cityscapes_lut,
)

LAYOUT = (
    "ROOT/config.json + ROOT/{training,validation}/{images/<key>.jpg,labels/<key>.png} "
    "(v2.0 release: config_v2.0.json + <split>/v2.0/labels)"
)
Version = Literal["1.2", "2.0"]
Setting = Literal["full", "lanes"]
_SPLIT_ALIASES = {"train": "training", "val": "validation", "test": "testing"}
VOID = "void--unlabeled"
LANES_PALETTE = ((128, 64, 128), (255, 255, 255), (140, 140, 200), (200, 128, 128), (90, 90, 90))


@dataclass(frozen=True)
class VistasConfigLabel:
    """One entry of a Vistas config's ``labels`` list."""

    name: str
    readable: str
    color: tuple[int, int, int]
    instances: bool
    evaluate: bool


def read_vistas_config(path: str | Path) -> list[VistasConfigLabel]:
    """Parse ``config.json`` / ``config_v2.0.json`` by key; list position = class index."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MultisegError(f"{path}: Vistas config not found; expected layout: {LAYOUT}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MultisegError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list) or not data["labels"]:
        raise MultisegError(f"{path}: Vistas config has no 'labels' list")
    labels = []
    for i, entry in enumerate(data["labels"]):
        if not isinstance(entry, dict) or "name" not in entry or "color" not in entry:
            raise MultisegError(f"{path}: labels[{i}] lacks 'name' or 'color'")
        labels.append(
            VistasConfigLabel(
                name=str(entry["name"]),
                readable=str(entry.get("readable", entry["name"])),
                color=tuple(int(c) for c in entry["color"][:3]),  # type: ignore[arg-type]
                instances=bool(entry.get("instances", False)),
                evaluate=bool(entry.get("evaluate", True)),
            )
        )
    return labels


def _locate(root: Path, split: str, version: Version, config_path: Path | None) -> tuple[Path, Path, Path]:
    """Config file, image folder and label folder for ``version`` in either release layout."""
    require_dir(root, "vistas", LAYOUT)
    split_dir = root / split
    require_dir(split_dir, "vistas", LAYOUT)
    if config_path is None:
        candidates = (
            ["config.json", f"config_v{version}.json"]
            if version == "1.2"
            else [f"config_v{version}.json", "config.json"]
        )
        config_path = next((root / c for c in candidates if (root / c).is_file()), root / candidates[0])
    labels_dir = split_dir / f"v{version}" / "labels"
    if not labels_dir.is_dir():
        labels_dir = split_dir / "labels"
    return config_path, split_dir / "images", labels_dir


def scan_vistas(images_dir: Path, labels_dir: Path, split: str) -> list[Record]:
    """Pair ``images/<key>.jpg`` with ``labels/<key>.png``; the testing split has no labels."""
    require_dir(images_dir, "vistas", LAYOUT)
    images = {p.stem: p for p in sorted(images_dir.glob("*.jpg"))}
    if split == "testing" and not labels_dir.is_dir():
        return [Record(image=p, label=None, key=k) for k, p in images.items()]
    require_dir(labels_dir, "vistas", LAYOUT)
    labels = {p.stem: p for p in sorted(labels_dir.glob("*.png"))}
    if missing := sorted(set(images) - set(labels)):
        raise unpaired_error("vistas", f"images in {images_dir} without a label", missing)
    if orphans := sorted(set(labels) - set(images)):
        raise unpaired_error("vistas", f"labels in {labels_dir} without an image", orphans)
    return [Record(image=images[k], label=labels[k], key=k) for k in images]


class VistasDataset(SegDataset):
    """Mapillary Vistas as the ``vistas`` head (full) or the ``lanes`` head (see module docstring)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "training",
        *,
        version: Version = "1.2",
        setting: Setting = "full",
        lanes_other: Literal["class", "ignore"] = "class",
        config_path: str | Path | None = None,
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        if version not in ("1.2", "2.0"):
            raise MultisegError(f"vistas: unknown version {version!r}; expected '1.2' or '2.0'")
        split = _SPLIT_ALIASES.get(split, split)
        cfg, images_dir, labels_dir = _locate(
            Path(root), split, version, Path(config_path) if config_path else None
        )
        self.config_labels = read_vistas_config(cfg)
        self.version, self.setting = version, setting
        names = [lab.name for lab in self.config_labels]
        if setting == "lanes":
            self._init_lanes(names, lanes_other)
        elif setting == "full":
            self._init_full(names)
        else:
            raise MultisegError(f"vistas: unknown setting {setting!r}; expected 'full' or 'lanes'")
        super().__init__(scan_vistas(images_dir, labels_dir, split), transform, skip_bad, split)
        if setting == "full":
            pairs = [(int(self.lut[a]), int(self.lut[b])) for a, b in vistas_mirror_pairs(names)]
            self.mirror = Mirror(label_lut=swap_lut(pairs))

    def _init_full(self, names: list[str]) -> None:
        self.name = "vistas"
        kept = [i for i, n in enumerate(names) if n != VOID]
        mapping = {src: dst for dst, src in enumerate(kept)}
        mapping.update({i: IGNORE_INDEX for i, n in enumerate(names) if n == VOID})
        self.lut = make_lut(mapping)
        self.classes = tuple(self.config_labels[i].readable for i in kept)
        self.palette = tuple(self.config_labels[i].color for i in kept)
        self.eval_classes = tuple(j for j, i in enumerate(kept) if self.config_labels[i].evaluate)
        self.to_cityscapes = vistas_to_cityscapes_lut() if self.version == "1.2" else None

    def _init_lanes(self, names: list[str], other: str) -> None:
        self.name = "lanes"
        folded = lane_marking_lut(names, LANE_MARKING_OTHER if other == "class" else IGNORE_INDEX)
        self.lut = make_lut({i: int(folded[i]) for i in range(len(names))})
        n = len(LANE_MARKING_CLASSES) + (1 if other == "class" else 0)
        self.classes = (*LANE_MARKING_CLASSES, "other")[:n]
        self.palette = LANES_PALETTE[:n]
        self.eval_classes = tuple(range(len(LANE_MARKING_CLASSES)))
        self.to_cityscapes = None

    def load(self, index: int) -> Sample:
        """Image (RGB) and label mapped to this head's classes."""
        rec = self.records[index]
        image = read_image(rec.image)
        if rec.label is None:
            return self.dense_sample(image, np.full(image.shape[:2], IGNORE_INDEX, np.uint8))
        raw = read_label(rec.label)
        check_same_size(image, raw, rec.image, rec.label)
        what = f"Vistas v{self.version} label index (config has {len(self.config_labels)})"
        return self.dense_sample(image, map_labels(raw, self.lut, rec.label, what))
