"""Fused flip + resize + crop: the training geometry computed only for the pixels the crop keeps.

The step-by-step training transform (:mod:`multiseg.data.transforms`: :func:`hflip` on the whole
frame, :func:`resize` of the whole frame, then :func:`random_crop`) copies the full frame to flip it
and resamples every pixel of the scaled frame, although at the paper's sizes (2048x1024 frames, fit
1024x512, random scale [0.5, 2], crop 512x1024) up to three quarters of them are cut away. This
module produces the *same* crop directly (``benchmarks/bench_data.py --profile``: about 10 ms ->
2.5 ms of CPU per 2048x1024 sample):

* **Image**: one ``cv2.resize`` (INTER_LINEAR) of the source *prefix* ``[0, ye) x [0, xe)`` that
  the crop's last pixel needs, with the full frame's factors passed as ``fx = nw / w``,
  ``fy = nh / h``. OpenCV derives each destination pixel's sampling position from its index and
  those factors only, and the prefix ends two source pixels past the last one used, so no border
  clamp differs: the window is bit-identical to the same window of the full-frame resize. The rows
  above and the columns left of the window are still computed (an ROI would shift OpenCV's grid by a
  fractional offset); a ``cv2.warpAffine`` of just the window avoids that but quantises sampling
  positions to 1/32 pixel and measured slower than this. The flip is applied to the crop:
  bilinear resampling with half-pixel centres is mirror-symmetric, so ``resize(flip(I))`` and
  ``flip(resize(I))`` differ only by float rounding of the sampling positions (at most 1 grey level).
* **Label**: nearest neighbour by exact integer index arithmetic (:func:`nearest_indices`, the rule
  of ``transforms.resize_label``), gathered for the crop only. With the flip, the source column is
  computed in the flipped frame (``w - 1 - c``), so ties fall on the same side as in
  flip-then-resize (the transforms' convention): identical pixel for pixel.
* **Boxes**: the same float64 operations in the same order as flip -> resize -> crop: bit-identical.

Use: :meth:`CropGeometry.whole` for the flip and the scale, :meth:`CropGeometry.with_window` for
the crop, whose position comes from :func:`uniform_window` (the same generator calls as
``transforms.random_crop``, so a seeded sample gets the same crop either way) or, for a crop around
a box, from the boxes in the resized frame (:func:`flip_resize_boxes`); then :func:`apply_geometry`
on the ``Sample``, or :func:`crop_image` / :func:`crop_label` / :func:`crop_boxes` on arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from multiseg.data.sample import Mirror, Sample
from multiseg.labels import IGNORE_INDEX


@dataclass(frozen=True)
class CropGeometry:
    """Where the output lies in the flipped, resized frame.

    ``width`` x ``height``: the source frame; ``resized_width`` x ``resized_height``: the frame after
    the scale (``max(1, round(side * scale))``, as ``transforms.resize``); ``top``, ``left``: the
    output's origin in the flipped, resized frame; ``out_height`` x ``out_width``: the output size
    (padded bottom/right where the resized frame is smaller); ``flip``: mirror left-right first.
    """

    width: int
    height: int
    resized_width: int
    resized_height: int
    top: int
    left: int
    out_height: int
    out_width: int
    flip: bool

    @classmethod
    def whole(cls, width: int, height: int, scale: float, flip: bool) -> CropGeometry:
        """The whole frame, flipped or not, resized by ``scale`` (no crop yet)."""
        nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
        return cls(width, height, nw, nh, 0, 0, nh, nw, flip)

    def with_window(self, top: int, left: int, height: int, width: int) -> CropGeometry:
        """The ``height`` x ``width`` window at (top, left) of the flipped, resized frame."""
        return replace(self, top=top, left=left, out_height=height, out_width=width)

    @property
    def resizes(self) -> bool:
        """False when the scale leaves the frame size unchanged (``transforms.resize`` is then a no-op)."""
        return (self.resized_width, self.resized_height) != (self.width, self.height)

    @property
    def valid_height(self) -> int:
        """Output rows that come from the frame (the rest is padding)."""
        return min(self.out_height, self.resized_height - self.top)

    @property
    def valid_width(self) -> int:
        """Output columns that come from the frame (the rest is padding)."""
        return min(self.out_width, self.resized_width - self.left)

    @property
    def window_left(self) -> int:
        """First column of the valid output in the *unflipped* resized frame."""
        if self.flip:
            return self.resized_width - self.left - self.valid_width
        return self.left


def uniform_window(geom: CropGeometry, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of a uniformly random ``height`` x ``width`` crop, drawn exactly as ``random_crop``."""
    top = int(rng.integers(0, max(geom.resized_height - height, 0) + 1))
    left = int(rng.integers(0, max(geom.resized_width - width, 0) + 1))
    return top, left


