"""The 43 GTSDB traffic signs, drawn procedurally with their category's shape and colours.

Each sign is drawn once on a square canonical canvas (RGB plus a coverage mask) and cached; the
renderer resizes the sprite to the sign's size in a frame. Every class has its own glyph, so the
classes can be told apart but not trivially. Mirror semantics follow :mod:`multiseg.labels`:
the second class of each pair in ``GTSDB_MIRROR_PAIRS`` *is* the horizontal mirror of the first,
classes in ``GTSDB_FLIP_INVARIANT`` are made exactly left-right symmetric, and all other glyphs
are handed (digits, text, figures walking one way, a diagonal "end of" bar).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np

from multiseg.labels import GTSDB_FLIP_INVARIANT, GTSDB_MIRROR_PAIRS, GTSDB_NUM_CLASSES

#: Side of the canonical sprite canvas in pixels.
CANVAS = 128
_SHIFT = 4
_SCALE = 1 << _SHIFT

RED = (200, 20, 30)
WHITE = (245, 245, 240)
BLACK = (20, 20, 22)
BLUE = (20, 70, 170)
YELLOW = (250, 190, 20)
GREY = (105, 105, 105)

Canvas = tuple[np.ndarray, np.ndarray]  # (rgb uint8 SxSx3, coverage uint8 SxS)
Point = tuple[float, float]

_MIRROR_OF: dict[int, int] = {b: a for a, b in GTSDB_MIRROR_PAIRS}


def _fx(p: Point) -> tuple[int, int]:
    """Canonical unit coordinates -> fixed-point canvas pixels (pixel centres at integers)."""
    return (round((p[0] * CANVAS - 0.5) * _SCALE), round((p[1] * CANVAS - 0.5) * _SCALE))


def _poly(c: Canvas, pts: list[Point], color: tuple[int, int, int], cover: bool = False) -> None:
    arr = np.array([_fx(p) for p in pts], np.int32)
    cv2.fillPoly(c[0], [arr], color, cv2.LINE_AA, _SHIFT)
    if cover:
        cv2.fillPoly(c[1], [arr], 255, cv2.LINE_8, _SHIFT)


def _disc(c: Canvas, center: Point, r: float, color: tuple[int, int, int], cover: bool = False) -> None:
    ctr, rad = _fx(center), round(r * CANVAS * _SCALE)
    cv2.circle(c[0], ctr, rad, color, -1, cv2.LINE_AA, _SHIFT)
    if cover:
        cv2.circle(c[1], ctr, rad, 255, -1, cv2.LINE_8, _SHIFT)


def _line(c: Canvas, pts: list[Point], color: tuple[int, int, int], width: float) -> None:
    arr = np.array([_fx(p) for p in pts], np.int32)
    th = max(1, round(width * CANVAS))
    cv2.polylines(c[0], [arr], False, color, th, cv2.LINE_AA, _SHIFT)


def _arc(center: Point, r: float, a0: float, a1: float, n: int = 24) -> list[Point]:
    """Points on a circular arc (angles in degrees, image y axis downwards)."""
    t = np.radians(np.linspace(a0, a1, n))
    return [(center[0] + r * np.cos(a), center[1] + r * np.sin(a)) for a in t]


def _arrow(c: Canvas, pts: list[Point], color: tuple[int, int, int], width: float, head: float) -> None:
    """A polyline shaft ending in a filled triangular head pointing along its last segment."""
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    d = np.array([x1 - x0, y1 - y0])
    d /= np.linalg.norm(d) + 1e-9
    n = np.array([-d[1], d[0]])
    base = np.array([x1, y1]) - d * head * 0.9
    _line(c, [*pts[:-1], (float(base[0]), float(base[1]))], color, width)
    tip = np.array([x1, y1])
    _poly(c, [tuple(tip), tuple(base + n * head * 0.6), tuple(base - n * head * 0.6)], color)


def _text(c: Canvas, text: str, center: Point, width: float, color: tuple[int, int, int]) -> None:
    """Text centred at ``center``, scaled to ``width`` (unit coordinates)."""
    font = cv2.FONT_HERSHEY_DUPLEX
    thick = max(2, CANVAS // 22)
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
    scale = width * CANVAS / tw
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (round(center[0] * CANVAS - tw / 2), round(center[1] * CANVAS + th / 2))
    cv2.putText(c[0], text, org, font, scale, color, thick, cv2.LINE_AA)


def _symmetrize(c: Canvas) -> None:
    """Make the canvas exactly left-right symmetric by mirroring its left half onto the right."""
    half = CANVAS // 2
    for a in c:
        a[:, CANVAS - half :] = a[:, :half][:, ::-1]


# --- base shapes -------------------------------------------------------------------------------


def _round_sign(c: Canvas, ring: tuple[int, int, int], ground: tuple[int, int, int], ring_w: float) -> None:
    _disc(c, (0.5, 0.5), 0.5, WHITE, cover=True)
    _disc(c, (0.5, 0.5), 0.47, ring)
    _disc(c, (0.5, 0.5), 0.47 - ring_w, ground)


def _prohibitory(c: Canvas) -> None:
    _round_sign(c, RED, WHITE, 0.1)


def _mandatory(c: Canvas) -> None:
    _round_sign(c, BLUE, BLUE, 0.0)


def _end_of(c: Canvas) -> None:
    _round_sign(c, (90, 90, 90), WHITE, 0.025)


def _triangle(c: Canvas, up: bool = True) -> None:
    def tri(inset: float) -> list[Point]:
        if up:
            return [
                (0.5, 0.06 + 1.9 * inset),
                (0.98 - 1.7 * inset, 0.90 - inset),
                (0.02 + 1.7 * inset, 0.90 - inset),
            ]
        return [
            (0.5, 0.94 - 1.9 * inset),
            (0.98 - 1.7 * inset, 0.10 + inset),
            (0.02 + 1.7 * inset, 0.10 + inset),
        ]

    _poly(c, tri(0.0), WHITE, cover=True)
    _poly(c, tri(0.02), RED)
    _poly(c, tri(0.11), WHITE)


def _octagon(c: Canvas) -> None:
    def octa(r: float) -> list[Point]:
        return [(0.5 + r * np.cos(a), 0.5 + r * np.sin(a)) for a in np.radians(np.arange(22.5, 360, 45))]

    _poly(c, octa(0.54), WHITE, cover=True)
    _poly(c, octa(0.5), RED)


def _diamond(c: Canvas) -> None:
    def dia(r: float) -> list[Point]:
        return [(0.5, 0.5 - r), (0.5 + r, 0.5), (0.5, 0.5 + r), (0.5 - r, 0.5)]

    _poly(c, dia(0.5), WHITE, cover=True)
    _poly(c, dia(0.46), BLACK)
    _poly(c, dia(0.43), WHITE)
    _poly(c, dia(0.3), YELLOW)


# --- glyph pieces ------------------------------------------------------------------------------


def _car(c: Canvas, x: float, y: float, s: float, color: tuple[int, int, int]) -> None:
    """Side-view car, front to the right, centred at (x, y), length ``s``."""
    _poly(c, [(x - s / 2, y), (x + s / 2, y), (x + s / 2, y - 0.22 * s), (x - s / 2, y - 0.25 * s)], color)
    _poly(
        c,
        [
            (x - 0.3 * s, y - 0.24 * s),
            (x + 0.1 * s, y - 0.23 * s),
            (x + 0.0 * s, y - 0.45 * s),
            (x - 0.25 * s, y - 0.45 * s),
        ],
        color,
    )
    _disc(c, (x - 0.28 * s, y + 0.02 * s), 0.1 * s, color)
    _disc(c, (x + 0.3 * s, y + 0.02 * s), 0.1 * s, color)


def _truck(c: Canvas, x: float, y: float, s: float, color: tuple[int, int, int]) -> None:
    """Side-view truck, cab to the right, centred at (x, y), length ``s``."""
    _poly(
        c, [(x - s / 2, y), (x + 0.18 * s, y), (x + 0.18 * s, y - 0.42 * s), (x - s / 2, y - 0.42 * s)], color
    )
    _poly(
        c,
        [
            (x + 0.22 * s, y),
            (x + s / 2, y),
            (x + s / 2, y - 0.2 * s),
            (x + 0.4 * s, y - 0.32 * s),
            (x + 0.22 * s, y - 0.32 * s),
        ],
        color,
    )
    for wx in (-0.32, 0.0, 0.36):
        _disc(c, (x + wx * s, y + 0.03 * s), 0.08 * s, color)


def _walker(c: Canvas, x: float, y: float, h: float, color: tuple[int, int, int]) -> None:
    """A figure striding to the right; feet at (x, y), height ``h``."""
    w = h * 0.09
    _disc(c, (x + 0.08 * h, y - 0.9 * h), 0.1 * h, color)
    _line(c, [(x + 0.06 * h, y - 0.78 * h), (x, y - 0.42 * h)], color, w)
    _line(c, [(x, y - 0.42 * h), (x + 0.2 * h, y)], color, w)
    _line(c, [(x, y - 0.42 * h), (x - 0.18 * h, y - 0.02 * h)], color, w)
    _line(c, [(x + 0.05 * h, y - 0.7 * h), (x + 0.25 * h, y - 0.5 * h)], color, w * 0.8)
    _line(c, [(x + 0.05 * h, y - 0.7 * h), (x - 0.15 * h, y - 0.48 * h)], color, w * 0.8)


def _end_bar(c: Canvas) -> None:
    """The grey/black diagonal "end of restriction" band, upper right to lower left."""
    for k in (-0.06, -0.02, 0.02, 0.06):
        _line(c, [(0.82 + k, 0.18 + k), (0.18 + k, 0.82 + k)], (40, 40, 40), 0.025)


def _speed(text: str) -> Callable[[Canvas], None]:
    def draw(c: Canvas) -> None:
        _prohibitory(c)
        _text(c, text, (0.5, 0.5), 0.5 if len(text) == 2 else 0.6, BLACK)

    return draw


# --- per-class drawings ------------------------------------------------------------------------


def _c6(c: Canvas) -> None:
    _end_of(c)
    _text(c, "80", (0.5, 0.5), 0.44, (95, 95, 95))
    _end_bar(c)


def _c9(c: Canvas) -> None:
    _prohibitory(c)
    _car(c, 0.35, 0.6, 0.3, RED)
    _car(c, 0.66, 0.6, 0.3, BLACK)


def _c10(c: Canvas) -> None:
    _prohibitory(c)
    _truck(c, 0.35, 0.62, 0.32, RED)
    _car(c, 0.68, 0.6, 0.28, BLACK)


def _c11(c: Canvas) -> None:
    _triangle(c)
    _line(c, [(0.5, 0.36), (0.5, 0.8)], BLACK, 0.08)
    _line(c, [(0.34, 0.55), (0.66, 0.55)], BLACK, 0.06)


def _c13(c: Canvas) -> None:
    _triangle(c, up=False)


def _c14(c: Canvas) -> None:
    _octagon(c)
    _text(c, "STOP", (0.5, 0.5), 0.72, WHITE)


def _c15(c: Canvas) -> None:
    _prohibitory(c)


def _c16(c: Canvas) -> None:
    _prohibitory(c)
    _truck(c, 0.5, 0.62, 0.5, BLACK)


def _c17(c: Canvas) -> None:
    _disc(c, (0.5, 0.5), 0.5, WHITE, cover=True)
    _disc(c, (0.5, 0.5), 0.47, RED)
    _poly(c, [(0.2, 0.42), (0.8, 0.42), (0.8, 0.58), (0.2, 0.58)], WHITE)


def _c18(c: Canvas) -> None:
    _triangle(c)
    _poly(c, [(0.46, 0.36), (0.54, 0.36), (0.52, 0.67), (0.48, 0.67)], BLACK)
    _disc(c, (0.5, 0.75), 0.04, BLACK)


def _c19(c: Canvas) -> None:
    _triangle(c)
    _arrow(
        c, [(0.56, 0.8), (0.56, 0.6), *_arc((0.42, 0.6), 0.14, 0, -80, 8)[1:], (0.38, 0.45)], BLACK, 0.06, 0.1
    )


def _c21(c: Canvas) -> None:
    _triangle(c)
    pts = [*_arc((0.6, 0.72), 0.1, 180, 270, 6), *_arc((0.6, 0.52), 0.1, 90, -10, 8)]
    _arrow(c, [(0.5, 0.82), *pts, (0.64, 0.38)], BLACK, 0.05, 0.09)


def _c22(c: Canvas) -> None:
    _triangle(c)
    bumps = [
        (0.26, 0.74),
        *_arc((0.38, 0.74), 0.1, 180, 360, 8),
        *_arc((0.62, 0.74), 0.1, 180, 360, 8),
        (0.74, 0.74),
    ]
    _poly(c, [*bumps, (0.74, 0.78), (0.26, 0.78)], BLACK)


def _c23(c: Canvas) -> None:
    _triangle(c)
    _car(c, 0.5, 0.56, 0.3, BLACK)
    _line(c, [(0.34, 0.78), (0.42, 0.68), (0.5, 0.78), (0.58, 0.68)], BLACK, 0.03)
    _line(c, [(0.5, 0.84), (0.58, 0.74), (0.66, 0.84)], BLACK, 0.03)


def _c24(c: Canvas) -> None:
    _triangle(c)
    _line(c, [(0.4, 0.36), (0.4, 0.82)], BLACK, 0.06)
    _line(c, [(0.62, 0.82), (0.62, 0.62), (0.54, 0.5), (0.54, 0.36)], BLACK, 0.06)


def _c25(c: Canvas) -> None:
    _triangle(c)
    _walker(c, 0.5, 0.8, 0.38, BLACK)
    _line(c, [(0.62, 0.52), (0.72, 0.8)], BLACK, 0.03)
    _poly(c, [(0.24, 0.8), (0.3, 0.7), (0.38, 0.8)], BLACK)


def _c26(c: Canvas) -> None:
    _triangle(c)
    _poly(c, [(0.43, 0.36), (0.57, 0.36), (0.57, 0.82), (0.43, 0.82)], BLACK)
    for y, col in ((0.44, RED), (0.59, YELLOW), (0.74, (20, 160, 60))):
        _disc(c, (0.5, y), 0.055, col)


def _c27(c: Canvas) -> None:
    _triangle(c)
    _walker(c, 0.48, 0.8, 0.44, BLACK)


def _c28(c: Canvas) -> None:
    _triangle(c)
    _walker(c, 0.4, 0.8, 0.42, BLACK)
    _walker(c, 0.6, 0.8, 0.3, BLACK)


def _c29(c: Canvas) -> None:
    _triangle(c)
    for wx in (0.36, 0.64):
        _disc(c, (wx, 0.72), 0.09, BLACK)
        _disc(c, (wx, 0.72), 0.06, WHITE)
    _line(c, [(0.36, 0.72), (0.47, 0.56), (0.6, 0.56), (0.64, 0.72)], BLACK, 0.03)
    _line(c, [(0.47, 0.56), (0.5, 0.72), (0.6, 0.56), (0.62, 0.48), (0.67, 0.47)], BLACK, 0.03)


def _c30(c: Canvas) -> None:
    _triangle(c)
    for a in (90, 30, 150):
        dx, dy = 0.17 * np.cos(np.radians(a)), 0.17 * np.sin(np.radians(a))
        _line(c, [(0.5 - dx, 0.6 - dy), (0.5 + dx, 0.6 + dy)], BLACK, 0.035)
    _disc(c, (0.5, 0.6), 0.05, BLACK)


def _c31(c: Canvas) -> None:
    _triangle(c)
    _poly(c, [(0.32, 0.6), (0.6, 0.52), (0.64, 0.6), (0.36, 0.68)], BLACK)
    _line(c, [(0.6, 0.55), (0.68, 0.42)], BLACK, 0.05)
    _line(c, [(0.68, 0.42), (0.7, 0.34), (0.64, 0.36)], BLACK, 0.025)
    _line(c, [(0.36, 0.64), (0.26, 0.8)], BLACK, 0.03)
    _line(c, [(0.58, 0.6), (0.66, 0.8)], BLACK, 0.03)


def _c32(c: Canvas) -> None:
    _end_of(c)
    _end_bar(c)


def _c33(c: Canvas) -> None:
    _mandatory(c)
    _arrow(
        c,
        [(0.42, 0.8), (0.42, 0.5), *_arc((0.56, 0.5), 0.14, 180, 270, 6)[1:], (0.78, 0.36)],
        WHITE,
        0.1,
        0.14,
    )


def _c35(c: Canvas) -> None:
    _mandatory(c)
    _arrow(c, [(0.5, 0.82), (0.5, 0.18)], WHITE, 0.1, 0.16)


def _c36(c: Canvas) -> None:
    _mandatory(c)
    _arrow(c, [(0.44, 0.84), (0.44, 0.18)], WHITE, 0.09, 0.14)
    _arrow(c, [(0.44, 0.62), (0.56, 0.48), (0.8, 0.48)], WHITE, 0.08, 0.13)


def _c38(c: Canvas) -> None:
    _mandatory(c)
    _arrow(c, [(0.3, 0.28), (0.72, 0.72)], WHITE, 0.1, 0.16)


def _c40(c: Canvas) -> None:
    _mandatory(c)
    for start in (0, 120, 240):
        pts = _arc((0.5, 0.5), 0.24, start + 20, start + 95, 10)
        _arrow(c, pts, WHITE, 0.07, 0.12)


def _c41(c: Canvas) -> None:
    _end_of(c)
    _car(c, 0.35, 0.6, 0.3, GREY)
    _car(c, 0.66, 0.6, 0.3, GREY)
    _end_bar(c)


def _c42(c: Canvas) -> None:
    _end_of(c)
    _truck(c, 0.35, 0.62, 0.32, GREY)
    _car(c, 0.68, 0.6, 0.28, GREY)
    _end_bar(c)


_DRAW: dict[int, Callable[[Canvas], None]] = {
    0: _speed("20"),
    1: _speed("30"),
    2: _speed("50"),
    3: _speed("60"),
    4: _speed("70"),
    5: _speed("80"),
    6: _c6,
    7: _speed("100"),
    8: _speed("120"),
    9: _c9,
    10: _c10,
    11: _c11,
    12: _diamond,
    13: _c13,
    14: _c14,
    15: _c15,
    16: _c16,
    17: _c17,
    18: _c18,
    19: _c19,
    21: _c21,
    22: _c22,
    23: _c23,
    24: _c24,
    25: _c25,
    26: _c26,
    27: _c27,
    28: _c28,
    29: _c29,
    30: _c30,
    31: _c31,
    32: _c32,
    33: _c33,
    35: _c35,
    36: _c36,
    38: _c38,
    40: _c40,
    41: _c41,
    42: _c42,
}


@lru_cache(maxsize=GTSDB_NUM_CLASSES)
def canonical_sign(class_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The class's sign on the canonical canvas: (RGB uint8 HxWx3, boolean mask of the sign's pixels).

    Cached and returned read-only; the second class of a mirror pair is the exact mirror of the first.
    """
    if not 0 <= class_id < GTSDB_NUM_CLASSES:
        raise ValueError(f"GTSDB class id must be in 0..{GTSDB_NUM_CLASSES - 1}, got {class_id}")
    if class_id in _MIRROR_OF:
        rgb, mask = canonical_sign(_MIRROR_OF[class_id])
        rgb, mask = np.ascontiguousarray(rgb[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
    else:
        c: Canvas = (np.zeros((CANVAS, CANVAS, 3), np.uint8), np.zeros((CANVAS, CANVAS), np.uint8))
        _DRAW[class_id](c)
        if class_id in GTSDB_FLIP_INVARIANT:
            _symmetrize(c)
        rgb, mask = c[0], c[1] > 0
    rgb.flags.writeable = False
    mask.flags.writeable = False
    return rgb, mask


def render_sign(class_id: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The sign resized to ``width`` x ``height`` pixels: (RGB uint8, boolean mask of its own pixels)."""
    rgb, mask = canonical_sign(class_id)
    size = (max(1, width), max(1, height))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    cover = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return small, cover >= 0.5
