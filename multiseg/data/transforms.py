"""Training and evaluation transforms on uint8 numpy arrays, with boxes carried exactly alongside.

Geometry convention (used by images, labels *and* boxes, so they never drift apart):
pixel ``i`` covers the continuous interval ``[i, i + 1)``; a box ``(x1, y1, x2, y2)`` is half-open
in those coordinates, so GTSDB's inclusive ``774..815`` is ``x1 = 774, x2 = 816``. Resizing a
W-wide image to ``W'`` maps ``x -> x * W' / W``; images use ``cv2.INTER_LINEAR`` (half-pixel
centres) and labels nearest neighbour with destination pixel ``j`` taking source pixel
``floor((j + 0.5) * W / W')`` in exact integer arithmetic (the rule of PIL ``NEAREST``, torch
``nearest-exact`` and ``cv2.INTER_NEAREST_EXACT``, minus the latter's floating-point ties). Boxes are
carried in float64 and scaled as ``(x * W') / W``, so a label pixel falls inside a transformed box
exactly when its source pixel fell inside the original box, ties included (tests check this on
random scales). Labels are only ever resampled with nearest neighbour.

The training transform is the paper's recipe: a horizontal flip with probability 0.5 through the
dataset's :class:`Mirror`, scaling so the image fits ``fit_width`` x ``fit_height`` keeping its
aspect ratio, times a random factor in ``scale_range`` (one resize, not two), and a random crop of
``crop_height`` x ``crop_width`` padded bottom/right with 0 (image) and 255 (label) where the image
is smaller (as mmsegmentation's RandomCrop + Pad). With probability ``box_crop_prob`` a sample that
has boxes is cropped around one of them instead (:func:`box_crop`).

Flip policy for classes with no mirror twin (GTSDB 24 "road narrows on the right", 40 roundabout,
the speed-limit digits ...): the *whole sample is not flipped*. Ignoring those pixels instead would
throw away the rarest classes' only supervision half of the time, and a mirrored "road narrows on
the right" looks like a sign that does not exist, so skipping is the choice that never teaches a
wrong label.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from multiseg.data.fastgeom import (
    CropGeometry,
    apply_geometry,
    flip_resize_boxes,
    nearest_indices,
    uniform_window,
)
from multiseg.data.sample import Mirror, Sample
from multiseg.labels import IGNORE_INDEX


@dataclass(frozen=True)
class TransformConfig:
    """Augmentation settings (the paper's defaults). ``None`` fit size / crop size switches that step off."""

    fit_width: int | None = 1024
    fit_height: int | None = 512
    allow_upscale: bool = True
    scale_range: tuple[float, float] = (0.5, 2.0)
    crop_height: int | None = 512
    crop_width: int | None = 1024
    flip_prob: float = 0.5
    box_crop_prob: float = 0.0


def fit_scale(width: int, height: int, fit_width: int | None, fit_height: int | None, upscale: bool) -> float:
    """The factor that makes a ``width`` x ``height`` image fit the box, aspect ratio kept."""
    factors = [f / s for f, s in ((fit_width, width), (fit_height, height)) if f is not None]
    if not factors:
        return 1.0
    scale = min(factors)
    return scale if upscale else min(scale, 1.0)


def resize(sample: Sample, scale: float) -> Sample:
    """Resize image, label and boxes by ``scale`` (output size rounded; boxes follow the exact ratio)."""
    h, w = sample.image.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) == (w, h):
        return sample
    image = cv2.resize(sample.image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    label = resize_label(sample.label, nw, nh)
    boxes = (sample.boxes * np.array([nw, nh, nw, nh], np.float64)) / np.array([w, h, w, h], np.float64)
    return replace(sample, image=image, label=label, boxes=boxes)


def resize_label(label: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map (pixel-centre aligned, exact; see module docstring)."""
    h, w = label.shape[:2]
    rows = np.take(label, nearest_indices(h, height), axis=0)
    return np.take(rows, nearest_indices(w, width), axis=1)


def crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Cut ``height`` x ``width`` at (top, left), padding bottom/right with 0 (image) / 255 (label)."""
    h, w = sample.image.shape[:2]
    image = sample.image[top : top + height, left : left + width]
    label = sample.label[top : top + height, left : left + width]
    ph, pw = height - image.shape[0], width - image.shape[1]
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    else:
        image, label = np.ascontiguousarray(image), np.ascontiguousarray(label)
    boxes = sample.boxes - np.array([left, top, left, top], np.float64)
    return replace(sample, image=image, label=label, boxes=boxes)


def random_crop(sample: Sample, height: int, width: int, rng: np.random.Generator) -> Sample:
    """A crop at a uniformly random position (top-left when the image is smaller than the crop)."""
    h, w = sample.image.shape[:2]
    top = int(rng.integers(0, max(h - height, 0) + 1))
    left = int(rng.integers(0, max(w - width, 0) + 1))
    return crop(sample, top, left, height, width)


def box_crop(sample: Sample, height: int, width: int, rng: np.random.Generator) -> Sample:
    """A random crop that contains one randomly chosen box whole (centred on it if the box is larger).

    Box-only datasets have a few small objects per large frame, so uniform crops mostly show
    background; this is the crop-around-an-instance sampling of detection pipelines, and keeps every
    position that contains the box equally likely.
    """
    h, w = sample.image.shape[:2]
    top, left = box_window(sample.boxes, height, width, h, w, rng)
    return crop(sample, top, left, height, width)


def box_window(
    boxes: np.ndarray, height: int, width: int, frame_height: int, frame_width: int, rng: np.random.Generator
) -> tuple[int, int]:
    """(top, left) of :func:`box_crop`'s window for ``boxes`` in a frame of the given size."""
    x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))]
    return _window_start(y1, y2, height, frame_height, rng), _window_start(x1, x2, width, frame_width, rng)