def nearest_indices(n_src: int, n_dst: int) -> np.ndarray:
    """Source index of each destination pixel, ``floor((j + 0.5) * n_src / n_dst)`` computed exactly."""
    return ((2 * np.arange(n_dst, dtype=np.int64) + 1) * n_src) // (2 * n_dst)


def _pad(valid: np.ndarray, geom: CropGeometry, value: int) -> np.ndarray:
    """``valid`` padded bottom/right to the output size with ``value`` (a contiguous array either way)."""
    ph, pw = geom.out_height - valid.shape[0], geom.out_width - valid.shape[1]
    if ph or pw:
        return cv2.copyMakeBorder(valid, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=value)
    return np.ascontiguousarray(valid)


def _source_end(end: int, n_src: int, n_dst: int) -> int:
    """Source pixels a linear resize needs for destination pixels ``[0, end)``, plus a 2-pixel margin."""
    return min(n_src, math.ceil(end * n_src / n_dst) + 2)


def crop_image(image: np.ndarray, geom: CropGeometry) -> np.ndarray:
    """The output image (HxW or HxWxC uint8): linear resize of only the needed prefix, flip, pad with 0."""
    vh, vw, x0, y0 = geom.valid_height, geom.valid_width, geom.window_left, geom.top
    if geom.resizes:
        xe = _source_end(x0 + vw, geom.width, geom.resized_width)
        ye = _source_end(y0 + vh, geom.height, geom.resized_height)
        scaled = cv2.resize(
            image[:ye, :xe],
            None,
            fx=geom.resized_width / geom.width,
            fy=geom.resized_height / geom.height,
            interpolation=cv2.INTER_LINEAR,
        )
    else:
        scaled = image
    window = scaled[y0 : y0 + vh, x0 : x0 + vw]
    if geom.flip:
        window = cv2.flip(window, 1)
    return _pad(window, geom, 0)


def crop_label(label: np.ndarray, geom: CropGeometry, mirror_lut: np.ndarray | None = None) -> np.ndarray:
    """The output label: exact nearest neighbour of the kept pixels, ``mirror_lut`` if flipped, 255 pad."""
    vh, vw = geom.valid_height, geom.valid_width
    rows = nearest_indices(geom.height, geom.resized_height)[geom.top : geom.top + vh]
    cols = nearest_indices(geom.width, geom.resized_width)[geom.left : geom.left + vw]
    if geom.flip:
        cols = geom.width - 1 - cols
    window = np.take(np.take(label, rows, axis=0), cols, axis=1)
    if geom.flip and mirror_lut is not None:
        window = cv2.LUT(window, mirror_lut)
    return _pad(window, geom, IGNORE_INDEX)


def flip_resize_boxes(boxes: np.ndarray, geom: CropGeometry) -> np.ndarray:
    """Half-open float64 Kx4 boxes in the flipped, resized frame (before the crop), as hflip -> resize."""
    if geom.flip:
        flipped = boxes.copy()
        flipped[:, 0], flipped[:, 2] = geom.width - boxes[:, 2], geom.width - boxes[:, 0]
        boxes = flipped
    if geom.resizes:
        nw, nh, w, h = geom.resized_width, geom.resized_height, geom.width, geom.height
        boxes = (boxes * np.array([nw, nh, nw, nh], np.float64)) / np.array([w, h, w, h], np.float64)
    return boxes


def crop_boxes(boxes: np.ndarray, geom: CropGeometry) -> np.ndarray:
    """Half-open float64 Kx4 boxes through flip -> resize -> crop, with the transforms' exact arithmetic."""
    return flip_resize_boxes(boxes, geom) - np.array([geom.left, geom.top, geom.left, geom.top], np.float64)


def apply_geometry(sample: Sample, mirror: Mirror, geom: CropGeometry) -> Sample:
    """``sample`` flipped (through ``mirror``), resized and cropped as ``geom`` says, in one pass.

    The same result as ``transforms.hflip`` (if ``geom.flip``), ``resize`` and ``crop`` in a row:
    labels and boxes identical, images within 1 grey level. ``geom.flip`` must already respect
    ``mirror.can_flip``; box classes and label values are renamed through ``mirror`` as ``hflip`` does.
    """
    classes = sample.box_classes
    if geom.flip and mirror.box_class_map is not None and classes.size:
        classes = mirror.box_class_map[classes]
    return replace(
        sample,
        image=crop_image(sample.image, geom),
        label=crop_label(sample.label, geom, mirror.label_lut),
        boxes=crop_boxes(sample.boxes, geom),
        box_classes=classes,
        flipped=sample.flipped or geom.flip,
    )
