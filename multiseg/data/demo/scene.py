"""A random street scene as a list of flat shapes in resolution-independent coordinates.

Scene coordinates: ``y`` runs from 0 (top) to 1 (bottom of the frame), ``x`` from ``-aspect/2``
to ``+aspect/2``; a renderer maps them to pixels by multiplying with the frame height. The street
itself is 3-D (metres: ``X`` right, ``Y`` up, ``Z`` forward) and seen by a pinhole camera, so lanes
converge, objects shrink with distance and occlude one another in painter's order (far to near).
Every shape carries an internal "world class" (:class:`WC`) that the writers map to each dataset's
label ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from multiseg.data.labels import GTSDB_NUM_CLASSES

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
class _Item:
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


def _jit(rng: np.random.Generator, c: Color, amount: float = 12.0, scale: float = 0.1) -> Color:
    """A colour with a random brightness factor and small per-channel jitter (0..255)."""
    k = 1.0 + rng.uniform(-scale, scale)
    r, g, b = (float(np.clip(v * k + rng.uniform(-amount, amount), 0, 255)) for v in c)
    return (r, g, b)


def _shade(c: Color, k: float) -> Color:
    return (min(255.0, c[0] * k), min(255.0, c[1] * k), min(255.0, c[2] * k))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], -1)


class _Builder:
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
        self.items: list[_Item] = []
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
                Shape(
                    cls, _shade(color, 1.12), [self.proj([X0, X1, X1, X0], [Y1] * 4, [Z0, Z0, Z1, Z1])], obj
                )
            )
        if X0 > 0:
            out.append(Shape(cls, _shade(color, 0.78), [self.side_plane(X0, Z0, Z1, Y0, Y1)], obj))
        elif X1 < 0:
            out.append(Shape(cls, _shade(color, 0.78), [self.side_plane(X1, Z0, Z1, Y0, Y1)], obj))
        out.append(Shape(cls, color, [self.front_plane(X0, X1, Z0, Y0, Y1)], obj))
        return out

    def add(self, z: float, shapes: list[Shape], protect_signs: bool = True) -> bool:
        """Queue an object unless it would hide too much of a farther traffic sign."""
        if protect_signs and self.sign_boxes:
            item = _Item(z, shapes)
            bx0, by0, bx1, by1 = item.bbox()
            for (sx0, sy0, sx1, sy1), sz in self.sign_boxes:
                if sz <= z:
                    continue
                ix = max(0.0, min(bx1, sx1) - max(bx0, sx0))
                iy = max(0.0, min(by1, sy1) - max(by0, sy0))
                if ix * iy > 0.15 * (sx1 - sx0) * (sy1 - sy0):
                    return False
        self.items.append(_Item(z, shapes))
        return True

    def shapes(self) -> list[Shape]:
        ordered = sorted(self.items, key=lambda it: -it.z)
        return self.background + [s for it in ordered for s in it.shapes] + self.foreground


@dataclass
class _Street:
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


# --- background: sky, ground, street, frontage -------------------------------------------------


def _sky(b: _Builder) -> None:
    rng, a = b.rng, b.aspect
    base = _jit(rng, (120, 165, 215) if rng.random() < 0.6 else (175, 185, 195), 10)
    b.background.append(
        Shape(WC.SKY, base, [np.array([[-a, -1], [a, -1], [a, b.h + 0.02], [-a, b.h + 0.02]])])
    )
    for _ in range(rng.integers(0, 5)):
        cx, cy = rng.uniform(-a / 2, a / 2), rng.uniform(0.0, b.h * 0.7)
        b.background.append(
            Shape(
                WC.SKY,
                _jit(rng, (225, 228, 232), 8),
                [_ellipse(cx, cy, rng.uniform(0.05, 0.2), rng.uniform(0.02, 0.05))],
            )
        )


def _street(b: _Builder) -> _Street:
    rng = b.rng
    lanes = int(rng.choice([2, 2, 3, 4]))
    lane_w = rng.uniform(3.0, 3.5)
    oncoming = lanes // 2 if rng.random() < 0.8 else 0
    ego = int(rng.integers(oncoming, lanes))
    lanes_left = -(ego + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
    parking = (bool(rng.random() < 0.3), bool(rng.random() < 0.45))
    st = _Street(
        lanes=lanes,
        lane_w=lane_w,
        left=lanes_left - PARKING_W * parking[0],
        right=lanes_left + lanes * lane_w + PARKING_W * parking[1],
        walk_l=rng.uniform(2.0, 4.5),
        walk_r=rng.uniform(2.0, 4.5),
        oncoming=oncoming,
        z_end=rng.uniform(70, 160),
    )
    st.parking = parking
    st.lane_centres = [lanes_left + (i + 0.5) * lane_w for i in range(lanes)]
    if rng.random() < 0.65:
        st.crosswalk = (rng.uniform(8, 20), rng.uniform(3.0, 4.5), bool(rng.random() < 0.5))
    if rng.random() < 0.25:
        st.tram_lane = int(rng.integers(0, lanes))
    return st


def _ground(b: _Builder, st: _Street) -> None:
    rng, bg = b.rng, b.background
    zn, zf = 0.4, st.z_end
    a = b.aspect
    bg.append(
        Shape(WC.TERRAIN, _jit(rng, (125, 150, 75), 12), [np.array([[-a, b.h], [a, b.h], [a, 2], [-a, 2]])])
    )
    road = _jit(rng, (88, 88, 92), 6, 0.15)
    bg.append(Shape(WC.ROAD, road, [b.ground(st.left, st.right, zn, zf)]))
    for _ in range(rng.integers(0, 4)):  # asphalt patches
        x0 = rng.uniform(st.left, st.right - 1.5)
        z0 = rng.uniform(3, 40)
        patch = b.ground(x0, x0 + rng.uniform(1, 3), z0, z0 + rng.uniform(2, 8))
        bg.append(Shape(WC.ROAD, _shade(road, rng.uniform(0.8, 1.15)), [patch]))
    walk = _jit(rng, (175, 170, 165) if rng.random() < 0.7 else (170, 120, 110), 10)
    curb = _jit(rng, (190, 190, 185), 8)
    for sign, edge, width in ((-1, st.left, st.walk_l), (1, st.right, st.walk_r)):
        c0, c1 = sorted((edge, edge + sign * 0.25))
        w0, w1 = sorted((edge + sign * 0.25, edge + sign * (0.25 + width)))
        bg.append(Shape(WC.SIDEWALK, walk, [b.ground(w0, w1, zn, zf)]))
        for z in np.arange(rng.uniform(1, 2.5), 40, rng.uniform(1.2, 2.0)):  # paving joints
            bg.append(Shape(WC.SIDEWALK, _shade(walk, 0.8), [b.ground(w0, w1, z, z + 0.06)]))
        bg.append(Shape(WC.CURB, curb, [b.ground(c0, c1, zn, zf)]))
        bg.append(Shape(WC.CURB, _shade(curb, 0.75), [b.side_plane(edge, zn, zf, 0.0, 0.14)]))
    if st.tram_lane is not None:
        xc = st.lane_centres[st.tram_lane]
        for dx in (-0.72, 0.72):
            bg.append(Shape(WC.ROAD, _shade(road, 0.6), [b.ground(xc + dx - 0.05, xc + dx + 0.05, zn, zf)]))
    _markings(b, st)
    for _ in range(rng.integers(1, 4)):
        _manhole(b, st)


def _markings(b: _Builder, st: _Street) -> None:
    rng, bg = b.rng, b.background
    paint = _jit(rng, (235, 235, 230), 8)
    w = rng.uniform(0.12, 0.18)
    zf = st.z_end
    cw = st.crosswalk
    spans = [(0.4, zf)] if cw is None else [(0.4, cw[0] - 1.6), (cw[0] + cw[1] + 0.8, zf)]

    def line(x: float, dashed: bool) -> None:
        for z0, z1 in spans:
            if not dashed:
                bg.append(Shape(WC.LANE_MARKING, paint, [b.ground(x - w / 2, x + w / 2, z0, z1)]))
                continue
            period, dash = rng.uniform(8, 12), rng.uniform(3, 4.5)
            for z in np.arange(z0 + rng.uniform(0, period), z1, period):
                bg.append(
                    Shape(WC.LANE_MARKING, paint, [b.ground(x - w / 2, x + w / 2, z, min(z + dash, z1))])
                )

    lanes_left = st.lane_centres[0] - st.lane_w / 2
    for i in range(1, st.lanes):
        line(lanes_left + i * st.lane_w, dashed=not (i == st.oncoming and rng.random() < 0.6))
    if rng.random() < 0.6:
        line(lanes_left + 0.3, dashed=False)
        line(lanes_left + st.lanes * st.lane_w - 0.3, dashed=False)
    if cw is not None:
        _crosswalk(b, st, cw, paint)


def _crosswalk(b: _Builder, st: _Street, cw: tuple[float, float, bool], paint: Color) -> None:
    z0, depth, zebra = cw
    bg = b.background
    stop_from = st.lane_centres[0] - st.lane_w / 2 + st.oncoming * st.lane_w
    bg.append(Shape(WC.LANE_MARKING, paint, [b.ground(stop_from, st.right, z0 - 1.2, z0 - 0.8)]))
    if zebra:
        for x in np.arange(st.left + 0.4, st.right - 0.5, 1.0):
            bg.append(Shape(WC.CROSSWALK_ZEBRA, paint, [b.ground(x, x + 0.5, z0, z0 + depth)]))
        return
    tone = _jit(b.rng, (150, 95, 90) if b.rng.random() < 0.5 else (140, 140, 150), 10)
    bg.append(Shape(WC.CROSSWALK_PLAIN, tone, [b.ground(st.left, st.right, z0 + 0.3, z0 + depth - 0.3)]))
    for zz in (z0, z0 + depth - 0.3):
        bg.append(Shape(WC.LANE_MARKING, paint, [b.ground(st.left, st.right, zz, zz + 0.3)]))


def _manhole(b: _Builder, st: _Street) -> None:
    rng = b.rng
    X = rng.uniform(st.left + 0.6, st.right - 0.6)
    Z = rng.uniform(3.5, 12)
    r = rng.uniform(0.35, 0.45)
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    ring = b.proj(X + r * np.cos(t), np.zeros_like(t), Z + r * np.sin(t))
    inner = b.proj(X + 0.75 * r * np.cos(t), np.zeros_like(t), Z + 0.75 * r * np.sin(t))
    tone = _jit(rng, (55, 55, 58), 6)
    b.background.append(Shape(WC.MANHOLE, tone, [ring]))
    b.background.append(Shape(WC.MANHOLE, _shade(tone, 1.35), [inner]))


def _frontage(b: _Builder, st: _Street, side: int) -> None:
    """Buildings, walls, fences, hedges and grass along one side, from far to near."""
    rng = b.rng
    edge = st.front_r if side > 0 else st.front_l
    segments: list[tuple[float, float]] = []
    z = 1.0
    while z < st.z_end:
        length = rng.uniform(8, 30)
        segments.append((z, min(z + length, st.z_end)))
        z += length
    for z0, z1 in reversed(segments):
        kind = rng.choice(["building", "wall", "fence", "hedge", "grass"], p=_frontage_p(b.style.urban))
        setback = rng.uniform(0.0, 4.0) if kind == "building" and rng.random() < 0.4 else 0.0
        X = edge + side * setback
        if setback > 0:
            _grass_strip(b, edge, X, z0, z1)
        if kind == "building":
            _building(b, X, side, z0, z1)
        elif kind == "wall":
            _wall(b, X, side, z0, z1)
        elif kind == "fence":
            _trees(b, X + side * rng.uniform(2, 6), z0, z1, int(rng.integers(1, 3)))
            _fence(b, X, z0, z1)
        elif kind == "hedge":
            _trees(b, X + side * rng.uniform(1, 5), z0, z1, int(rng.integers(0, 3)))
            h = rng.uniform(0.8, 2.0)
            green = _jit(rng, (60, 95, 45), 10)
            b.background.append(
                Shape(
                    WC.VEGETATION,
                    _shade(green, 1.1),
                    [b.proj([X, X, X + side, X + side], [h] * 4, [z0, z1, z1, z0])],
                )
            )
            b.background.append(Shape(WC.VEGETATION, green, [b.side_plane(X, z0, z1, 0, h)]))
        else:
            _trees(b, X + side * rng.uniform(1, 8), z0, z1, int(rng.integers(1, 4)))


def _frontage_p(urban: float) -> list[float]:
    rest = 1 - urban
    return [urban * 0.8, urban * 0.1 + rest * 0.15, urban * 0.1 + rest * 0.2, rest * 0.3, rest * 0.35]


def _grass_strip(b: _Builder, x0: float, x1: float, z0: float, z1: float) -> None:
    lo, hi = sorted((x0, x1))
    b.background.append(Shape(WC.TERRAIN, _jit(b.rng, (130, 155, 80), 10), [b.ground(lo, hi, z0, z1)]))


def _building(b: _Builder, X: float, side: int, z0: float, z1: float) -> None:
    rng, bg = b.rng, b.background
    height = rng.uniform(7, 22)
    color = _jit(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 10)
    bg.append(
        Shape(
            WC.BUILDING,
            _shade(color, 1.08),
            [b.front_plane(min(X, X + side * 12), max(X, X + side * 12), z0, 0, height)],
        )
    )
    bg.append(Shape(WC.BUILDING, color, [b.side_plane(X, z0, z1, 0, height)]))
    bg.append(Shape(WC.BUILDING, _shade(color, 0.6), [b.side_plane(X, z0, z1, height - 0.5, height)]))
    if z0 > 80:
        return
    glass = _jit(rng, GLASS, 10)
    frame_w, pitch = rng.uniform(1.0, 1.6), rng.uniform(2.4, 3.4)
    for fy in np.arange(rng.uniform(3.0, 3.6), height - 1.5, 3.1):
        for wz in np.arange(z0 + 0.8, z1 - frame_w, pitch):
            bg.append(
                Shape(
                    WC.BUILDING,
                    _shade(glass, rng.uniform(0.8, 1.4)),
                    [b.side_plane(X, wz, wz + frame_w, fy, fy + 1.5)],
                )
            )
    for wz in np.arange(z0 + 1.0, z1 - 2.5, rng.uniform(4, 7)):  # shop windows / doors
        bg.append(Shape(WC.BUILDING, _shade(glass, 0.8), [b.side_plane(X, wz, wz + 2.2, 0.0, 2.4)]))


def _wall(b: _Builder, X: float, side: int, z0: float, z1: float) -> None:
    rng, bg = b.rng, b.background
    h = rng.uniform(1.0, 2.8)
    if rng.random() < 0.6:
        _building(b, X + side * rng.uniform(3, 8), side, z0, z1)
    else:
        _trees(b, X + side * rng.uniform(2, 6), z0, z1, int(rng.integers(1, 3)))
    color = _jit(rng, (150, 140, 125) if rng.random() < 0.6 else (165, 95, 75), 12)
    bg.append(Shape(WC.WALL, color, [b.side_plane(X, z0, z1, 0, h)]))
    bg.append(
        Shape(
            WC.WALL,
            _shade(color, 1.2),
            [b.proj([X, X, X + side * 0.3, X + side * 0.3], [h] * 4, [z0, z1, z1, z0])],
        )
    )
    for y in np.arange(0.25, h - 0.1, 0.3):  # brick courses
        bg.append(Shape(WC.WALL, _shade(color, 0.82), [b.side_plane(X, z0, z1, y, y + 0.04)]))


def _fence(b: _Builder, X: float, z0: float, z1: float) -> None:
    rng, bg = b.rng, b.background
    h = rng.uniform(1.0, 2.0)
    color = _jit(rng, (110, 115, 105) if rng.random() < 0.5 else (140, 110, 80), 12)
    bg.append(Shape(WC.FENCE, _shade(color, 0.55), [b.side_plane(X, z0, z1, 0.05, h)]))
    for y in (0.15, h - 0.12):
        bg.append(Shape(WC.FENCE, color, [b.side_plane(X, z0, z1, y, y + 0.08)]))
    for z in np.arange(z0, z1, rng.uniform(0.15, 0.3)):
        bg.append(Shape(WC.FENCE, color, [b.side_plane(X, z, z + 0.05, 0.05, h)]))


def _trees(b: _Builder, X: float, z0: float, z1: float, n: int) -> None:
    for _ in range(n):
        Z = b.rng.uniform(z0, z1)
        b.background.extend(_tree_shapes(b, X, max(Z, 3.0)))


def _tree_shapes(b: _Builder, X: float, Z: float, height: float | None = None) -> list[Shape]:
    rng = b.rng
    h = height if height is not None else rng.uniform(4, 10)
    trunk = np.array([[-0.15, 0], [0.15, 0], [0.12, h * 0.6], [-0.12, h * 0.6]])
    out = [Shape(WC.VEGETATION, _jit(rng, (85, 65, 45), 8), [b.local(X, Z, trunk)])]
    green = _jit(rng, (55, 100, 40), 12, 0.2)
    for _ in range(rng.integers(3, 7)):
        cx, cy = rng.uniform(-1.2, 1.2), h * rng.uniform(0.6, 0.9)
        r = rng.uniform(1.0, 2.0)
        out.append(
            Shape(
                WC.VEGETATION,
                _shade(green, rng.uniform(0.8, 1.2)),
                [b.local(X, Z, _ellipse(cx, cy, r, r * 0.9, 16))],
            )
        )
    return out


def _far_end(b: _Builder, st: _Street) -> None:
    """What closes the view at the end of the street: a row of buildings or a tree line."""
    rng, Z = b.rng, st.z_end
    lo, hi = b.x_range(Z)
    x = lo - 5
    while x < hi + 5:
        w = rng.uniform(8, 25)
        if rng.random() < b.style.urban:
            color = _jit(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 10)
            b.background.append(
                Shape(WC.BUILDING, color, [b.front_plane(x, x + w, Z, 0, rng.uniform(8, 25))])
            )
        else:
            green = _jit(rng, (60, 95, 45), 12)
            b.background.append(
                Shape(
                    WC.VEGETATION,
                    green,
                    [b.local(x + w / 2, Z, _ellipse(0, 4, w / 2, rng.uniform(4, 8), 16))],
                )
            )
        x += w


# --- objects -----------------------------------------------------------------------------------


def _car(b: _Builder, Xc: float, Z: float, oncoming: bool) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    W, L = rng.uniform(1.7, 1.9), rng.uniform(3.9, 4.8)
    X0, X1 = Xc - W / 2, Xc + W / 2
    color = _jit(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 8)
    glass = _jit(rng, GLASS, 8)
    out = b.box3d(X0, X1, 0.3, 0.95, Z, Z + L, WC.CAR, color, o)
    out += b.box3d(X0 + 0.12, X1 - 0.12, 0.95, rng.uniform(1.35, 1.5), Z + 0.9, Z + L - 1.2, WC.CAR, glass, o)
    side = X0 if X0 > 0 else X1 if X1 < 0 else None
    tyre = (20, 20, 22)
    if side is not None:
        for zc in (Z + 0.75, Z + L - 0.75):
            t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            out.append(
                Shape(
                    WC.CAR,
                    tyre,
                    [b.proj(np.full_like(t, side), 0.32 + 0.32 * np.sin(t), zc + 0.32 * np.cos(t))],
                    o,
                )
            )
    for xa, xb in ((X0 + 0.1, X0 + 0.35), (X1 - 0.35, X1 - 0.1)):
        out.append(Shape(WC.CAR, tyre, [b.front_plane(xa, xb, Z + 0.3, 0.0, 0.32)], o))
    lamp = (245, 240, 210) if oncoming else (200, 30, 30)
    for xa, xb in ((X0 + 0.05, X0 + 0.35), (X1 - 0.35, X1 - 0.05)):
        out.append(Shape(WC.CAR, lamp, [b.front_plane(xa, xb, Z - 0.01, 0.7, 0.85)], o))
    out.append(Shape(WC.CAR, (225, 225, 220), [b.front_plane(Xc - 0.26, Xc + 0.26, Z - 0.01, 0.42, 0.54)], o))
    return out


def _truck(b: _Builder, Xc: float, Z: float, oncoming: bool) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    W = 2.5
    X0, X1 = Xc - W / 2, Xc + W / 2
    cab = _jit(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 10)
    box = _jit(rng, ((230, 230, 225), (200, 60, 40), (60, 90, 140), (180, 170, 150))[rng.integers(4)], 10)
    length = rng.uniform(6, 9)
    out: list[Shape] = []
    if oncoming:
        out += b.box3d(X0, X1, 1.0, 3.7, Z + 2.3, Z + 2.3 + length, WC.TRUCK, box, o)
        out += b.box3d(X0 + 0.05, X1 - 0.05, 0.4, 2.9, Z, Z + 2.2, WC.TRUCK, cab, o)
        out.append(
            Shape(WC.TRUCK, _jit(rng, GLASS, 6), [b.front_plane(X0 + 0.2, X1 - 0.2, Z - 0.01, 1.7, 2.7)], o)
        )
    else:
        out += b.box3d(X0 + 0.05, X1 - 0.05, 0.4, 2.9, Z + length, Z + length + 2.2, WC.TRUCK, cab, o)
        out += b.box3d(X0, X1, 1.0, 3.7, Z, Z + length, WC.TRUCK, box, o)
        for xa, xb in ((X0 + 0.1, X0 + 0.4), (X1 - 0.4, X1 - 0.1)):
            out.append(Shape(WC.TRUCK, (200, 30, 30), [b.front_plane(xa, xb, Z - 0.01, 1.05, 1.25)], o))
    for xa, xb in ((X0 + 0.1, X0 + 0.55), (X1 - 0.55, X1 - 0.1)):
        out.append(Shape(WC.TRUCK, (22, 22, 24), [b.front_plane(xa, xb, Z + 0.2, 0.0, 1.0)], o))
    out.append(Shape(WC.TRUCK, (45, 45, 48), [b.front_plane(X0 + 0.2, X1 - 0.2, Z + 0.1, 0.45, 1.0)], o))
    return out


def _long_vehicle(b: _Builder, Xc: float, Z: float, cls: WC) -> list[Shape]:
    """A bus or a tram: a long box with a window band."""
    rng = b.rng
    o = b.obj()
    if cls == WC.BUS:
        W, Y0, Y1, L = 2.55, 0.3, 3.1, rng.uniform(11, 13)
        color = _jit(
            rng, ((230, 200, 40), (200, 40, 40), (235, 235, 230), (40, 90, 160))[rng.integers(4)], 10
        )
    else:
        W, Y0, Y1, L = 2.4, 0.4, 3.4, rng.uniform(25, 32)
        color = _jit(rng, ((240, 240, 235), (200, 30, 40), (240, 210, 60))[rng.integers(3)], 8)
    X0, X1 = Xc - W / 2, Xc + W / 2
    out = b.box3d(X0, X1, Y0, Y1, Z, Z + L, cls, color, o)
    glass = _jit(rng, GLASS, 6)
    side = X0 if X0 > 0 else X1 if X1 < 0 else None
    if side is not None:
        out.append(Shape(cls, glass, [b.side_plane(side, Z + 0.5, Z + L - 0.5, 1.3, Y1 - 0.6)], o))
        out.append(Shape(cls, _shade(color, 0.7), [b.side_plane(side, Z + 0.5, Z + L - 0.5, 0.9, 1.05)], o))
    out.append(Shape(cls, glass, [b.front_plane(X0 + 0.15, X1 - 0.15, Z - 0.01, 1.4, Y1 - 0.4)], o))
    if cls == WC.ON_RAILS:
        out.append(
            Shape(
                cls,
                (40, 40, 40),
                [
                    b.proj(
                        [Xc - 0.6, Xc + 0.6, Xc + 0.6, Xc - 0.6],
                        [Y1 + 0.9, Y1 + 0.9, Y1 + 1.0, Y1 + 1.0],
                        [Z + 3] * 4,
                    )
                ],
                o,
            )
        )
        out.append(
            Shape(
                cls,
                (40, 40, 40),
                [
                    b.proj(
                        [Xc - 0.05, Xc + 0.05, Xc + 0.05, Xc - 0.05],
                        [Y1, Y1, Y1 + 0.95, Y1 + 0.95],
                        [Z + 3] * 4,
                    )
                ],
                o,
            )
        )
    else:
        for xa, xb in ((X0 + 0.1, X0 + 0.5), (X1 - 0.5, X1 - 0.1)):
            out.append(Shape(cls, (22, 22, 24), [b.front_plane(xa, xb, Z + 0.3, 0.0, 0.5)], o))
    return out


def _person(
    b: _Builder, X: float, Z: float, cls: WC = WC.PERSON, facing: int = 0, sitting: bool = False
) -> list[Shape]:
    """A standing (or, for riders, seated) figure; ``facing`` 0 = towards/away from camera, +-1 = side."""
    rng = b.rng
    o = b.obj()
    h = rng.uniform(1.6, 1.9)
    shirt = _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    pants = _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    skin = _jit(rng, SKIN[rng.integers(len(SKIN))], 6)
    hip = 0.0 if sitting else h * 0.47
    base = h * 0.45 if sitting else 0.0
    sw = 0.22 if facing == 0 else 0.14
    out: list[Shape] = []
    if not sitting:
        stride = 0.0 if facing == 0 else rng.uniform(0.1, 0.3)
        for dx, st in ((-sw * 0.5, -stride), (sw * 0.5, stride)):
            leg = np.array([[dx - 0.07 + st, 0], [dx + 0.07 + st, 0], [dx + 0.07, hip], [dx - 0.07, hip]])
            out.append(Shape(cls, pants, [b.local(X, Z, leg)], o))
    else:
        leg = np.array(
            [[-0.05, -0.1], [0.08, -0.1], [facing * 0.35 + 0.08, 0.05], [facing * 0.35 - 0.05, 0.05]]
        )
        out.append(Shape(cls, pants, [b.local(X, Z, leg, Y=base)], o))
    torso = (
        np.array([[-sw, hip], [sw, hip], [sw * 1.1, h * 0.82], [-sw * 1.1, h * 0.82]])
        if not sitting
        else None
    )
    if torso is None:
        lean = facing * 0.15
        torso = np.array([[-sw, 0], [sw, 0], [sw + lean, h * 0.36], [-sw + lean, h * 0.36]])
    out.append(Shape(cls, shirt, [b.local(X, Z, torso, Y=base)], o))
    top = float(torso[2, 1])
    arm_x = sw * 1.1 + 0.05
    for dx in (-arm_x, arm_x) if facing == 0 else (facing * 0.1,):
        reach = facing * 0.35 if sitting else 0.0
        arm = np.array(
            [
                [dx - 0.05, top],
                [dx + 0.05, top],
                [dx + 0.05 + reach, top - 0.55],
                [dx - 0.05 + reach, top - 0.55],
            ]
        )
        out.append(Shape(cls, _shade(shirt, 0.85), [b.local(X, Z, arm, Y=base)], o))
    head_x = float(torso[2, 0] + torso[3, 0]) / 2
    head = _ellipse(head_x, top + 0.12, 0.1, 0.12, 12)
    head_color = _jit(rng, CLOTHES[rng.integers(len(CLOTHES))], 20) if cls == WC.MOTORCYCLIST else skin
    out.append(Shape(cls, head_color, [b.local(X, Z, head, Y=base)], o))
    if cls != WC.MOTORCYCLIST:
        hair = _jit(rng, (60, 45, 30), 20)
        out.append(Shape(cls, hair, [b.local(X, Z, _ellipse(head_x, top + 0.19, 0.1, 0.05, 10), Y=base)], o))
    return out


def _two_wheeler(b: _Builder, X: float, Z: float, motor: bool, facing: int) -> list[Shape]:
    """Side view of a bicycle or motorcycle, front towards ``facing`` (+1 right, -1 left)."""
    rng = b.rng
    o = b.obj()
    cls = WC.MOTORCYCLE if motor else WC.BICYCLE
    r = 0.32 if motor else 0.34
    tyre_w = 0.09 if motor else 0.05
    span = 0.72 if motor else 0.55
    color = _jit(
        rng, CAR_COLORS[rng.integers(len(CAR_COLORS))] if motor else CLOTHES[rng.integers(len(CLOTHES))], 10
    )
    out: list[Shape] = []
    for cx in (-span, span):
        tyre = _ellipse(cx * facing, r, r, r, 16)
        hub = _ellipse(cx * facing, r, r - tyre_w, r - tyre_w, 16)
        out.append(Shape(cls, (25, 25, 25), [b.local(X, Z, tyre), b.local(X, Z, hub)], o))
        out.append(Shape(cls, (120, 120, 115) if not motor else (70, 70, 70), [b.local(X, Z, hub)], o))
    if motor:
        body = np.array([[-0.6, 0.35], [0.55, 0.35], [0.5, 0.75], [0.1, 0.85], [-0.45, 0.75], [-0.7, 0.6]])
        body[:, 0] *= facing
        out.append(Shape(cls, color, [b.local(X, Z, body)], o))
        out.append(
            Shape(
                cls,
                (30, 30, 30),
                [
                    b.local(
                        X,
                        Z,
                        np.array(
                            [
                                [-0.5 * facing, 0.75],
                                [0.05 * facing, 0.75],
                                [0.05 * facing, 0.85],
                                [-0.5 * facing, 0.85],
                            ]
                        ),
                    )
                ],
                o,
            )
        )
    else:
        f = facing
        for (x0, y0), (x1, y1) in (
            ((-span, r), (0.0, r)),
            ((0.0, r), (0.35, 0.8)),
            ((-span, r), (-0.15, 0.8)),
            ((-0.15, 0.8), (0.35, 0.8)),
            ((span, r), (0.38, 0.95)),
        ):
            d = np.array([x1 - x0, y1 - y0]) * np.array([f, 1.0])
            n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9) * 0.03
            p0, p1 = np.array([x0 * f, y0]), np.array([x1 * f, y1])
            out.append(Shape(cls, color, [b.local(X, Z, np.array([p0 - n, p1 - n, p1 + n, p0 + n]))], o))
    return out


def _rider(b: _Builder, X: float, Z: float, motor: bool, facing: int) -> list[Shape]:
    vehicle = _two_wheeler(b, X, Z, motor, facing)
    person = _person(b, X - facing * 0.1, Z, WC.MOTORCYCLIST if motor else WC.BICYCLIST, facing, sitting=True)
    return vehicle + person


def _pole(
    b: _Builder, X: float, Z: float, top: float, width: float, color: Color, cls: WC = WC.POLE
) -> Shape:
    pts = np.array([[-width / 2, 0], [width / 2, 0], [width / 2, top], [-width / 2, top]])
    return Shape(cls, color, [b.local(X, Z, pts)])


def _street_light(b: _Builder, X: float, Z: float, side: int) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    top = rng.uniform(5, 8)
    color = _jit(rng, (110, 115, 110), 12)
    pole = _pole(b, X, Z, top, 0.2, color)
    pole.obj = o
    arm = np.array([[0, top - 0.1], [-side * 1.6, top - 0.1], [-side * 1.6, top + 0.05], [0, top + 0.05]])
    lamp = np.array(
        [
            [-side * 1.1, top - 0.3],
            [-side * 2.2, top - 0.3],
            [-side * 2.05, top + 0.08],
            [-side * 1.25, top + 0.08],
        ]
    )
    return [
        pole,
        Shape(WC.POLE, color, [b.local(X, Z, arm)], o),
        Shape(WC.STREET_LIGHT, _jit(rng, (200, 200, 185), 15), [b.local(X, Z, lamp)], o),
    ]


def _traffic_light(b: _Builder, X: float, Z: float) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    y0 = rng.uniform(2.2, 3.0)
    pole = _pole(b, X, Z, y0 + 0.9, 0.16, _jit(rng, (100, 105, 100), 10))
    pole.obj = o
    housing = _jit(rng, (40, 42, 38), 6)
    plate = np.array([[-0.28, y0 - 0.1], [0.28, y0 - 0.1], [0.28, y0 + 1.05], [-0.28, y0 + 1.05]])
    box = np.array([[-0.18, y0], [0.18, y0], [0.18, y0 + 0.95], [-0.18, y0 + 0.95]])
    out = [pole]
    if rng.random() < 0.5:
        out.append(Shape(WC.TRAFFIC_LIGHT, _jit(rng, (220, 200, 40), 10), [b.local(X, Z, plate)], o))
    out.append(Shape(WC.TRAFFIC_LIGHT, housing, [b.local(X, Z, box)], o))
    lit = int(rng.integers(3))
    for i, (col, dim) in enumerate(
        (((255, 40, 30), (70, 20, 20)), ((255, 190, 30), (70, 55, 20)), ((40, 230, 90), (20, 60, 30)))
    ):
        c = col if (2 - i) == lit else dim
        out.append(
            Shape(
                WC.TRAFFIC_LIGHT,
                c,
                [b.local(X, Z, _ellipse(0, y0 + 0.16 + 0.31 * (2 - i), 0.11, 0.11, 10))],
                o,
            )
        )
    return out


# --- traffic signs -----------------------------------------------------------------------------


def _place_sign(b: _Builder, st: _Street, class_ids: list[int], occlude: bool) -> bool:
    """Put one pole with one or two signs on a sidewalk, fully inside the frame, not hiding other signs."""
    rng, a = b.rng, b.aspect
    lo, hi = b.style.sign_size
    for _ in range(12):
        s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        size_m = rng.uniform(0.6, 0.9)
        Z = b.f * size_m / s
        side = 1 if rng.random() < 0.7 else -1
        X = st.right + rng.uniform(0.6, st.walk_r) if side > 0 else st.left - rng.uniform(0.6, st.walk_l)
        xlo, xhi = b.x_range(Z, margin=s * 0.6 + 0.01)
        if xlo >= xhi:
            continue
        X = float(np.clip(X, xlo, xhi))
        Yc = rng.uniform(1.9, 3.0)
        y_top_ok = b.hc + (b.h - s * 0.6 - 0.01) * Z / b.f
        Yc = min(Yc, y_top_ok)
        if Yc - size_m * len(class_ids) < 0.6:
            continue
        boxes = []
        for k in range(len(class_ids)):
            cx, cy = b.proj([X], [Yc - k * size_m * 1.08], [Z])[0]
            sq = rng.uniform(0.85, 1.0)
            boxes.append((cx - s * sq / 2, cy - s / 2, cx + s * sq / 2, cy + s / 2))
        if any(bx[0] < -a / 2 or bx[2] > a / 2 or bx[1] < 0 or bx[3] > 1 for bx in boxes):
            continue
        ground_y = float(b.proj([X], [0.0], [Z])[0, 1])
        column = (min(bx[0] for bx in boxes), boxes[0][1], max(bx[2] for bx in boxes), ground_y)
        if any(_overlap(column, sb, 0.01) for sb, _ in b.sign_boxes):
            continue
        o = b.obj()
        pole_w = rng.uniform(0.06, 0.09)
        shapes = [
            Shape(
                WC.POLE,
                _jit(rng, (140, 140, 140), 15),
                [
                    b.local(
                        X,
                        Z,
                        np.array(
                            [
                                [-pole_w / 2, 0],
                                [pole_w / 2, 0],
                                [pole_w / 2, Yc + 0.1],
                                [-pole_w / 2, Yc + 0.1],
                            ]
                        ),
                    )
                ],
                o,
            )
        ]
        for cid, bx in zip(class_ids, boxes, strict=True):
            rect = np.array([[bx[0], bx[1]], [bx[2], bx[1]], [bx[2], bx[3]], [bx[0], bx[3]]])
            gain = rng.uniform(0.75, 1.1)
            shapes.append(Shape(WC.TRAFFIC_SIGN, (220, 220, 0), [rect], b.obj(), sign=cid, box=bx, gain=gain))
        b.add(Z, shapes, protect_signs=False)
        for bx in boxes:
            b.sign_boxes.append((bx, Z))
        if occlude:
            _occlude(b, boxes[-1], Z, X)
        return True
    return False


def _overlap(
    p: tuple[float, float, float, float], q: tuple[float, float, float, float], margin: float
) -> bool:
    return p[0] - margin < q[2] and q[0] - margin < p[2] and p[1] - margin < q[3] and q[1] - margin < p[3]


def _occlude(b: _Builder, box: tuple[float, float, float, float], Z: float, X: float) -> None:
    """Hide part of a sign (at most about a third) behind a nearer pole or tree crown."""
    rng = b.rng
    w, h = box[2] - box[0], box[3] - box[1]
    Zn = Z * rng.uniform(0.6, 0.85)
    from_right = rng.random() < 0.5
    if rng.random() < 0.5:
        sx = box[2] - w * rng.uniform(0.05, 0.25) if from_right else box[0] + w * rng.uniform(0.05, 0.25)
        Xn = (sx - b.vx) * Zn / b.f
        width = w * rng.uniform(0.15, 0.3) * Zn / b.f
        b.foreground.append(_pole(b, Xn, Zn, rng.uniform(6, 9), width, _jit(rng, (110, 115, 110), 12)))
        return
    r = rng.uniform(0.3, 0.45) * max(w, h)
    direction = 1.0 if from_right else -1.0
    edge = box[2] if from_right else box[0]
    cy = rng.uniform(box[1], box[3])
    green = _jit(rng, (55, 100, 40), 12, 0.2)
    for k in range(3):
        cx = edge + direction * r * (0.35 + 0.6 * k + rng.uniform(-0.1, 0.1))
        blob = _ellipse(cx, cy + rng.uniform(-0.5, 0.5) * r, r, r * 0.85, 14)
        b.foreground.append(Shape(WC.VEGETATION, _shade(green, rng.uniform(0.85, 1.15)), [blob]))


# --- assembling --------------------------------------------------------------------------------


def _populate(b: _Builder, st: _Street, sign_classes: list[int]) -> None:
    rng = b.rng
    style = b.style
    signs = list(sign_classes)
    while signs:
        k = 2 if len(signs) >= 2 and rng.random() < 0.25 else 1
        group, signs = signs[:k], signs[k:]
        _place_sign(b, st, group, occlude=rng.random() < style.occlude_signs)
    for _ in range(rng.integers(1, 4)):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(5, 30)
        X = st.right + rng.uniform(0.4, 1.0) if side > 0 else st.left - rng.uniform(0.4, 1.0)
        b.add(Z, _street_light(b, X, Z, side))
    for _ in range(rng.integers(1, 4)):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(5, 40)
        X = st.right + rng.uniform(0.3, st.walk_r) if side > 0 else st.left - rng.uniform(0.3, st.walk_l)
        shape = _pole(b, X, Z, rng.uniform(2.5, 4.5), rng.uniform(0.12, 0.25), _jit(rng, (125, 125, 120), 15))
        shape.obj = b.obj()
        b.add(Z, [shape])
    if rng.random() < 0.9:
        for _ in range(rng.integers(1, 4)):
            side = 1 if rng.random() < 0.6 else -1
            Z = rng.uniform(6, 25) if st.crosswalk is None else st.crosswalk[0] + rng.uniform(-1.5, 0)
            X = st.right + rng.uniform(0.4, 1.2) if side > 0 else st.left - rng.uniform(0.4, 1.2)
            b.add(Z, _traffic_light(b, X, Z))
    for _ in range(rng.integers(0, 4)):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(5, 45)
        X = st.front_r - rng.uniform(0.3, 0.8) if side > 0 else st.front_l + rng.uniform(0.3, 0.8)
        b.add(Z, _tree_shapes(b, X, Z))
    _vehicles(b, st)
    _people(b, st)


def _vehicles(b: _Builder, st: _Street) -> None:
    rng = b.rng
    for lane, xc in enumerate(st.lane_centres):
        oncoming = lane < st.oncoming
        if st.tram_lane == lane:
            Z = rng.uniform(6, 30)
            b.add(Z, _long_vehicle(b, xc, Z, WC.ON_RAILS))
            continue
        Z = rng.uniform(5, 14)
        while Z < 70:
            if st.crosswalk is not None and st.crosswalk[0] - 6 < Z < st.crosswalk[0] + st.crosswalk[1]:
                Z = st.crosswalk[0] + st.crosswalk[1] + 0.5
            if abs(xc) > 1.0 or Z > 9:
                r = rng.random()
                jitter = rng.uniform(-0.3, 0.3)
                if r < 0.68:
                    b.add(Z, _car(b, xc + jitter, Z, oncoming))
                    Z += 5.5
                elif r < 0.82:
                    b.add(Z, _truck(b, xc + jitter, Z, oncoming))
                    Z += 11
                elif r < 0.92:
                    b.add(Z, _long_vehicle(b, xc + jitter, Z, WC.BUS))
                    Z += 13
                else:
                    motor = rng.random() < 0.5
                    b.add(Z, _rider(b, xc + jitter, Z, motor, 1 if rng.random() < 0.5 else -1))
                    Z += 3
            Z += rng.uniform(3, 25)
    for side, parking in zip((-1, 1), st.parking, strict=True):  # parked cars along the curb
        if not parking:
            continue
        xc = st.right - 1.15 if side > 0 else st.left + 1.15
        Z = rng.uniform(4, 12)
        while Z < 45:
            if rng.random() < 0.8:
                b.add(Z, _car(b, xc, Z, oncoming=False))
            Z += rng.uniform(5, 9)


def _people(b: _Builder, st: _Street) -> None:
    rng = b.rng
    n = rng.poisson(3.0 * b.style.people)
    for _ in range(n):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(4, 30)
        X = st.right + rng.uniform(0.5, st.walk_r) if side > 0 else st.left - rng.uniform(0.5, st.walk_l)
        b.add(Z, _person(b, X, Z, facing=int(rng.choice([-1, 0, 1]))))
    if st.crosswalk is not None:
        z0, depth, _ = st.crosswalk
        for _ in range(rng.poisson(2.0 * b.style.people)):
            Z = z0 + rng.uniform(0.5, depth - 0.5)
            X = rng.uniform(st.left + 0.5, st.right - 0.5)
            if rng.random() < 0.25:
                b.add(Z, _rider(b, X, Z, motor=False, facing=1 if rng.random() < 0.5 else -1))
            else:
                b.add(Z, _person(b, X, Z, facing=1 if rng.random() < 0.5 else -1))
    for _ in range(rng.poisson(0.8)):  # parked two-wheelers on the sidewalk
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(4, 20)
        X = st.right + rng.uniform(0.6, st.walk_r) if side > 0 else st.left - rng.uniform(0.6, st.walk_l)
        b.add(Z, _two_wheeler(b, X, Z, motor=rng.random() < 0.35, facing=1 if rng.random() < 0.5 else -1))
    for _ in range(1 + rng.poisson(0.7)):  # riders along the curb
        Z = rng.uniform(5, 18)
        X = st.right - 0.8 if rng.random() < 0.6 else st.left + 0.8
        b.add(Z, _rider(b, X, Z, motor=rng.random() < 0.5, facing=1 if rng.random() < 0.5 else -1))


def _ego_hood(b: _Builder) -> None:
    a = b.aspect
    xs = np.linspace(-a / 2 - 0.01, a / 2 + 0.01, 24)
    top = 1.0 - b.rng.uniform(0.05, 0.08) * (1 - 0.45 * (2 * xs / a) ** 2)
    pts = np.concatenate([np.stack([xs, top], -1), [[a / 2 + 0.01, 1.01], [-a / 2 - 0.01, 1.01]]])
    b.foreground.append(Shape(WC.EGO_VEHICLE, _jit(b.rng, (30, 32, 38), 4), [pts]))


def make_scene(
    rng: np.random.Generator, aspect: float, style: SceneStyle, sign_classes: Sequence[int] = ()
) -> Scene:
    """A random street scene for a frame of the given aspect (W/H), holding the given traffic signs.

    ``sign_classes`` are the GTSDB classes of the signs to place (a sign that finds no free spot
    within the frame is left out); more signs are not added.
    """
    b = _Builder(rng, aspect, style)
    st = _street(b)
    _sky(b)
    _far_end(b, st)
    _ground(b, st)
    _frontage(b, st, -1)
    _frontage(b, st, 1)
    _populate(b, st, list(sign_classes))
    if style.ego_hood:
        _ego_hood(b)
    return Scene(aspect, b.shapes())


def random_sign_classes(
    rng: np.random.Generator, n_range: tuple[int, int], required: Sequence[int] = ()
) -> list[int]:
    """``required`` classes, then random ones (uniform over the 43) up to n_range[0]..n_range[1] in all."""
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    extra = [int(c) for c in rng.integers(0, GTSDB_NUM_CLASSES, size=max(0, n - len(required)))]
    return [*required, *extra]
