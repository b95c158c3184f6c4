"""Box -> per-pixel target rasterisation for box-only datasets (GTSDB), made at the final resolution.

Policies (``TargetPolicy``):

* ``box``: every pixel whose centre lies inside the half-open box gets the box's class.
* ``shape``: only the pixels inside the sign's outline, inscribed in the box: a disc (prohibitory,
  mandatory, round "end of" signs), a triangle apex-up (danger), an inverted triangle (give way),
  an octagon (stop) or a diamond (priority road); see ``labels.gtsdb_class_shapes()``.

Both take an optional ignore ring of ``ring`` pixels: every pixel within ``ring`` px of the outline,
on either side, becomes 255, because a box edge is only accurate to a pixel or two and a shape
only approximates the real sign. Pixels outside every box are ``background`` (43 for GTSDB), and
padding (255 in the validity map) stays 255. Later boxes paint over earlier ones (gt.txt order).

A pixel with centre ``(i + 0.5, j + 0.5)`` is inside box ``(x1, y1, x2, y2)`` when
``x1 <= i + 0.5 < x2`` and ``y1 <= j + 0.5 < y2``: for the untransformed GTSDB box 774..815 this is
exactly the 42 inclusive columns, and it agrees with nearest-exact label resizing (transforms.py).
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from multiseg.labels import GTSDB_SHAPES, IGNORE_INDEX

TargetPolicy = Literal["box", "shape"]
TARGET_POLICIES: tuple[str, ...] = ("box", "shape")


def pixel_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Pixel index range [a, b) whose centres lie in [lo, hi), clipped to [0, size)."""
    a = max(0, math.ceil(lo - 0.5))
    b = min(size, math.ceil(hi - 0.5))
    return a, max(a, b)


def _shape_mask(shape: str, xs: np.ndarray, ys: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Boolean mask of ``shape`` inscribed in ``box`` at pixel centres ``xs`` (row) x ``ys`` (column)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    hw, hh = max((x2 - x1) / 2, 1e-6), max((y2 - y1) / 2, 1e-6)
    u = ((xs + 0.5) - (x1 + x2) / 2)[None, :] / hw
    v = ((ys + 0.5) - (y1 + y2) / 2)[:, None] / hh
    au, av = np.abs(u), np.abs(v)
    inside = (au <= 1) & (av <= 1)
    if shape == "disc":
        return inside & (u * u + v * v <= 1)
    if shape == "triangle":
        return inside & (2 * au <= v + 1)
    if shape == "inverted triangle":
        return inside & (2 * au <= 1 - v)
    if shape == "octagon":
        return inside & (au + av <= math.sqrt(2))
    if shape == "diamond":
        return inside & (au + av <= 1)
    raise ValueError(f"unknown shape {shape!r}")


def _paint(label: np.ndarray, mask: np.ndarray, top: int, left: int, value: int) -> None:
    """Set ``label`` to ``value`` where ``mask`` (placed at top/left, may overhang the frame) is true."""
    h, w = label.shape
    mh, mw = mask.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + mh, h), min(left + mw, w)
    if t1 <= t0 or l1 <= l0:
        return
    region = label[t0:t1, l0:l1]
    region[mask[t0 - top : t1 - top, l0 - left : l1 - left]] = value


def rasterise_boxes(
    valid: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    *,
    policy: TargetPolicy = "box",
    ring: int = 0,
    background: int,
    class_shapes: np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel target: ``background`` where ``valid`` is 0, 255 where it is 255, box classes in boxes.

    ``boxes`` may extend past the frame (a crop cuts a sign): the outline is computed for the whole
    box and only its visible part is drawn. ``class_shapes`` maps class -> index into GTSDB_SHAPES
    (needed for ``policy="shape"``).
    """
    if policy not in TARGET_POLICIES:
        raise ValueError(f"unknown target policy {policy!r}; expected one of {TARGET_POLICIES}")
    pad = valid == IGNORE_INDEX
    label = np.full(valid.shape, background, np.uint8)
    h, w = label.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1)) if ring > 0 else None
    for box, cls in zip(boxes, classes, strict=True):
        left, right = math.ceil(box[0] - 0.5) - ring - 1, math.ceil(box[2] - 0.5) + ring + 1
        top, bottom = math.ceil(box[1] - 0.5) - ring - 1, math.ceil(box[3] - 0.5) + ring + 1
        if right <= 0 or bottom <= 0 or left >= w or top >= h:
            continue
        xs = np.arange(left, right, dtype=np.float64)
        ys = np.arange(top, bottom, dtype=np.float64)
        if policy == "box":
            mask = ((xs + 0.5 >= box[0]) & (xs + 0.5 < box[2]))[None, :] & (
                (ys + 0.5 >= box[1]) & (ys + 0.5 < box[3])
            )[:, None]
        else:
            assert class_shapes is not None, "policy 'shape' needs class_shapes"
            mask = _shape_mask(GTSDB_SHAPES[int(class_shapes[cls])], xs, ys, box)
        if kernel is not None:
            m8 = mask.astype(np.uint8)
            core = cv2.erode(m8, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
            outer = cv2.dilate(m8, kernel).astype(bool)
            _paint(label, outer & ~core, top, left, IGNORE_INDEX)
            mask = core
        _paint(label, mask, top, left, int(cls))
    label[pad] = IGNORE_INDEX
    return label
