"""A drive through one demo street: the street is built once in 3-D and seen from a moving camera.

The still frames project every part while it is built (:class:`~multiseg.demo.builder.Builder`). A video
needs one street from many camera positions, so :class:`WorldBuilder` keeps the parts in 3-D: its
projections return the points themselves (N x 3, metres: ``X`` right, ``Y`` up, ``Z`` forward), while
the few parts the layout draws in screen space (sky, clouds, the terrain band behind the street, the
ego vehicle's hood) keep their N x 2 scene coordinates and stay put on the screen, as things at infinity
and on the car do. :func:`view` projects the street for the camera ``t`` seconds into the drive,
clipping every polygon at a near plane, and lets the traffic move along its lanes (a vehicle beyond the
street's far end is not drawn: traffic comes into view there). Painter's order is
the still builder's: the background as drawn (far to near), the objects sorted far to near at their
depth of the moment, then the foreground.

The street itself (lanes, markings, sidewalks, frontage, the far end) comes from :mod:`.layout`, so the
drive looks like the demo Cityscapes (its camera, framing and hood); what stands along it is placed here
for a whole route: signs on poles every 12 to 22 m, street lights, trees, pedestrians, parked cars, and
traffic in every lane but the ego lane, which stays clear. The camera's colour, brightness and noise
pattern are drawn once per drive, so frames do not flicker. A seed gives the same video, frame by frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from multiseg.demo.actors import (
    car,
    ego_hood,
    long_vehicle,
    person,
    street_light,
    traffic_light,
    tree_shapes,
    truck,
)
from multiseg.demo.builder import WC, Builder, Scene, Shape, Street, jitter
from multiseg.demo.layout import far_end, frontage, ground, sky, street
from multiseg.demo.render import Camera, Frame, render
from multiseg.demo.world import CITYSCAPES_CAMERA, CITYSCAPES_SCENE, CITYSCAPES_SIZE
from multiseg.errors import MultisegError
from multiseg.files import atomic_path
from multiseg.labels import GTSDB_NUM_CLASSES

#: Nothing nearer to the camera than this (metres) is drawn; polygons are cut there.
NEAR = 0.5
_DRIVE = 4  # the drive's stream in the world's random-generator seeds (1-3: the datasets)


@dataclass(frozen=True)
class DriveSpec:
    """How long, how fast and how big: ``seconds`` at ``fps``, ``speed`` m/s, frames ``size`` (W, H)."""

    seconds: float = 10.0
    fps: float = 10.0
    speed: float = 8.0
    size: tuple[int, int] = CITYSCAPES_SIZE

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def length(self) -> float:
        """Metres the camera travels."""
        return self.speed * self.seconds


class WorldBuilder(Builder):
    """A :class:`Builder` whose parts stay 3-D: projections return the world points (N x 3)."""

    def proj(self, X, Y, Z) -> np.ndarray:  # noqa: ANN001 - the parent's sequences or arrays
        return np.stack(np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (X, Y, Z))), -1)

    def local(self, X: float, Z: float, pts: np.ndarray, Y: float = 0.0) -> np.ndarray:
        return np.stack([X + pts[:, 0], Y + pts[:, 1], np.full(len(pts), float(Z))], -1)


@dataclass
class Body:
    """An object of the drive: its shapes (3-D), its nearest depth at t = 0 and its speed along Z (m/s)."""

    z: float
    shapes: list[Shape]
    speed: float = 0.0


@dataclass
class Drive:
    """One street in 3-D with the camera's intrinsics and the ego speed: what :func:`view` projects."""

    aspect: float
    focal: float
    horizon: float
    cam_height: float
    shift: float
    speed: float
    z_end: float
    background: list[Shape]
    bodies: list[Body]
    foreground: list[Shape]

    def project(self, pts: np.ndarray) -> np.ndarray:
        """Camera-relative 3-D points (in front of the camera) -> scene coordinates (N x 2)."""
        z = pts[:, 2]
        return np.stack(
            [
                self.shift + self.focal * pts[:, 0] / z,
                self.horizon + self.focal * (self.cam_height - pts[:, 1]) / z,
            ],
            -1,
        )


