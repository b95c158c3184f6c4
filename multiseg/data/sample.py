"""A decoded sample and what a horizontal flip does to a dataset's classes.

The types every reader (:mod:`.cityscapes`, :mod:`.gtsdb`, :mod:`.vistas`, :mod:`.folder`) produces and
every transform (:mod:`.transforms`, :mod:`.fastgeom`) consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    """One decoded sample on its way through the transforms.

    ``label`` is an HxW uint8 target (255 = ignore) or, for box-only datasets, a validity map
    (0 = inside the image, 255 = padding) that the dataset turns into a target afterwards.
    ``boxes`` are float64 Kx4 half-open ``(x1, y1, x2, y2)`` (float64 keeps resize ties exact; the
    output is float32); they are *not* clipped by the
    transforms (a shape drawn for a box cut by the crop must keep its full outline) — call
    :func:`clip_boxes` at the end.
    """

    image: np.ndarray
    label: np.ndarray
    boxes: np.ndarray
    box_classes: np.ndarray
    flipped: bool = False


@dataclass(frozen=True)
class Mirror:
    """What a horizontal flip does to a dataset's classes.

    ``label_lut``: 256-entry uint8 table applied to the flipped label (None = classes unchanged),
    e.g. Vistas v2.0 arrow-left <-> arrow-right. ``box_class_map``: class -> class for boxes, -1 =
    no mirror twin, which vetoes the flip of a sample containing that class (see module docstring).
    """

    label_lut: np.ndarray | None = None
    box_class_map: np.ndarray | None = None

    def can_flip(self, box_classes: np.ndarray) -> bool:
        """False when some box class has no mirror twin."""
        if self.box_class_map is None or box_classes.size == 0:
            return True
        return bool((self.box_class_map[box_classes] >= 0).all())


def swap_lut(pairs: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> np.ndarray | None:
    """A 256-entry identity table with each pair (a, b) swapped; None when there is nothing to swap."""
    if not pairs:
        return None
    lut = np.arange(256, dtype=np.uint8)
    for a, b in pairs:
        lut[a], lut[b] = b, a
    return lut