def _window_start(lo: float, hi: float, size: int, extent: int, rng: np.random.Generator) -> int:
    """A uniform start of a ``size`` window inside ``[0, extent)`` that covers ``[lo, hi)`` if it can."""
    first = max(0, min(int(np.ceil(hi)) - size, extent - size))
    last = min(max(int(np.floor(lo)), 0), max(extent - size, 0))
    if first > last:  # the box is wider than the window: centre the window on it
        return int(np.clip(round((lo + hi - size) / 2), 0, max(extent - size, 0)))
    return int(rng.integers(first, last + 1))


def hflip(sample: Sample, mirror: Mirror) -> Sample:
    """Mirror image, label and boxes left-right, renaming classes through ``mirror``."""
    w = sample.image.shape[1]
    image = np.ascontiguousarray(sample.image[:, ::-1])
    label = np.ascontiguousarray(sample.label[:, ::-1])
    if mirror.label_lut is not None:
        label = cv2.LUT(label, mirror.label_lut)
    boxes = sample.boxes.copy()
    boxes[:, 0], boxes[:, 2] = w - sample.boxes[:, 2], w - sample.boxes[:, 0]
    classes = sample.box_classes
    if mirror.box_class_map is not None and classes.size:
        classes = mirror.box_class_map[classes]
    return replace(sample, image=image, label=label, boxes=boxes, box_classes=classes, flipped=True)


def clip_boxes(
    boxes: np.ndarray, classes: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clip half-open boxes to the ``width`` x ``height`` frame and drop the ones left empty."""
    if boxes.size == 0:
        return boxes.reshape(0, 4).astype(np.float32), classes.astype(np.int64)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep].astype(np.float32), classes[keep].astype(np.int64)


class TrainTransform:
    """Mirrored horizontal flip, fit-resize x random scale, random crop with ignore padding.

    The flip comes first, on the original frame, where box edges are integers and pixel centres
    half-integers: flipping after a resize would swap which side of a box edge a tie falls on (the
    half-open convention is not mirror-symmetric), breaking the exact box/label agreement. Since the
    crop position is uniform, the order does not change the distribution of crops.

    The three steps run as one (:mod:`multiseg.data.fastgeom`): only the pixels the crop keeps are
    resampled, with the same result as :func:`hflip`, :func:`resize` and :func:`crop` in a row
    (labels and boxes identical, images within 1 grey level) and the same draws from ``rng``.
    """

    def __init__(self, config: TransformConfig | None = None) -> None:
        self.config = config or TransformConfig()

    def __call__(self, sample: Sample, mirror: Mirror, rng: np.random.Generator) -> Sample:
        """Augment one sample; all randomness comes from ``rng`` (scale, crop position, flip)."""
        cfg = self.config
        flip = bool(rng.random() < cfg.flip_prob and mirror.can_flip(sample.box_classes))
        h, w = sample.image.shape[:2]
        scale = fit_scale(w, h, cfg.fit_width, cfg.fit_height, cfg.allow_upscale)
        scale *= float(rng.uniform(*cfg.scale_range))
        geom = CropGeometry.whole(w, h, scale, flip)
        if cfg.crop_height is not None and cfg.crop_width is not None:
            ch, cw = cfg.crop_height, cfg.crop_width
            if len(sample.boxes) and rng.random() < cfg.box_crop_prob:
                boxes = flip_resize_boxes(sample.boxes, geom)
                top, left = box_window(boxes, ch, cw, geom.resized_height, geom.resized_width, rng)
            else:
                top, left = uniform_window(geom, ch, cw, rng)
            geom = geom.with_window(top, left, ch, cw)
        return apply_geometry(sample, mirror, geom)


class EvalTransform:
    """Deterministic fit-resize only (no crop, no flip); ``fit_width=fit_height=None`` keeps full size."""

    def __init__(
        self, fit_width: int | None = None, fit_height: int | None = None, upscale: bool = True
    ) -> None:
        self.fit_width, self.fit_height, self.upscale = fit_width, fit_height, upscale

    def __call__(self, sample: Sample, mirror: Mirror, rng: np.random.Generator) -> Sample:
        """Resize to the fit size (if any); ``mirror`` and ``rng`` are unused."""
        h, w = sample.image.shape[:2]
        return resize(sample, fit_scale(w, h, self.fit_width, self.fit_height, self.upscale))