def clip_near(pts: np.ndarray, near: float = NEAR) -> np.ndarray:
    """The part of a closed 3-D polygon with ``Z >= near`` (Sutherland-Hodgman against one plane)."""
    inside = pts[:, 2] >= near
    if inside.all():
        return pts
    out: list[np.ndarray] = []
    for i in range(len(pts)):
        j = (i + 1) % len(pts)
        if inside[i]:
            out.append(pts[i])
        if inside[i] != inside[j]:
            t = (near - pts[i, 2]) / (pts[j, 2] - pts[i, 2])
            out.append(pts[i] + t * (pts[j] - pts[i]))
    return np.array(out).reshape(-1, 3)


def _view_shape(drive: Drive, shape: Shape, dz: float) -> Shape | None:
    """``shape`` seen from the camera (3-D contours moved by ``dz`` along Z and projected)."""
    contours = []
    for c in shape.contours:
        if c.shape[1] == 2:
            contours.append(c)
            continue
        moved = c + np.array([0.0, 0.0, dz])
        clipped = clip_near(moved)
        if len(clipped) >= 3:
            contours.append(drive.project(clipped))
    if not contours:
        return None
    box = None
    if shape.sign >= 0:
        pts = contours[0]
        box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
    return replace(shape, contours=contours, box=box)


def view(drive: Drive, t: float) -> Scene:
    """The street ``t`` seconds into the drive: the camera ``speed * t`` metres on, traffic moved too."""
    cz = drive.speed * t
    shapes = [s for sh in drive.background if (s := _view_shape(drive, sh, -cz)) is not None]
    for body in sorted(drive.bodies, key=lambda b: -(b.z + b.speed * t)):
        z = body.z + body.speed * t
        if z > drive.z_end or z < cz - 30:  # beyond the street's far end, or far behind the camera
            continue
        dz = body.speed * t - cz
        shapes += [s for sh in body.shapes if (s := _view_shape(drive, sh, dz)) is not None]
    shapes += [s for sh in drive.foreground if (s := _view_shape(drive, sh, -cz)) is not None]
    return Scene(drive.aspect, shapes)


# -- placing things along the route ---------------------------------------------------------------


def _sign_pole(b: WorldBuilder, st: Street, Z: float, classes: list[int]) -> Body:
    """A pole on a sidewalk (mostly the right one) carrying one or two signs, stacked."""
    rng = b.rng
    side = 1 if rng.random() < 0.7 else -1
    X = st.right + rng.uniform(0.6, st.walk_r) if side > 0 else st.left - rng.uniform(0.6, st.walk_l)
    size = rng.uniform(0.6, 0.9)
    top = rng.uniform(2.2, 3.0)
    pole_w = rng.uniform(0.06, 0.09)
    o = b.obj()
    pole = np.array([[-pole_w / 2, 0], [pole_w / 2, 0], [pole_w / 2, top], [-pole_w / 2, top]])
    shapes = [Shape(WC.POLE, jitter(rng, (140, 140, 140), 15), [b.local(X, Z, pole)], o)]
    for k, cid in enumerate(classes):
        cy = top - size / 2 - k * size * 1.08
        half_w = size * rng.uniform(0.85, 1.0) / 2
        rect = np.array(
            [
                [-half_w, cy - size / 2],
                [half_w, cy - size / 2],
                [half_w, cy + size / 2],
                [-half_w, cy + size / 2],
            ]
        )
        gain = rng.uniform(0.75, 1.1)
        shapes.append(
            Shape(WC.TRAFFIC_SIGN, (220, 220, 0), [b.local(X, Z - 0.01, rect)], b.obj(), sign=cid, gain=gain)
        )
    return Body(Z, shapes)


