"""The demo street's fixed layout: sky, road, lanes and markings, sidewalks, frontage and the far end.

Everything here is drawn into the builder's background (behind every object), far to near.
"""

from __future__ import annotations

import numpy as np

from multiseg.demo.actors import tree_shapes
from multiseg.demo.builder import (
    FACADE_COLORS,
    GLASS,
    PARKING_W,
    WC,
    Builder,
    Color,
    Shape,
    Street,
    ellipse,
    jitter,
    shade,
)


def sky(b: Builder) -> None:
    rng, a = b.rng, b.aspect
    base = jitter(rng, (120, 165, 215) if rng.random() < 0.6 else (175, 185, 195), 10)
    b.background.append(
        Shape(WC.SKY, base, [np.array([[-a, -1], [a, -1], [a, b.h + 0.02], [-a, b.h + 0.02]])])
    )
    for _ in range(rng.integers(0, 5)):
        cx, cy = rng.uniform(-a / 2, a / 2), rng.uniform(0.0, b.h * 0.7)
        b.background.append(
            Shape(
                WC.SKY,
                jitter(rng, (225, 228, 232), 8),
                [ellipse(cx, cy, rng.uniform(0.05, 0.2), rng.uniform(0.02, 0.05))],
            )
        )


def street(b: Builder) -> Street:
    rng = b.rng
    lanes = int(rng.choice([2, 2, 3, 4]))
    lane_w = rng.uniform(3.0, 3.5)
    oncoming = lanes // 2 if rng.random() < 0.8 else 0
    ego = int(rng.integers(oncoming, lanes))
    lanes_left = -(ego + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
    parking = (bool(rng.random() < 0.3), bool(rng.random() < 0.45))
    st = Street(
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


def ground(b: Builder, st: Street, reach: float = 40.0) -> None:
    """Terrain, road, sidewalks, curbs, markings; patches, paving joints and manholes up to ``reach`` m."""
    rng, bg = b.rng, b.background
    zn, zf = 0.4, st.z_end
    a = b.aspect
    bg.append(
        Shape(WC.TERRAIN, jitter(rng, (125, 150, 75), 12), [np.array([[-a, b.h], [a, b.h], [a, 2], [-a, 2]])])
    )
    road = jitter(rng, (88, 88, 92), 6, 0.15)
    bg.append(Shape(WC.ROAD, road, [b.ground(st.left, st.right, zn, zf)]))
    for _ in range(rng.integers(0, 4)):  # asphalt patches
        x0 = rng.uniform(st.left, st.right - 1.5)
        z0 = rng.uniform(3, reach)
        patch = b.ground(x0, x0 + rng.uniform(1, 3), z0, z0 + rng.uniform(2, 8))
        bg.append(Shape(WC.ROAD, shade(road, rng.uniform(0.8, 1.15)), [patch]))
    walk = jitter(rng, (175, 170, 165) if rng.random() < 0.7 else (170, 120, 110), 10)
    curb = jitter(rng, (190, 190, 185), 8)
    for sign, edge, width in ((-1, st.left, st.walk_l), (1, st.right, st.walk_r)):
        c0, c1 = sorted((edge, edge + sign * 0.25))
        w0, w1 = sorted((edge + sign * 0.25, edge + sign * (0.25 + width)))
        bg.append(Shape(WC.SIDEWALK, walk, [b.ground(w0, w1, zn, zf)]))
        for z in np.arange(rng.uniform(1, 2.5), reach, rng.uniform(1.2, 2.0)):  # paving joints
            bg.append(Shape(WC.SIDEWALK, shade(walk, 0.8), [b.ground(w0, w1, z, z + 0.06)]))
        bg.append(Shape(WC.CURB, curb, [b.ground(c0, c1, zn, zf)]))
        bg.append(Shape(WC.CURB, shade(curb, 0.75), [b.side_plane(edge, zn, zf, 0.0, 0.14)]))
    if st.tram_lane is not None:
        xc = st.lane_centres[st.tram_lane]
        for dx in (-0.72, 0.72):
            bg.append(Shape(WC.ROAD, shade(road, 0.6), [b.ground(xc + dx - 0.05, xc + dx + 0.05, zn, zf)]))
    _markings(b, st)
    for _ in range(rng.integers(1, 4)):
        _manhole(b, st)


def _markings(b: Builder, st: Street) -> None:
    rng, bg = b.rng, b.background
    paint = jitter(rng, (235, 235, 230), 8)
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


def _crosswalk(b: Builder, st: Street, cw: tuple[float, float, bool], paint: Color) -> None:
    z0, depth, zebra = cw
    bg = b.background
    stop_from = st.lane_centres[0] - st.lane_w / 2 + st.oncoming * st.lane_w
    bg.append(Shape(WC.LANE_MARKING, paint, [b.ground(stop_from, st.right, z0 - 1.2, z0 - 0.8)]))
    if zebra:
        for x in np.arange(st.left + 0.4, st.right - 0.5, 1.0):
            bg.append(Shape(WC.CROSSWALK_ZEBRA, paint, [b.ground(x, x + 0.5, z0, z0 + depth)]))
        return
    tone = jitter(b.rng, (150, 95, 90) if b.rng.random() < 0.5 else (140, 140, 150), 10)
    bg.append(Shape(WC.CROSSWALK_PLAIN, tone, [b.ground(st.left, st.right, z0 + 0.3, z0 + depth - 0.3)]))
    for zz in (z0, z0 + depth - 0.3):
        bg.append(Shape(WC.LANE_MARKING, paint, [b.ground(st.left, st.right, zz, zz + 0.3)]))


def _manhole(b: Builder, st: Street) -> None:
    rng = b.rng
    X = rng.uniform(st.left + 0.6, st.right - 0.6)
    Z = rng.uniform(3.5, 12)
    r = rng.uniform(0.35, 0.45)
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    ring = b.proj(X + r * np.cos(t), np.zeros_like(t), Z + r * np.sin(t))
    inner = b.proj(X + 0.75 * r * np.cos(t), np.zeros_like(t), Z + 0.75 * r * np.sin(t))
    tone = jitter(rng, (55, 55, 58), 6)
    b.background.append(Shape(WC.MANHOLE, tone, [ring]))
    b.background.append(Shape(WC.MANHOLE, shade(tone, 1.35), [inner]))


def frontage(b: Builder, st: Street, side: int) -> None:
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
            green = jitter(rng, (60, 95, 45), 10)
            b.background.append(
                Shape(
                    WC.VEGETATION,
                    shade(green, 1.1),
                    [b.proj([X, X, X + side, X + side], [h] * 4, [z0, z1, z1, z0])],
                )
            )
            b.background.append(Shape(WC.VEGETATION, green, [b.side_plane(X, z0, z1, 0, h)]))
        else:
            _trees(b, X + side * rng.uniform(1, 8), z0, z1, int(rng.integers(1, 4)))


def _frontage_p(urban: float) -> list[float]:
    rest = 1 - urban
    return [urban * 0.8, urban * 0.1 + rest * 0.15, urban * 0.1 + rest * 0.2, rest * 0.3, rest * 0.35]


def _grass_strip(b: Builder, x0: float, x1: float, z0: float, z1: float) -> None:
    lo, hi = sorted((x0, x1))
    b.background.append(Shape(WC.TERRAIN, jitter(b.rng, (130, 155, 80), 10), [b.ground(lo, hi, z0, z1)]))


def _building(b: Builder, X: float, side: int, z0: float, z1: float) -> None:
    rng, bg = b.rng, b.background
    height = rng.uniform(7, 22)
    color = jitter(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 10)
    bg.append(
        Shape(
            WC.BUILDING,
            shade(color, 1.08),
            [b.front_plane(min(X, X + side * 12), max(X, X + side * 12), z0, 0, height)],
        )
    )
    bg.append(Shape(WC.BUILDING, color, [b.side_plane(X, z0, z1, 0, height)]))
    bg.append(Shape(WC.BUILDING, shade(color, 0.6), [b.side_plane(X, z0, z1, height - 0.5, height)]))
    if z0 > 80:
        return
    glass = jitter(rng, GLASS, 10)
    frame_w, pitch = rng.uniform(1.0, 1.6), rng.uniform(2.4, 3.4)
    for fy in np.arange(rng.uniform(3.0, 3.6), height - 1.5, 3.1):
        for wz in np.arange(z0 + 0.8, z1 - frame_w, pitch):
            bg.append(
                Shape(
                    WC.BUILDING,
                    shade(glass, rng.uniform(0.8, 1.4)),
                    [b.side_plane(X, wz, wz + frame_w, fy, fy + 1.5)],
                )
            )
    for wz in np.arange(z0 + 1.0, z1 - 2.5, rng.uniform(4, 7)):  # shop windows / doors
        bg.append(Shape(WC.BUILDING, shade(glass, 0.8), [b.side_plane(X, wz, wz + 2.2, 0.0, 2.4)]))


def _wall(b: Builder, X: float, side: int, z0: float, z1: float) -> None:
    rng, bg = b.rng, b.background
    h = rng.uniform(1.0, 2.8)
    if rng.random() < 0.6:
        _building(b, X + side * rng.uniform(3, 8), side, z0, z1)
    else:
        _trees(b, X + side * rng.uniform(2, 6), z0, z1, int(rng.integers(1, 3)))
    color = jitter(rng, (150, 140, 125) if rng.random() < 0.6 else (165, 95, 75), 12)
    bg.append(Shape(WC.WALL, color, [b.side_plane(X, z0, z1, 0, h)]))
    bg.append(
        Shape(
            WC.WALL,
            shade(color, 1.2),
            [b.proj([X, X, X + side * 0.3, X + side * 0.3], [h] * 4, [z0, z1, z1, z0])],
        )
    )
    for y in np.arange(0.25, h - 0.1, 0.3):  # brick courses
        bg.append(Shape(WC.WALL, shade(color, 0.82), [b.side_plane(X, z0, z1, y, y + 0.04)]))


def _fence(b: Builder, X: float, z0: float, z1: float) -> None:
    rng, bg = b.rng, b.background
    h = rng.uniform(1.0, 2.0)
    color = jitter(rng, (110, 115, 105) if rng.random() < 0.5 else (140, 110, 80), 12)
    bg.append(Shape(WC.FENCE, shade(color, 0.55), [b.side_plane(X, z0, z1, 0.05, h)]))
    for y in (0.15, h - 0.12):
        bg.append(Shape(WC.FENCE, color, [b.side_plane(X, z0, z1, y, y + 0.08)]))
    for z in np.arange(z0, z1, rng.uniform(0.15, 0.3)):
        bg.append(Shape(WC.FENCE, color, [b.side_plane(X, z, z + 0.05, 0.05, h)]))


def _trees(b: Builder, X: float, z0: float, z1: float, n: int) -> None:
    for _ in range(n):
        Z = b.rng.uniform(z0, z1)
        b.background.extend(tree_shapes(b, X, max(Z, 3.0)))


def far_end(b: Builder, st: Street) -> None:
    """What closes the view at the end of the street: a row of buildings or a tree line."""
    rng, Z = b.rng, st.z_end
    lo, hi = b.x_range(Z)
    x = lo - 5
    while x < hi + 5:
        w = rng.uniform(8, 25)
        if rng.random() < b.style.urban:
            color = jitter(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 10)
            b.background.append(
                Shape(WC.BUILDING, color, [b.front_plane(x, x + w, Z, 0, rng.uniform(8, 25))])
            )
        else:
            green = jitter(rng, (60, 95, 45), 12)
            b.background.append(
                Shape(
                    WC.VEGETATION,
                    green,
                    [b.local(x + w / 2, Z, ellipse(0, 4, w / 2, rng.uniform(4, 8), 16))],
                )
            )
        x += w
