"""The things in a demo street: vehicles, people, two-wheelers, poles, lights and trees.

Each function returns the shapes of one object (sharing one object key) for the caller to queue with
:meth:`~multiseg.demo.builder.Builder.add`, which depth-sorts them; :func:`vehicles` and :func:`people`
populate a whole street.
"""

from __future__ import annotations

import numpy as np

from multiseg.demo.builder import (
    CAR_COLORS,
    CLOTHES,
    GLASS,
    SKIN,
    WC,
    Builder,
    Color,
    Shape,
    Street,
    ellipse,
    jitter,
    shade,
)


def tree_shapes(b: Builder, X: float, Z: float, height: float | None = None) -> list[Shape]:
    rng = b.rng
    h = height if height is not None else rng.uniform(4, 10)
    trunk = np.array([[-0.15, 0], [0.15, 0], [0.12, h * 0.6], [-0.12, h * 0.6]])
    out = [Shape(WC.VEGETATION, jitter(rng, (85, 65, 45), 8), [b.local(X, Z, trunk)])]
    green = jitter(rng, (55, 100, 40), 12, 0.2)
    for _ in range(rng.integers(3, 7)):
        cx, cy = rng.uniform(-1.2, 1.2), h * rng.uniform(0.6, 0.9)
        r = rng.uniform(1.0, 2.0)
        out.append(
            Shape(
                WC.VEGETATION,
                shade(green, rng.uniform(0.8, 1.2)),
                [b.local(X, Z, ellipse(cx, cy, r, r * 0.9, 16))],
            )
        )
    return out


def car(b: Builder, Xc: float, Z: float, oncoming: bool) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    W, L = rng.uniform(1.7, 1.9), rng.uniform(3.9, 4.8)
    X0, X1 = Xc - W / 2, Xc + W / 2
    color = jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 8)
    glass = jitter(rng, GLASS, 8)
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


def truck(b: Builder, Xc: float, Z: float, oncoming: bool) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    W = 2.5
    X0, X1 = Xc - W / 2, Xc + W / 2
    cab = jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 10)
    box = jitter(rng, ((230, 230, 225), (200, 60, 40), (60, 90, 140), (180, 170, 150))[rng.integers(4)], 10)
    length = rng.uniform(6, 9)
    out: list[Shape] = []
    if oncoming:
        out += b.box3d(X0, X1, 1.0, 3.7, Z + 2.3, Z + 2.3 + length, WC.TRUCK, box, o)
        out += b.box3d(X0 + 0.05, X1 - 0.05, 0.4, 2.9, Z, Z + 2.2, WC.TRUCK, cab, o)
        out.append(
            Shape(WC.TRUCK, jitter(rng, GLASS, 6), [b.front_plane(X0 + 0.2, X1 - 0.2, Z - 0.01, 1.7, 2.7)], o)
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


def long_vehicle(b: Builder, Xc: float, Z: float, cls: WC) -> list[Shape]:
    """A bus or a tram: a long box with a window band."""
    rng = b.rng
    o = b.obj()
    if cls == WC.BUS:
        W, Y0, Y1, L = 2.55, 0.3, 3.1, rng.uniform(11, 13)
        color = jitter(
            rng, ((230, 200, 40), (200, 40, 40), (235, 235, 230), (40, 90, 160))[rng.integers(4)], 10
        )
    else:
        W, Y0, Y1, L = 2.4, 0.4, 3.4, rng.uniform(25, 32)
        color = jitter(rng, ((240, 240, 235), (200, 30, 40), (240, 210, 60))[rng.integers(3)], 8)
    X0, X1 = Xc - W / 2, Xc + W / 2
    out = b.box3d(X0, X1, Y0, Y1, Z, Z + L, cls, color, o)
    glass = jitter(rng, GLASS, 6)
    side = X0 if X0 > 0 else X1 if X1 < 0 else None
    if side is not None:
        out.append(Shape(cls, glass, [b.side_plane(side, Z + 0.5, Z + L - 0.5, 1.3, Y1 - 0.6)], o))
        out.append(Shape(cls, shade(color, 0.7), [b.side_plane(side, Z + 0.5, Z + L - 0.5, 0.9, 1.05)], o))
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


def person(
    b: Builder, X: float, Z: float, cls: WC = WC.PERSON, facing: int = 0, sitting: bool = False
) -> list[Shape]:
    """A standing (or, for riders, seated) figure; ``facing`` 0 = towards/away from camera, +-1 = side."""
    rng = b.rng
    o = b.obj()
    h = rng.uniform(1.6, 1.9)
    shirt = jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    pants = jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    skin = jitter(rng, SKIN[rng.integers(len(SKIN))], 6)
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
        out.append(Shape(cls, shade(shirt, 0.85), [b.local(X, Z, arm, Y=base)], o))
    head_x = float(torso[2, 0] + torso[3, 0]) / 2
    head = ellipse(head_x, top + 0.12, 0.1, 0.12, 12)
    head_color = jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 20) if cls == WC.MOTORCYCLIST else skin
    out.append(Shape(cls, head_color, [b.local(X, Z, head, Y=base)], o))
    if cls != WC.MOTORCYCLIST:
        hair = jitter(rng, (60, 45, 30), 20)
        out.append(Shape(cls, hair, [b.local(X, Z, ellipse(head_x, top + 0.19, 0.1, 0.05, 10), Y=base)], o))
    return out