def _sidewalk_x(b: WorldBuilder, st: Street, side: int, lo: float) -> float:
    rng = b.rng
    return st.right + rng.uniform(lo, st.walk_r) if side > 0 else st.left - rng.uniform(lo, st.walk_l)


def _roadside(b: WorldBuilder, st: Street, end: float) -> list[Body]:
    """Signs, street lights, trees, pedestrians and traffic lights along the whole route."""
    rng = b.rng
    bodies: list[Body] = []
    z = rng.uniform(10, 16)
    while z < end:
        n = 2 if rng.random() < 0.25 else 1
        bodies.append(_sign_pole(b, st, z, [int(c) for c in rng.integers(0, GTSDB_NUM_CLASSES, n)]))
        z += rng.uniform(12, 22)
    for side in (-1, 1):
        z = rng.uniform(5, 20)
        while z < end:
            X = st.right + rng.uniform(0.4, 1.0) if side > 0 else st.left - rng.uniform(0.4, 1.0)
            bodies.append(Body(z, street_light(b, X, z, side)))
            z += rng.uniform(22, 35)
        z = rng.uniform(4, 15)
        while z < end:
            X = st.front_r - rng.uniform(0.3, 0.8) if side > 0 else st.front_l + rng.uniform(0.3, 0.8)
            bodies.append(Body(z, tree_shapes(b, X, z)))
            z += rng.uniform(10, 30)
        z = rng.uniform(4, 12)
        while z < end:
            walk = rng.uniform(-1.4, 1.4) if rng.random() < 0.6 else 0.0
            bodies.append(Body(z, person(b, _sidewalk_x(b, st, side, 0.5), z, facing=0), walk))
            z += rng.uniform(6, 25)
    if st.crosswalk is not None:
        for side in (-1, 1):
            z = st.crosswalk[0] - rng.uniform(0, 1.5)
            X = st.right + rng.uniform(0.4, 1.2) if side > 0 else st.left - rng.uniform(0.4, 1.2)
            bodies.append(Body(z, traffic_light(b, X, z)))
    return bodies


def _vehicle(b: WorldBuilder, xc: float, z: float, oncoming: bool) -> tuple[list[Shape], float]:
    """A car, truck or bus at lane centre ``xc``; returns its shapes and its length."""
    r = b.rng.random()
    if r < 0.75:
        return car(b, xc, z, oncoming), 5.0
    if r < 0.88:
        return truck(b, xc, z, oncoming), 11.5
    return long_vehicle(b, xc, z, WC.BUS), 13.0


def _traffic(b: WorldBuilder, st: Street, ego: int, spec: DriveSpec, end: float) -> list[Body]:
    """Moving vehicles in every lane but the ego lane (one speed per lane), parked cars at the curbs."""
    rng = b.rng
    bodies: list[Body] = []
    for lane, xc in enumerate(st.lane_centres):
        if lane == ego:
            continue
        oncoming = lane < st.oncoming
        speed = -rng.uniform(6, 11) if oncoming else rng.uniform(0.5, 1.2) * spec.speed
        if st.tram_lane == lane:
            z = rng.uniform(15, 40)
            bodies.append(Body(z, long_vehicle(b, xc, z, WC.ON_RAILS), speed))
            continue
        z = rng.uniform(5, 15)
        reach = end + (abs(speed) + spec.speed) * spec.seconds if oncoming else end
        while z < reach:
            shapes, length = _vehicle(b, xc + rng.uniform(-0.3, 0.3), z, oncoming)
            bodies.append(Body(z, shapes, speed))
            z += length + rng.uniform(6, 30)
    for side, parking in zip((-1, 1), st.parking, strict=True):
        if parking:
            xc = st.right - 1.15 if side > 0 else st.left + 1.15
            z = rng.uniform(4, 12)
            while z < end:
                if rng.random() < 0.8:
                    bodies.append(Body(z, car(b, xc, z, oncoming=False)))
                z += rng.uniform(5, 9)
    return bodies


