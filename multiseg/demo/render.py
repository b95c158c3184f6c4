"""Rasterise a :class:`~multiseg.demo.builder.Scene` through a camera into pixels and label maps.

Every shape is filled into one int32 "shape id" map in painter's order; the class, object and
colour maps are lookups of that map, so the image and its labels agree exactly. Traffic signs are
sprites from :mod:`multiseg.demo.signs` whose own pixels (the true mask) are written into the
same map. The camera then adds per-class texture, its colour cast, brightness, contrast, vignette,
blur and sensor noise: the domain shift between the three datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from multiseg.demo.builder import NUM_WORLD_CLASSES, WC, Scene
from multiseg.demo.signs import render_sign

_SHIFT = 4


@dataclass(frozen=True)
class Camera:
    """Photometric character of a camera (ranges are sampled per frame)."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gain_jitter: float = 0.04
    brightness: tuple[float, float] = (0.9, 1.1)
    contrast: tuple[float, float] = (0.9, 1.05)
    gamma: tuple[float, float] = (0.95, 1.05)
    noise: float = 3.0
    blur: float = 0.5
    vignette: float = 0.1


@dataclass
class Frame:
    """A rendered frame: RGB image, world-class map, object keys, and the signs' visible pixels.

    ``signs`` holds 0 where there is no sign and ``k`` on the visible pixels of sign ``k`` (1-based),
    whose GTSDB class is ``sign_classes[k - 1]``.
    """

    rgb: np.ndarray
    world: np.ndarray
    objects: np.ndarray
    signs: np.ndarray
    sign_classes: list[int]