def two_wheeler(b: Builder, X: float, Z: float, motor: bool, facing: int) -> list[Shape]:
    """Side view of a bicycle or motorcycle, front towards ``facing`` (+1 right, -1 left)."""
    rng = b.rng
    o = b.obj()
    cls = WC.MOTORCYCLE if motor else WC.BICYCLE
    r = 0.32 if motor else 0.34
    tyre_w = 0.09 if motor else 0.05
    span = 0.72 if motor else 0.55
    color = jitter(
        rng, CAR_COLORS[rng.integers(len(CAR_COLORS))] if motor else CLOTHES[rng.integers(len(CLOTHES))], 10
    )
    out: list[Shape] = []
    for cx in (-span, span):
        tyre = ellipse(cx * facing, r, r, r, 16)
        hub = ellipse(cx * facing, r, r - tyre_w, r - tyre_w, 16)
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


def rider(b: Builder, X: float, Z: float, motor: bool, facing: int) -> list[Shape]:
    vehicle = two_wheeler(b, X, Z, motor, facing)
    seated = person(b, X - facing * 0.1, Z, WC.MOTORCYCLIST if motor else WC.BICYCLIST, facing, sitting=True)
    return vehicle + seated


def pole_shape(
    b: Builder, X: float, Z: float, top: float, width: float, color: Color, cls: WC = WC.POLE
) -> Shape:
    pts = np.array([[-width / 2, 0], [width / 2, 0], [width / 2, top], [-width / 2, top]])
    return Shape(cls, color, [b.local(X, Z, pts)])


def street_light(b: Builder, X: float, Z: float, side: int) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    top = rng.uniform(5, 8)
    color = jitter(rng, (110, 115, 110), 12)
    pole = pole_shape(b, X, Z, top, 0.2, color)
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
        Shape(WC.STREET_LIGHT, jitter(rng, (200, 200, 185), 15), [b.local(X, Z, lamp)], o),
    ]


def traffic_light(b: Builder, X: float, Z: float) -> list[Shape]:
    rng = b.rng
    o = b.obj()
    y0 = rng.uniform(2.2, 3.0)
    pole = pole_shape(b, X, Z, y0 + 0.9, 0.16, jitter(rng, (100, 105, 100), 10))
    pole.obj = o
    housing = jitter(rng, (40, 42, 38), 6)
    plate = np.array([[-0.28, y0 - 0.1], [0.28, y0 - 0.1], [0.28, y0 + 1.05], [-0.28, y0 + 1.05]])
    box = np.array([[-0.18, y0], [0.18, y0], [0.18, y0 + 0.95], [-0.18, y0 + 0.95]])
    out = [pole]
    if rng.random() < 0.5:
        out.append(Shape(WC.TRAFFIC_LIGHT, jitter(rng, (220, 200, 40), 10), [b.local(X, Z, plate)], o))
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
                [b.local(X, Z, ellipse(0, y0 + 0.16 + 0.31 * (2 - i), 0.11, 0.11, 10))],
                o,
            )
        )
    return out