def make_drive(rng: np.random.Generator, spec: DriveSpec) -> Drive:
    """A street long enough for the drive, with everything along it, kept in 3-D (see the module doc)."""
    w, h = spec.size
    b = WorldBuilder(rng, w / h, CITYSCAPES_SCENE)
    st = street(b)
    st.z_end = spec.length + rng.uniform(90, 140)
    ego = int(np.argmin([abs(x) for x in st.lane_centres]))
    end = spec.length + 60  # what the camera sees ahead at the end of the drive
    sky(b)
    far_end(b, st)
    ground(b, st, reach=end)
    frontage(b, st, -1)
    frontage(b, st, 1)
    bodies = _roadside(b, st, end) + _traffic(b, st, ego, spec, end)
    ego_hood(b)
    return Drive(b.aspect, b.f, b.h, b.hc, b.vx, spec.speed, st.z_end, b.background, bodies, b.foreground)


def fixed_camera(cam: Camera, rng: np.random.Generator) -> Camera:
    """``cam`` with its per-frame ranges drawn once: one colour cast and exposure for a whole video."""
    gain = tuple(float(g * (1 + rng.uniform(-cam.gain_jitter, cam.gain_jitter))) for g in cam.gain)
    pick = [float(rng.uniform(*r)) for r in (cam.brightness, cam.contrast, cam.gamma)]
    return replace(
        cam,
        gain=gain,
        gain_jitter=0.0,
        brightness=(pick[0],) * 2,
        contrast=(pick[1],) * 2,
        gamma=(pick[2],) * 2,
    )  # type: ignore[arg-type]


def drive_frames(seed: int, spec: DriveSpec = DriveSpec()) -> Iterator[Frame]:
    """The drive's frames, one at a time (frame ``i`` at ``t = i / fps``)."""
    rng = np.random.default_rng([seed, _DRIVE, 0])
    drive = make_drive(rng, spec)
    camera = fixed_camera(CITYSCAPES_CAMERA, rng)
    w, h = spec.size
    for i in range(spec.frames):
        # The same noise seed every frame: a fixed sensor pattern, no flicker.
        yield render(view(drive, i / spec.fps), w, h, camera, np.random.default_rng([seed, _DRIVE, 1]))


@dataclass(frozen=True)
class DriveSummary:
    """What :func:`write_drive_video` wrote."""

    path: Path
    seed: int
    frames: int
    fps: float
    size: tuple[int, int]

    def __str__(self) -> str:
        w, h = self.size
        return (
            f"demo drive (seed {self.seed}): {self.frames} frames, {w}x{h}, {self.fps:g} fps "
            f"({self.frames / self.fps:g} s, mp4v) -> {self.path}"
        )


def write_drive_video(
    path: Path, seed: int = 0, spec: DriveSpec = DriveSpec(), progress: bool = True
) -> DriveSummary:
    """Render the drive into an MPEG-4 video (``mp4v`` in ``.mp4``: what OpenCV writes everywhere).

    Written to a temporary file beside ``path`` and renamed when complete: an error or Ctrl-C leaves
    no half-written video.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() != ".mp4":
        raise MultisegError(f"{path}: the demo drive is written as .mp4 (mp4v); give a .mp4 name")
    if spec.fps <= 0 or spec.seconds <= 0:
        raise MultisegError(
            f"the drive needs seconds > 0 and fps > 0, got {spec.seconds} s at {spec.fps} fps"
        )
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, spec.size)
        if not writer.isOpened():
            raise MultisegError(f"{path}: OpenCV cannot write an mp4v video here")
        try:
            frames = tqdm(
                drive_frames(seed, spec),
                total=spec.frames,
                desc="demo drive",
                unit="frame",
                disable=not progress,
            )
            for frame in frames:
                writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
        finally:
            with contextlib.suppress(cv2.error):
                writer.release()
    return DriveSummary(path, seed, spec.frames, spec.fps, spec.size)
