"""Cityscapes (gtFine) in its official layout, mapped to the 19 train ids (255 = ignore).

``ROOT/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` pairs with
``ROOT/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`` (34 label ids, mapped through the
256-entry LUT of ``labels.py``), or with ``<stem>_gtFine_labelTrainIds.png`` where that file exists
and ``label_type="labelTrainIds"`` (as produced by cityscapesscripts' createTrainIdLabelImgs).
A label value that is no Cityscapes id (34..255; for train ids anything but 0..18 and 255) is an
error naming the file. :func:`color_to_train_id` converts ``*_gtFine_color.png`` (RGB or RGBA).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from multiseg.data.base import Record, SegDataset, Transform, require_dir, unpaired_error
from multiseg.data.io import check_same_size, make_lut, map_labels, read_image, read_label
from multiseg.data.sample import Sample
from multiseg.labels import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    CITYSCAPES_PALETTE,
    IGNORE_INDEX,
)

LAYOUT = (
    "ROOT/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png and "
    "ROOT/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)
LabelType = Literal["labelIds", "labelTrainIds"]

#: label id -> train id for the 34 ids; any other stored value is unknown (an error).
ID_LUT = make_lut({lab.id: lab.train_id & 0xFF for lab in CITYSCAPES_LABELS if lab.id >= 0})
#: train id -> itself for 0..18 and 255; other values are unknown.
TRAIN_ID_LUT = make_lut({**{i: i for i in range(len(CITYSCAPES_CLASSES))}, IGNORE_INDEX: IGNORE_INDEX})


def _stem(image: Path) -> str:
    return image.name[: -len("_leftImg8bit.png")]


def scan_cityscapes(root: Path, split: str, label_type: LabelType = "labelIds") -> list[Record]:
    """Pair every image of ``split`` with its label; unpaired files on either side are an error."""
    require_dir(root, "cityscapes", LAYOUT)
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    require_dir(image_dir, "cityscapes", LAYOUT)
    require_dir(label_dir, "cityscapes", LAYOUT)
    images = {f"{p.parent.name}/{_stem(p)}": p for p in sorted(image_dir.glob("*/*_leftImg8bit.png"))}
    labels = {
        f"{p.parent.name}/{p.name[: -len('_gtFine_labelIds.png')]}": p
        for p in sorted(label_dir.glob("*/*_gtFine_labelIds.png"))
    }
    if missing := sorted(set(images) - set(labels)):
        raise unpaired_error("cityscapes", f"images in {image_dir} without a labelIds file", missing)
    if orphans := sorted(set(labels) - set(images)):
        raise unpaired_error("cityscapes", f"labels in {label_dir} without an image", orphans)
    records = []
    for key, image in images.items():
        label = labels[key]
        if label_type == "labelTrainIds":
            train_ids = label.with_name(
                label.name.replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")
            )
            label = train_ids if train_ids.is_file() else label
        records.append(Record(image=image, label=label, key=key))
    return records


def read_cityscapes_label(path: Path) -> np.ndarray:
    """Read a labelIds or labelTrainIds PNG (by its name) as uint8 train ids, validating its values."""
    raw = read_label(path)
    if path.name.endswith("_labelTrainIds.png"):
        return map_labels(raw, TRAIN_ID_LUT, path, "Cityscapes train id")
    return map_labels(raw, ID_LUT, path, "Cityscapes label id")


class CityscapesDataset(SegDataset):
    """Cityscapes fine annotations as 19 train-id classes (see module docstring)."""

    name = "cityscapes"
    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    eval_classes = tuple(range(len(CITYSCAPES_CLASSES)))

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        label_type: LabelType = "labelIds",
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(scan_cityscapes(Path(root), split, label_type), transform, skip_bad, split)

    def load(self, index: int) -> Sample:
        """Image (RGB) and train-id label of sample ``index``."""
        rec = self.records[index]
        image = read_image(rec.image)
        assert rec.label is not None
        label = read_cityscapes_label(rec.label)
        check_same_size(image, label, rec.image, rec.label)
        return self.dense_sample(image, label)


_COLOR_KEYS = np.array([(r << 16) | (g << 8) | b for r, g, b in CITYSCAPES_PALETTE], np.int64)
_COLOR_ORDER = np.argsort(_COLOR_KEYS)


def color_to_train_id(rgb: np.ndarray) -> np.ndarray:
    """Convert a Cityscapes colour GT (HxWx3 RGB, or RGBA) to uint8 train ids; unknown colours -> 255.

    Colour -> train id is unambiguous for the 19 train classes (the shared colours belong to void or
    ignored ids, which all become 255).
    """
    rgb = rgb[..., :3].astype(np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    sorted_keys = _COLOR_KEYS[_COLOR_ORDER]
    pos = np.searchsorted(sorted_keys, keys).clip(0, sorted_keys.size - 1)
    hit = sorted_keys[pos] == keys
    out = np.full(keys.shape, IGNORE_INDEX, np.uint8)
    out[hit] = _COLOR_ORDER[pos[hit]].astype(np.uint8)
    return out
