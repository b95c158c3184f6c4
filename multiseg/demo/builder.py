"""The demo scene's vocabulary and camera: world classes, flat shapes, palettes and the 3-D builder.

Scene coordinates: ``y`` runs from 0 (top) to 1 (bottom of the frame), ``x`` from ``-aspect/2``
to ``+aspect/2``; a renderer maps them to pixels by multiplying with the frame height. The street
itself is 3-D (metres: ``X`` right, ``Y`` up, ``Z`` forward) and seen by a pinhole camera
(:class:`Builder`), so lanes converge, objects shrink with distance and occlude one another in
painter's order (far to near). Every shape carries an internal "world class" (:class:`WC`) that the
writers map to each dataset's label ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

Color = tuple[float, float, float]


class WC(IntEnum):
    """Internal world classes; each maps to one Cityscapes label id and one Vistas v1.2 index."""

    UNLABELED = 0
    SKY = 1
    BUILDING = 2
    WALL = 3
    FENCE = 4
    VEGETATION = 5
    TERRAIN = 6
    ROAD = 7
    LANE_MARKING = 8
    CROSSWALK_PLAIN = 9
    CROSSWALK_ZEBRA = 10
    SIDEWALK = 11
    CURB = 12
    MANHOLE = 13
    POLE = 14
    STREET_LIGHT = 15
    TRAFFIC_LIGHT = 16
    TRAFFIC_SIGN = 17
    PERSON = 18
    BICYCLIST = 19
    MOTORCYCLIST = 20
    CAR = 21
    TRUCK = 22
    BUS = 23
    ON_RAILS = 24
    BICYCLE = 25
    MOTORCYCLE = 26
    EGO_VEHICLE = 27


NUM_WORLD_CLASSES = len(WC)


@dataclass
class Shape:
    """One filled region: its world class, flat colour, contours (even-odd filled) and object key.

    ``obj`` is 0 for stuff and a per-scene object number for things (all parts of one car share it).
    A traffic sign has ``sign`` = its GTSDB class and ``box`` = (x0, y0, x1, y1) of its sprite.
    """

    cls: WC
    color: Color
    contours: list[np.ndarray]
    obj: int = 0
    sign: int = -1
    box: tuple[float, float, float, float] | None = None
    gain: float = 1.0


@dataclass
class Scene:
    """A frame's content: the shapes in painter's order for a frame of the given aspect (W/H)."""

    aspect: float
    shapes: list[Shape]


@dataclass(frozen=True)
class SceneStyle:
    """What a camera/dataset sees: framing, street type and how many signs, in scene units."""

    focal: tuple[float, float] = (0.95, 1.1)
    horizon: tuple[float, float] = (0.4, 0.48)
    cam_height: tuple[float, float] = (1.3, 1.7)
    urban: float = 0.75
    n_signs: tuple[int, int] = (1, 3)
    sign_size: tuple[float, float] = (0.045, 0.15)
    occlude_signs: float = 0.2
    ego_hood: bool = False
    people: float = 1.0


@dataclass
class Item:
    """An object (several shapes) waiting to be depth-sorted; ``z`` is its nearest depth."""

    z: float
    shapes: list[Shape]

    def bbox(self) -> tuple[float, float, float, float]:
        pts = np.concatenate([c for s in self.shapes for c in s.contours])
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


# --- palettes ----------------------------------------------------------------------------------

CAR_COLORS: tuple[Color, ...] = (
    (235, 235, 235), (25, 25, 28), (160, 165, 170), (95, 100, 105), (30, 45, 95), (150, 25, 25),
    (40, 80, 150), (60, 90, 60), (200, 200, 190), (120, 90, 60),
)  # fmt: skip
FACADE_COLORS: tuple[Color, ...] = (
    (200, 190, 170), (170, 160, 150), (150, 90, 70), (220, 215, 200), (180, 170, 130),
    (130, 130, 135), (200, 170, 140), (160, 120, 100),
)  # fmt: skip
CLOTHES: tuple[Color, ...] = (
    (30, 30, 35), (40, 50, 90), (150, 30, 40), (200, 200, 200), (60, 90, 60), (90, 70, 50),
    (180, 120, 40), (60, 60, 70), (120, 40, 110), (30, 100, 140),
)  # fmt: skip
SKIN: tuple[Color, ...] = ((235, 195, 165), (200, 150, 110), (140, 95, 65), (95, 65, 45))
GLASS: Color = (45, 55, 70)
PARKING_W = 2.3


def jitter(rng: np.random.Generator, c: Color, amount: float = 12.0, scale: float = 0.1) -> Color:
    """A colour with a random brightness factor and small per-channel jitter (0..255)."""
    k = 1.0 + rng.uniform(-scale, scale)
    r, g, b = (float(np.clip(v * k + rng.uniform(-amount, amount), 0, 255)) for v in c)
    return (r, g, b)


def shade(c: Color, k: float) -> Color:
    return (min(255.0, c[0] * k), min(255.0, c[1] * k), min(255.0, c[2] * k))


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], -1)


class Builder:
    """Camera geometry plus helpers that turn 3-D street parts into scene-space shapes."""

    def __init__(self, rng: np.random.Generator, aspect: float, style: SceneStyle) -> None:
        self.rng = rng
        self.aspect = aspect
        self.style = style
        self.f = rng.uniform(*style.focal)
        self.h = rng.uniform(*style.horizon)
        self.hc = rng.uniform(*style.cam_height)
        self.vx = rng.uniform(-0.08, 0.08) * aspect
        self.next_obj = 1
        self.background: list[Shape] = []
        self.items: list[Item] = []
        self.foreground: list[Shape] = []
        self.sign_boxes: list[tuple[tuple[float, float, float, float], float]] = []

    # geometry --------------------------------------------------------------------------------
    def proj(self, X: Sequence[float], Y: Sequence[float], Z: Sequence[float]) -> np.ndarray:
        """3-D points (metres) -> scene coordinates, (N, 2)."""
        Xa, Ya, Za = (np.asarray(v, np.float64) for v in (X, Y, Z))
        return np.stack([self.vx + self.f * Xa / Za, self.h + self.f * (self.hc - Ya) / Za], -1)

    def ground(self, X0: float, X1: float, Z0: float, Z1: float) -> np.ndarray:
        return self.proj([X0, X1, X1, X0], [0, 0, 0, 0], [Z0, Z0, Z1, Z1])

    def side_plane(self, X: float, Z0: float, Z1: float, Y0: float, Y1: float) -> np.ndarray:
        return self.proj([X, X, X, X], [Y0, Y0, Y1, Y1], [Z0, Z1, Z1, Z0])

    def front_plane(self, X0: float, X1: float, Z: float, Y0: float, Y1: float) -> np.ndarray:
        return self.proj([X0, X1, X1, X0], [Y0, Y0, Y1, Y1], [Z, Z, Z, Z])

    def local(self, X: float, Z: float, pts: np.ndarray, Y: float = 0.0) -> np.ndarray:
        """Billboard points in metres (u right, v up) standing at (X, Y, Z) -> scene coordinates."""
        anchor = self.proj([X], [Y], [Z])[0]
        s = self.f / Z
        return np.stack([anchor[0] + s * pts[:, 0], anchor[1] - s * pts[:, 1]], -1)

    def x_range(self, Z: float, margin: float = 0.0) -> tuple[float, float]:
        """Lateral metres visible at depth Z (frame edges minus a margin in scene units)."""
        half = self.aspect / 2 - margin
        return (-half - self.vx) * Z / self.f, (half - self.vx) * Z / self.f

    def obj(self) -> int:
        self.next_obj += 1
        return self.next_obj - 1

    def box3d(
        self,
        X0: float,
        X1: float,
        Y0: float,
        Y1: float,
        Z0: float,
        Z1: float,
        cls: WC,
        color: Color,
        obj: int,
    ) -> list[Shape]:
        """The visible faces of an axis-aligned box, back faces first, near face last."""
        out: list[Shape] = []
        if self.hc > Y1:  # the top face is visible from a camera above it
            out.append(
                Shape(cls, shade(color, 1.12), [self.proj([X0, X1, X1, X0], [Y1] * 4, [Z0, Z0, Z1, Z1])], obj)
            )
        if X0 > 0:
            out.append(Shape(cls, shade(color, 0.78), [self.side_plane(X0, Z0, Z1, Y0, Y1)], obj))
        elif X1 < 0:
            out.append(Shape(cls, shade(color, 0.78), [self.side_plane(X1, Z0, Z1, Y0, Y1)], obj))
        out.append(Shape(cls, color, [self.front_plane(X0, X1, Z0, Y0, Y1)], obj))
        return out

    def add(self, z: float, shapes: list[Shape], protect_signs: bool = True) -> bool:
        """Queue an object unless it would hide too much of a farther traffic sign."""
        if protect_signs and self.sign_boxes:
            item = Item(z, shapes)
            bx0, by0, bx1, by1 = item.bbox()
            for (sx0, sy0, sx1, sy1), sz in self.sign_boxes:
                if sz <= z:
                    continue
                ix = max(0.0, min(bx1, sx1) - max(bx0, sx0))
                iy = max(0.0, min(by1, sy1) - max(by0, sy0))
                if ix * iy > 0.15 * (sx1 - sx0) * (sy1 - sy0):
                    return False
        self.items.append(Item(z, shapes))
        return True

    def shapes(self) -> list[Shape]:
        ordered = sorted(self.items, key=lambda it: -it.z)
        return self.background + [s for it in ordered for s in it.shapes] + self.foreground


@dataclass
class Street:
    """Lateral layout in metres: road edges, sidewalk widths and where the frontage starts."""

    lanes: int
    lane_w: float
    left: float
    right: float
    walk_l: float
    walk_r: float
    oncoming: int
    z_end: float
    crosswalk: tuple[float, float, bool] | None = None
    tram_lane: int | None = None
    lane_centres: list[float] = field(default_factory=list)
    parking: tuple[bool, bool] = (False, False)

    @property
    def front_l(self) -> float:
        return self.left - 0.25 - self.walk_l

    @property
    def front_r(self) -> float:
        return self.right + 0.25 + self.walk_r