def vehicles(b: Builder, st: Street) -> None:
    rng = b.rng
    for lane, xc in enumerate(st.lane_centres):
        oncoming = lane < st.oncoming
        if st.tram_lane == lane:
            Z = rng.uniform(6, 30)
            b.add(Z, long_vehicle(b, xc, Z, WC.ON_RAILS))
            continue
        Z = rng.uniform(5, 14)
        while Z < 70:
            if st.crosswalk is not None and st.crosswalk[0] - 6 < Z < st.crosswalk[0] + st.crosswalk[1]:
                Z = st.crosswalk[0] + st.crosswalk[1] + 0.5
            if abs(xc) > 1.0 or Z > 9:
                r = rng.random()
                jitter = rng.uniform(-0.3, 0.3)
                if r < 0.68:
                    b.add(Z, car(b, xc + jitter, Z, oncoming))
                    Z += 5.5
                elif r < 0.82:
                    b.add(Z, truck(b, xc + jitter, Z, oncoming))
                    Z += 11
                elif r < 0.92:
                    b.add(Z, long_vehicle(b, xc + jitter, Z, WC.BUS))
                    Z += 13
                else:
                    motor = rng.random() < 0.5
                    b.add(Z, rider(b, xc + jitter, Z, motor, 1 if rng.random() < 0.5 else -1))
                    Z += 3
            Z += rng.uniform(3, 25)
    for side, parking in zip((-1, 1), st.parking, strict=True):  # parked cars along the curb
        if not parking:
            continue
        xc = st.right - 1.15 if side > 0 else st.left + 1.15
        Z = rng.uniform(4, 12)
        while Z < 45:
            if rng.random() < 0.8:
                b.add(Z, car(b, xc, Z, oncoming=False))
            Z += rng.uniform(5, 9)


def people(b: Builder, st: Street) -> None:
    rng = b.rng
    n = rng.poisson(3.0 * b.style.people)
    for _ in range(n):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(4, 30)
        X = st.right + rng.uniform(0.5, st.walk_r) if side > 0 else st.left - rng.uniform(0.5, st.walk_l)
        b.add(Z, person(b, X, Z, facing=int(rng.choice([-1, 0, 1]))))
    if st.crosswalk is not None:
        z0, depth, _ = st.crosswalk
        for _ in range(rng.poisson(2.0 * b.style.people)):
            Z = z0 + rng.uniform(0.5, depth - 0.5)
            X = rng.uniform(st.left + 0.5, st.right - 0.5)
            if rng.random() < 0.25:
                b.add(Z, rider(b, X, Z, motor=False, facing=1 if rng.random() < 0.5 else -1))
            else:
                b.add(Z, person(b, X, Z, facing=1 if rng.random() < 0.5 else -1))
    for _ in range(rng.poisson(0.8)):  # parked two-wheelers on the sidewalk
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(4, 20)
        X = st.right + rng.uniform(0.6, st.walk_r) if side > 0 else st.left - rng.uniform(0.6, st.walk_l)
        b.add(Z, two_wheeler(b, X, Z, motor=rng.random() < 0.35, facing=1 if rng.random() < 0.5 else -1))
    for _ in range(1 + rng.poisson(0.7)):  # riders along the curb
        Z = rng.uniform(5, 18)
        X = st.right - 0.8 if rng.random() < 0.6 else st.left + 0.8
        b.add(Z, rider(b, X, Z, motor=rng.random() < 0.5, facing=1 if rng.random() < 0.5 else -1))


def ego_hood(b: Builder) -> None:
    a = b.aspect
    xs = np.linspace(-a / 2 - 0.01, a / 2 + 0.01, 24)
    top = 1.0 - b.rng.uniform(0.05, 0.08) * (1 - 0.45 * (2 * xs / a) ** 2)
    pts = np.concatenate([np.stack([xs, top], -1), [[a / 2 + 0.01, 1.01], [-a / 2 - 0.01, 1.01]]])
    b.foreground.append(Shape(WC.EGO_VEHICLE, jitter(b.rng, (30, 32, 38), 4), [pts]))
