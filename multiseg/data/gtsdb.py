"""GTSDB (FullIJCNN2013): scene frames with sign boxes, rasterised to a per-pixel target after augmentation.

Layout: ``ROOT/FullIJCNN2013/{NNNNN.ppm, gt.txt, ReadMe.txt}`` (``ROOT`` may also be the
FullIJCNN2013 folder itself). Frames may have been converted to ``.png``/``.jpg`` (same stem).
``gt.txt`` lines are ``NNNNN.ppm;x1;y1;x2;y2;classId`` with inclusive right/bottom edges; boxes are
turned into half-open float coordinates (``x2 + 1``, ``y2 + 1``). Frames without a line have no sign.

Splits: ``split_rule="official"`` is train = 00000-00599, test = 00600-00899; ``"fraction"`` takes
the first ``round(n * train_fraction)`` frames (2/3 by default, which is the official split for the
900 real frames) as train; ``"auto"`` (default) uses the official split when the frames are exactly
00000-00899, otherwise the number of files in ``true_masks/gtFine/train`` when that folder exists
(the demo world writes it), otherwise the fraction. ``train_count`` overrides all of these.

Head class space: the 43 sign classes with their GTSDB ids and background = 43 (``num_classes`` 44);
mIoU counts the 43 signs (a background IoU near 1 would only inflate the mean).

``label_source="boxes"`` (training): the label is rasterised by ``boxes.rasterise_boxes`` with the
chosen ``policy`` (``box`` / ``shape``) and ``ring``. ``label_source="pixel_masks"`` (evaluation):
the label is read from per-pixel annotations in the Meletis & Dubbelman format
(``<pixel_masks_dir>/{train,test}/NNNNN_labelIds.png``, uint16, 0 = no sign, 2000 + classId; test
file k is frame n_train + k), background = 43.
"""

from __future__ import annotations

import colorsys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from multiseg.data.base import Record, SegDataset, Transform, first_few, require_dir, unpaired_error
from multiseg.data.boxes import TARGET_POLICIES, TargetPolicy, rasterise_boxes
from multiseg.data.io import IMAGE_EXTENSIONS, check_same_size, make_lut, map_labels, read_image, read_label
from multiseg.data.sample import Mirror, Sample, swap_lut
from multiseg.errors import MultisegError
from multiseg.labels import (
    GTSDB_BACKGROUND,
    GTSDB_CLASSES,
    GTSDB_MIRROR_PAIRS,
    GTSDB_NUM_CLASSES,
    gtsdb_class_categories,
    gtsdb_class_shapes,
    gtsdb_mirror_map,
)

LAYOUT = "ROOT/FullIJCNN2013/{00000.ppm ... 00899.ppm, gt.txt} (frames may also be .png/.jpg)"
OFFICIAL_TRAIN = range(0, 600)
OFFICIAL_TEST = range(600, 900)
SplitRule = Literal["auto", "official", "fraction"]
LabelSource = Literal["boxes", "pixel_masks"]


@dataclass(frozen=True)
class GtBox:
    """One gt.txt line: frame file name, inclusive pixel box, class id and its line number."""

    frame: str
    x1: int
    y1: int
    x2: int
    y2: int
    class_id: int
    line: int

    @property
    def stem(self) -> str:
        """The frame's name without extension (``00042``)."""
        return self.frame.rsplit(".", 1)[0]


def _parse_line(path: Path, lineno: int, text: str) -> GtBox:
    fields = [f.strip() for f in text.split(";")]
    if len(fields) != 6:
        raise MultisegError(f"{path}:{lineno}: expected 6 ';'-separated fields, got {len(fields)}: {text!r}")
    try:
        x1, y1, x2, y2, cls = (int(f) for f in fields[1:])
    except ValueError:
        raise MultisegError(f"{path}:{lineno}: non-integer coordinate or class: {text!r}") from None
    if not 0 <= cls < GTSDB_NUM_CLASSES:
        raise MultisegError(f"{path}:{lineno}: class {cls} outside 0..{GTSDB_NUM_CLASSES - 1}")
    if x2 < x1:
        raise MultisegError(f"{path}:{lineno}: box has right < left ({x2} < {x1}): {text!r}")
    if y2 < y1:
        raise MultisegError(f"{path}:{lineno}: box has bottom < top ({y2} < {y1}): {text!r}")
    return GtBox(fields[0], x1, y1, x2, y2, cls, lineno)


