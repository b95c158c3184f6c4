"""A random street scene: the layout, its objects and its traffic signs, in painter's order.

:func:`make_scene` assembles a frame's shapes (see :mod:`multiseg.demo.builder` for the coordinates)
from the layout (:mod:`.layout`) and the objects (:mod:`.actors`), placing the requested GTSDB signs on
poles where they are fully visible and not hidden by nearer objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multiseg.demo.actors import (
    ego_hood,
    people,
    pole_shape,
    street_light,
    traffic_light,
    tree_shapes,
    vehicles,
)
from multiseg.demo.builder import (
    NUM_WORLD_CLASSES,
    WC,
    Builder,
    Scene,
    SceneStyle,
    Shape,
    Street,
    ellipse,
    jitter,
    shade,
)
from multiseg.demo.layout import far_end, frontage, ground, sky, street
from multiseg.labels import GTSDB_NUM_CLASSES

__all__ = ["NUM_WORLD_CLASSES", "WC", "Scene", "SceneStyle", "Shape", "make_scene", "random_sign_classes"]


def _place_sign(b: Builder, st: Street, class_ids: list[int], occlude: bool) -> bool:
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
                jitter(rng, (140, 140, 140), 15),
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


def _occlude(b: Builder, box: tuple[float, float, float, float], Z: float, X: float) -> None:
    """Hide part of a sign (at most about a third) behind a nearer pole or tree crown."""
    rng = b.rng
    w, h = box[2] - box[0], box[3] - box[1]
    Zn = Z * rng.uniform(0.6, 0.85)
    from_right = rng.random() < 0.5
    if rng.random() < 0.5:
        sx = box[2] - w * rng.uniform(0.05, 0.25) if from_right else box[0] + w * rng.uniform(0.05, 0.25)
        Xn = (sx - b.vx) * Zn / b.f
        width = w * rng.uniform(0.15, 0.3) * Zn / b.f
        b.foreground.append(pole_shape(b, Xn, Zn, rng.uniform(6, 9), width, jitter(rng, (110, 115, 110), 12)))
        return
    r = rng.uniform(0.3, 0.45) * max(w, h)
    direction = 1.0 if from_right else -1.0
    edge = box[2] if from_right else box[0]
    cy = rng.uniform(box[1], box[3])
    green = jitter(rng, (55, 100, 40), 12, 0.2)
    for k in range(3):
        cx = edge + direction * r * (0.35 + 0.6 * k + rng.uniform(-0.1, 0.1))
        blob = ellipse(cx, cy + rng.uniform(-0.5, 0.5) * r, r, r * 0.85, 14)
        b.foreground.append(Shape(WC.VEGETATION, shade(green, rng.uniform(0.85, 1.15)), [blob]))


# --- assembling --------------------------------------------------------------------------------


def _populate(b: Builder, st: Street, sign_classes: list[int]) -> None:
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
        b.add(Z, street_light(b, X, Z, side))
    for _ in range(rng.integers(1, 4)):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(5, 40)
        X = st.right + rng.uniform(0.3, st.walk_r) if side > 0 else st.left - rng.uniform(0.3, st.walk_l)
        shape = pole_shape(
            b, X, Z, rng.uniform(2.5, 4.5), rng.uniform(0.12, 0.25), jitter(rng, (125, 125, 120), 15)
        )
        shape.obj = b.obj()
        b.add(Z, [shape])
    if rng.random() < 0.9:
        for _ in range(rng.integers(1, 4)):
            side = 1 if rng.random() < 0.6 else -1
            Z = rng.uniform(6, 25) if st.crosswalk is None else st.crosswalk[0] + rng.uniform(-1.5, 0)
            X = st.right + rng.uniform(0.4, 1.2) if side > 0 else st.left - rng.uniform(0.4, 1.2)
            b.add(Z, traffic_light(b, X, Z))
    for _ in range(rng.integers(0, 4)):
        side = 1 if rng.random() < 0.5 else -1
        Z = rng.uniform(5, 45)
        X = st.front_r - rng.uniform(0.3, 0.8) if side > 0 else st.front_l + rng.uniform(0.3, 0.8)
        b.add(Z, tree_shapes(b, X, Z))
    vehicles(b, st)
    people(b, st)


def make_scene(
    rng: np.random.Generator, aspect: float, style: SceneStyle, sign_classes: Sequence[int] = ()
) -> Scene:
    """A random street scene for a frame of the given aspect (W/H), holding the given traffic signs.

    ``sign_classes`` are the GTSDB classes of the signs to place (a sign that finds no free spot
    within the frame is left out); more signs are not added.
    """
    b = Builder(rng, aspect, style)
    st = street(b)
    sky(b)
    far_end(b, st)
    ground(b, st)
    frontage(b, st, -1)
    frontage(b, st, 1)
    _populate(b, st, list(sign_classes))
    if style.ego_hood:
        ego_hood(b)
    return Scene(aspect, b.shapes())


def random_sign_classes(
    rng: np.random.Generator, n_range: tuple[int, int], required: Sequence[int] = ()
) -> list[int]:
    """``required`` classes, then random ones (uniform over the 43) up to n_range[0]..n_range[1] in all."""
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    extra = [int(c) for c in rng.integers(0, GTSDB_NUM_CLASSES, size=max(0, n - len(required)))]
    return [*required, *extra]