def _texture_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per world class: fine-grain amplitude, blotch amplitude, top-to-bottom brightening."""
    fine = np.full(NUM_WORLD_CLASSES, 3.0, np.float32)
    coarse = np.full(NUM_WORLD_CLASSES, 3.0, np.float32)
    grad = np.zeros(NUM_WORLD_CLASSES, np.float32)
    for cls, f, c in (
        (WC.ROAD, 7, 6),
        (WC.SIDEWALK, 5, 6),
        (WC.VEGETATION, 14, 22),
        (WC.TERRAIN, 12, 10),
        (WC.BUILDING, 3, 8),
        (WC.WALL, 5, 7),
        (WC.SKY, 1, 6),
        (WC.FENCE, 4, 3),
        (WC.MANHOLE, 6, 3),
    ):
        fine[cls], coarse[cls] = f, c
    grad[WC.SKY] = 60.0
    grad[WC.ROAD] = 15.0
    return fine, coarse, grad


_FINE, _COARSE, _GRAD = _texture_tables()


def _rasterise(scene: Scene, width: int, height: int) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """Shape-id map (0 = nothing) plus, per shape, its colour, and the placed sign sprites."""
    ids = np.zeros((height, width), np.int32)
    off = scene.aspect / 2
    fixed = float(height * (1 << _SHIFT))
    half = 0.5 * (1 << _SHIFT)
    colors = np.zeros((len(scene.shapes) + 1, 3), np.float32)
    sprites: list[tuple] = []
    for i, sh in enumerate(scene.shapes, start=1):
        colors[i] = sh.color
        if sh.sign >= 0 and sh.box is not None:
            sprite = _place_sprite(ids, i, sh.sign, sh.box, off, height, width)
            if sprite is not None:
                sprites.append((*sprite, sh.gain, sh.sign))
            continue
        pts = [np.round((c + (off, 0.0)) * fixed - half).astype(np.int32) for c in sh.contours]
        cv2.fillPoly(ids, pts, i, cv2.LINE_8, _SHIFT)
    return ids, colors, sprites


def _place_sprite(
    ids: np.ndarray,
    i: int,
    class_id: int,
    box: tuple[float, float, float, float],
    off: float,
    height: int,
    width: int,
) -> tuple[int, int, int, np.ndarray] | None:
    x0, y0 = round((box[0] + off) * height), round(box[1] * height)
    x1, y1 = round((box[2] + off) * height), round(box[3] * height)
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return _place_cut_sprite(ids, i, class_id, (x0, y0, x1, y1), height, width)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, max(x1, x0 + 3)), min(height, max(y1, y0 + 3))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    rgb, mask = render_sign(class_id, x1 - x0, y1 - y0)
    ids[y0:y1, x0:x1][mask] = i
    return i, x0, y0, rgb


def _place_cut_sprite(
    ids: np.ndarray, i: int, class_id: int, box: tuple[int, int, int, int], height: int, width: int
) -> tuple[int, int, int, np.ndarray] | None:
    """A sign running off the frame (a passing camera): the sprite at its full size, cut at the edge."""
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if cx1 - cx0 < 1 or cy1 - cy0 < 1 or x1 - x0 < 3 or y1 - y0 < 3:
        return None
    rgb, mask = render_sign(class_id, x1 - x0, y1 - y0)
    window = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    ids[cy0:cy1, cx0:cx1][mask[window]] = i
    return i, cx0, cy0, np.ascontiguousarray(rgb[window])


def render(
    scene: Scene,
    width: int,
    height: int,
    camera: Camera,
    rng: np.random.Generator,
    texture_cell: int = 10,
) -> Frame:
    """Render ``scene`` at ``width`` x ``height`` through ``camera`` (noise drawn from ``rng``).

    ``texture_cell`` is the size in pixels of the surface blotches: a frame rendered at k times the
    resolution passes k times the default so its surfaces look the same (blur and sensor noise stay
    per pixel, as a camera's do).
    """
    ids, colors, sprites = _rasterise(scene, width, height)
    n = len(scene.shapes) + 1
    cls_of = np.zeros(n, np.uint8)
    obj_of = np.zeros(n, np.int32)
    sign_of = np.zeros(n, np.uint8)
    for i, sh in enumerate(scene.shapes, start=1):
        cls_of[i], obj_of[i] = int(sh.cls), sh.obj
    sign_classes: list[int] = []
    for i, *_rest, class_id in sprites:
        sign_classes.append(class_id)
        sign_of[i] = len(sign_classes)
    world = cls_of[ids]
    rgb = colors[ids]
    for i, x0, y0, sprite, gain, _ in sprites:
        h, w = sprite.shape[:2]
        vis = ids[y0 : y0 + h, x0 : x0 + w] == i
        rgb[y0 : y0 + h, x0 : x0 + w][vis] = sprite[vis].astype(np.float32) * gain
    _texture(rgb, world, rng, texture_cell)
    return Frame(_photometry(rgb, camera, rng), world, obj_of[ids], sign_of[ids], sign_classes)


def _texture(rgb: np.ndarray, world: np.ndarray, rng: np.random.Generator, cell: int) -> None:
    h, w = world.shape
    fine = rng.standard_normal((h, w), dtype=np.float32)
    small = rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    rgb += (_FINE[world] * fine + _COARSE[world] * coarse + _GRAD[world] * ramp)[..., None]


def _photometry(rgb: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    gain = np.asarray(cam.gain, np.float32) * (1 + rng.uniform(-cam.gain_jitter, cam.gain_jitter, 3)).astype(
        np.float32
    )
    rgb *= gain * np.float32(rng.uniform(*cam.brightness))
    contrast = np.float32(rng.uniform(*cam.contrast))
    rgb -= 128.0
    rgb *= contrast
    rgb += 128.0
    np.clip(rgb, 0.0, 255.0, out=rgb)
    gamma = rng.uniform(*cam.gamma)
    if abs(gamma - 1.0) > 1e-3:
        lut = (255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.float32)
        rgb = lut[rgb.astype(np.uint8)]
    if cam.vignette > 0:
        yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        rgb *= (1.0 - cam.vignette * 0.5 * (xx**2 + yy**2))[..., None]
    if cam.blur > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), cam.blur)
    rgb += rng.normal(0.0, cam.noise, (h, w, 1)).astype(np.float32)
    rgb += rng.normal(0.0, cam.noise * 0.5, (h, w, 3)).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)