def parse_gt_txt(path: str | Path) -> list[GtBox]:
    """All boxes of a gt.txt, in file order; blank lines and ``#`` header lines are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MultisegError(f"{path}: gt.txt not found; expected layout: {LAYOUT}") from None
    except UnicodeDecodeError:
        raise MultisegError(f"{path}: not a text file") from None
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            boxes.append(_parse_line(path, lineno, line.strip()))
    return boxes


def frame_number(stem: str) -> int | None:
    """``00042`` -> 42; None for names that are not a frame number."""
    return int(stem) if stem.isdigit() else None


def split_frames(
    frames: list[int], split: str, rule: SplitRule, train_count: int | None, train_fraction: float
) -> tuple[list[int], int]:
    """The frame numbers of ``split`` ("train", "test", "all") and the number of train frames."""
    frames = sorted(frames)
    official = rule == "official" or (rule == "auto" and train_count is None and frames == list(range(900)))
    if official and train_count is None:
        chosen = {"train": OFFICIAL_TRAIN, "test": OFFICIAL_TEST, "all": range(900)}.get(split)
        if chosen is None:
            raise MultisegError(f"gtsdb: unknown split {split!r}; expected train, test or all")
        return [f for f in frames if f in chosen], len(OFFICIAL_TRAIN)
    n_train = train_count if train_count is not None else round(len(frames) * train_fraction)
    parts = {"train": frames[:n_train], "test": frames[n_train:], "all": frames}
    if split not in parts:
        raise MultisegError(f"gtsdb: unknown split {split!r}; expected train, test or all")
    return parts[split], n_train


def _find_images(folder: Path) -> dict[str, Path]:
    """Frame stem -> image file, preferring the original .ppm over converted copies."""
    found: dict[str, Path] = {}
    for ext in (".ppm", *(e for e in IMAGE_EXTENSIONS if e != ".ppm")):
        for p in sorted(folder.glob(f"*{ext}")):
            if frame_number(p.stem) is not None:
                found.setdefault(p.stem, p)
    return found


def _palette() -> tuple[tuple[int, int, int], ...]:
    """43 well-separated hues for the signs, black for background."""
    colours = []
    for i in range(GTSDB_NUM_CLASSES):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.95)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return (*colours, (0, 0, 0))


#: Meletis per-pixel value -> head class: 0 -> background, 2000 + c -> c; anything else unknown.
MELETIS_LUT = make_lut({0: GTSDB_BACKGROUND, **{2000 + c: c for c in range(GTSDB_NUM_CLASSES)}}, size=2048)


def read_meletis_mask(path: str | Path) -> np.ndarray:
    """Read a Meletis & Dubbelman per-pixel GTSDB annotation as uint8 classes (43 = background)."""
    raw = read_label(path)
    if raw.dtype != np.uint16:
        raise MultisegError(f"{path}: expected a 16-bit PNG (2000 + classId), got {raw.dtype}")
    return map_labels(raw, MELETIS_LUT, path, "GTSDB per-pixel value (0 or 2000..2042)")


class GtsdbDataset(SegDataset):
    """GTSDB frames with boxes and a per-pixel target (see module docstring)."""

    name = "gtsdb"
    classes = (*(c.name for c in GTSDB_CLASSES), "background")
    palette = _palette()
    eval_classes = tuple(range(GTSDB_NUM_CLASSES))
    background = GTSDB_BACKGROUND

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        policy: TargetPolicy = "box",
        ring: int = 0,
        split_rule: SplitRule = "auto",
        train_count: int | None = None,
        train_fraction: float = 2 / 3,
        label_source: LabelSource = "boxes",
        pixel_masks_dir: str | Path | None = None,
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        if policy not in TARGET_POLICIES:
            raise MultisegError(f"gtsdb: unknown target policy {policy!r}; expected one of {TARGET_POLICIES}")
        if ring < 0:
            raise MultisegError(f"gtsdb: ignore ring must be >= 0 pixels, got {ring}")
        folder = self._folder(Path(root))
        self.gt_path = folder / "gt.txt"
        self.policy, self.ring, self.label_source = policy, ring, label_source
        boxes = parse_gt_txt(self.gt_path)
        images = _find_images(folder)
        if missing := sorted({b.stem for b in boxes} - set(images)):
            raise unpaired_error("gtsdb", f"frames named in {self.gt_path} without an image", missing)
        masks_dir = Path(pixel_masks_dir) if pixel_masks_dir is not None else None
        if (
            split_rule == "auto"
            and train_count is None
            and (folder.parent / "true_masks/gtFine/train").is_dir()
        ):
            train_count = len(list((folder.parent / "true_masks/gtFine/train").glob("*_labelIds.png")))
        frames, self.n_train = split_frames(
            [int(s) for s in images], split, split_rule, train_count, train_fraction
        )
        self.boxes_by_frame: dict[str, list[GtBox]] = {}
        for b in boxes:
            self.boxes_by_frame.setdefault(b.stem, []).append(b)
        records = []
        for f in frames:
            stem = f"{f:05d}"
            label = self._mask_path(masks_dir, f) if label_source == "pixel_masks" else None
            records.append(Record(image=images[stem], label=label, key=stem))
        if label_source == "pixel_masks":
            self._check_masks(records, masks_dir)
        super().__init__(records, transform, skip_bad, split)
        self.mirror = Mirror(
            label_lut=swap_lut(GTSDB_MIRROR_PAIRS) if label_source == "pixel_masks" else None,
            box_class_map=gtsdb_mirror_map(),
        )
        self.class_categories, self.class_shapes = gtsdb_class_categories(), gtsdb_class_shapes()
        self.clipped_boxes = 0
        self._warned_lines: set[int] = set()

    @staticmethod
    def _folder(root: Path) -> Path:
        require_dir(root, "gtsdb", LAYOUT)
        if (root / "gt.txt").is_file():
            return root
        require_dir(root / "FullIJCNN2013", "gtsdb", LAYOUT)
        return root / "FullIJCNN2013"

    def _mask_path(self, masks_dir: Path | None, frame: int) -> Path:
        if masks_dir is None:
            raise MultisegError("gtsdb: label_source='pixel_masks' needs pixel_masks_dir")
        if frame < self.n_train:
            return masks_dir / "train" / f"{frame:05d}_labelIds.png"
        return masks_dir / "test" / f"{frame - self.n_train:05d}_labelIds.png"

    @staticmethod
    def _check_masks(records: list[Record], masks_dir: Path | None) -> None:
        assert masks_dir is not None
        require_dir(masks_dir, "gtsdb", "<pixel_masks_dir>/{train,test}/NNNNN_labelIds.png")
        if missing := [r.key for r in records if r.label is not None and not r.label.is_file()]:
            raise unpaired_error("gtsdb", f"frames without a per-pixel mask in {masks_dir}", missing)

    def _frame_boxes(self, key: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The frame's boxes as half-open float64, clipped to the image with a counted warning."""
        rows, classes = [], []
        for b in self.boxes_by_frame.get(key, []):
            x1, y1, x2, y2 = max(b.x1, 0), max(b.y1, 0), min(b.x2, width - 1), min(b.y2, height - 1)
            if x2 < x1 or y2 < y1:
                raise MultisegError(
                    f"{self.gt_path}:{b.line}: box lies outside the {width}x{height} image {b.frame}"
                )
            if (x1, y1, x2, y2) != (b.x1, b.y1, b.x2, b.y2) and b.line not in self._warned_lines:
                self._warned_lines.add(b.line)
                self.clipped_boxes += 1
                warnings.warn(
                    f"{self.gt_path}:{b.line}: box extends past the {width}x{height} image, clipped "
                    f"({self.clipped_boxes} so far)",
                    stacklevel=3,
                )
            rows.append((x1, y1, x2 + 1, y2 + 1))
            classes.append(b.class_id)
        return np.array(rows, np.float64).reshape(-1, 4), np.array(classes, np.int64)

    def load(self, index: int) -> Sample:
        """The frame (RGB), its boxes, and a validity map (or the per-pixel mask) as label."""
        rec = self.records[index]
        image = read_image(rec.image)
        h, w = image.shape[:2]
        boxes, classes = self._frame_boxes(rec.key, w, h)
        if rec.label is not None:
            label = read_meletis_mask(rec.label)
            check_same_size(image, label, rec.image, rec.label)
        else:
            label = np.zeros((h, w), np.uint8)
        return Sample(image=image, label=label, boxes=boxes, box_classes=classes)

    def finish(self, sample: Sample) -> Sample:
        """Rasterise the transformed boxes into the policy's target at the final resolution."""
        if self.label_source == "pixel_masks":
            return sample
        label = rasterise_boxes(
            sample.label,
            sample.boxes,
            sample.box_classes,
            policy=self.policy,
            ring=self.ring,
            background=self.background,
            class_shapes=self.class_shapes,
        )
        return replace(sample, label=label)

    def box_info(self, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Category (index into GTSDB_CATEGORIES) and outline (index into GTSDB_SHAPES) of each box."""
        return self.class_categories[classes], self.class_shapes[classes]

    def describe(self) -> str:
        """One line for logs: split size, boxes and policy."""
        n_boxes = sum(len(self.boxes_by_frame.get(r.key, [])) for r in self.records)
        return (
            f"gtsdb {self.split}: {len(self)} frames, {n_boxes} boxes, policy={self.policy}, "
            f"ring={self.ring} (first: {first_few([r.key for r in self.records])})"
        )
