"""A user's own dataset as another head, without code: images + index PNGs + a small YAML of class names.

Layout (mmsegmentation's ``img_dir``/``ann_dir`` convention)::

    ROOT/classes.yaml                    # see below
    ROOT/images/<split>/**/<stem>.{jpg,png,...}
    ROOT/labels/<split>/**/<stem>.png    # single-channel or palette PNG, pixel = class index

``classes.yaml``::

    name: potholes            # head name (default: the folder's name)
    classes: [road, pothole]  # class index = list position
    palette: [[128, 64, 128], [255, 0, 0]]   # optional
    ignore_index: 255         # optional: the stored value meaning "ignore" (mapped to 255)
    eval_classes: [1]         # optional: classes counted in mIoU (default: all)

Images and labels pair by their path relative to the split folder, without extension.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import yaml

from multiseg.data.base import Record, SegDataset, Transform, require_dir, unpaired_error
from multiseg.data.io import IMAGE_EXTENSIONS, check_same_size, make_lut, map_labels, read_image, read_label
from multiseg.data.sample import Sample
from multiseg.errors import MultisegError
from multiseg.labels import IGNORE_INDEX

LAYOUT = "ROOT/classes.yaml + ROOT/images/<split>/<stem>.jpg + ROOT/labels/<split>/<stem>.png"


def _default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.7, 0.95)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(out)


def read_classes_yaml(path: Path) -> dict:
    """Validate ``classes.yaml`` and fill in defaults (palette, ignore_index, eval_classes, name)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MultisegError(f"{path}: classes.yaml not found; expected layout: {LAYOUT}") from None
    except yaml.YAMLError as exc:
        raise MultisegError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list) or not data["classes"]:
        raise MultisegError(f"{path}: needs a non-empty 'classes' list of names")
    n = len(data["classes"])
    if n > 254:
        raise MultisegError(f"{path}: {n} classes; at most 254 are supported (uint8 labels, 255 = ignore)")
    palette = data.get("palette") or _default_palette(n)
    if len(palette) != n:
        raise MultisegError(f"{path}: palette has {len(palette)} colours for {n} classes")
    eval_classes = data.get("eval_classes", list(range(n)))
    if any(not 0 <= int(c) < n for c in eval_classes):
        raise MultisegError(f"{path}: eval_classes must be class indices in 0..{n - 1}")
    return {
        "name": str(data.get("name", path.parent.name)),
        "classes": tuple(str(c) for c in data["classes"]),
        "palette": tuple(tuple(int(v) for v in c[:3]) for c in palette),
        "ignore_index": int(data.get("ignore_index", IGNORE_INDEX)),
        "eval_classes": tuple(int(c) for c in eval_classes),
    }


def _by_stem(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    return {
        str(p.relative_to(folder).with_suffix("")): p
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in extensions and p.is_file()
    }


class FolderDataset(SegDataset):
    """Images + index PNGs + ``classes.yaml`` (see module docstring)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        root = Path(root)
        require_dir(root, "folder dataset", LAYOUT)
        meta = read_classes_yaml(root / "classes.yaml")
        self.name, self.classes, self.palette = meta["name"], meta["classes"], meta["palette"]
        self.eval_classes = meta["eval_classes"]
        mapping = {i: i for i in range(len(self.classes))}
        mapping[meta["ignore_index"]] = IGNORE_INDEX
        self.lut = make_lut(mapping)
        image_dir, label_dir = root / "images" / split, root / "labels" / split
        require_dir(image_dir, self.name, LAYOUT)
        require_dir(label_dir, self.name, LAYOUT)
        images = _by_stem(image_dir, IMAGE_EXTENSIONS)
        labels = _by_stem(label_dir, (".png",))
        if missing := sorted(set(images) - set(labels)):
            raise unpaired_error(self.name, f"images in {image_dir} without a label", missing)
        if orphans := sorted(set(labels) - set(images)):
            raise unpaired_error(self.name, f"labels in {label_dir} without an image", orphans)
        records = [Record(image=images[k], label=labels[k], key=k) for k in images]
        super().__init__(records, transform, skip_bad, split)

    def load(self, index: int) -> Sample:
        """Image (RGB) and class-index label."""
        rec = self.records[index]
        image = read_image(rec.image)
        assert rec.label is not None
        raw = read_label(rec.label)
        check_same_size(image, raw, rec.image, rec.label)
        what = f"class index of {self.name} ({len(self.classes)} classes)"
        return self.dense_sample(image, map_labels(raw, self.lut, rec.label, what))
