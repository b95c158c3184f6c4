"""The demo drive: one street kept in 3-D, seen from a camera moving forward, written as a video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from multiseg.cli import main
from multiseg.demo.builder import WC, Builder, Shape
from multiseg.demo.drive import NEAR, Body, DriveSpec, WorldBuilder, clip_near, drive_frames, make_drive, view
from multiseg.demo.world import CITYSCAPES_SCENE

SHORT = DriveSpec(seconds=1.2, fps=10, size=(256, 128))


def test_world_builder_parts_project_like_the_still_builder() -> None:
    """At t = 0 a part kept in 3-D lands where the still builder would have drawn it."""
    still = Builder(np.random.default_rng(5), 2.0, CITYSCAPES_SCENE)
    world = WorldBuilder(np.random.default_rng(5), 2.0, CITYSCAPES_SCENE)
    drive = make_drive(np.random.default_rng(0), SHORT)
    drive.focal, drive.horizon, drive.cam_height, drive.shift = world.f, world.h, world.hc, world.vx
    pts = np.array([[-0.3, 0.0], [0.3, 0.0], [0.2, 1.7], [-0.2, 1.7]])
    cases = [
        (still.ground(-2, 3, 4, 30), world.ground(-2, 3, 4, 30)),
        (still.side_plane(5.0, 3, 20, 0, 9), world.side_plane(5.0, 3, 20, 0, 9)),
        (still.local(2.5, 12.0, pts, Y=0.4), world.local(2.5, 12.0, pts, Y=0.4)),
        *zip(
            [s.contours[0] for s in still.box3d(1, 3, 0, 2, 8, 12, WC.CAR, (1, 2, 3), 1)],
            [s.contours[0] for s in world.box3d(1, 3, 0, 2, 8, 12, WC.CAR, (1, 2, 3), 1)],
            strict=True,
        ),
    ]
    for flat, deep in cases:
        assert deep.shape == (len(flat), 3)
        np.testing.assert_allclose(drive.project(deep), flat, rtol=1e-12, atol=1e-12)


def test_clip_near_cuts_polygons_at_the_near_plane() -> None:
    quad = np.array([[-1.0, 0, -2.0], [1.0, 0, -2.0], [1.0, 0, 8.0], [-1.0, 0, 8.0]])
    cut = clip_near(quad)
    assert len(cut) == 4 and (cut[:, 2] >= NEAR - 1e-12).all()
    assert sorted(cut[:, 2].round(9).tolist()) == [NEAR, NEAR, 8.0, 8.0]
    assert (clip_near(quad + [0, 0, 20]) == quad + [0, 0, 20]).all()  # all in front: unchanged
    assert len(clip_near(quad - [0, 0, 20])) == 0


def test_a_sign_grows_and_moves_outwards_as_the_camera_passes() -> None:
    drive = make_drive(np.random.default_rng(0), SHORT)
    world = WorldBuilder(np.random.default_rng(1), 2.0, CITYSCAPES_SCENE)
    rect = np.array([[-0.35, 2.0], [0.35, 2.0], [0.35, 2.7], [-0.35, 2.7]])
    sign = Shape(WC.TRAFFIC_SIGN, (0, 0, 0), [world.local(4.0, 20.0, rect)], 1, sign=33)
    drive.background, drive.bodies, drive.foreground = [], [Body(20.0, [sign])], []
    boxes = [view(drive, t).shapes[0].box for t in (0.0, 1.0, 2.0)]
    widths = [b[2] - b[0] for b in boxes]
    assert widths[0] < widths[1] < widths[2]
    assert boxes[0][0] < boxes[1][0] < boxes[2][0]  # on the right, it drifts right
    drive.speed = 12.0
    assert view(drive, 2.0).shapes == []  # passed: behind the camera


def test_drive_is_one_consistent_scene_with_signs_and_lane_markings() -> None:
    frames = list(drive_frames(0, SHORT))
    again = list(drive_frames(0, SHORT))
    assert len(frames) == SHORT.frames == 12
    assert all((a.rgb == b.rgb).all() for a, b in zip(frames, again, strict=True))  # a seed, a video
    assert not (next(drive_frames(1, SHORT)).rgb == frames[0].rgb).all()
    assert all(f.rgb.shape == (128, 256, 3) for f in frames)
    for f in frames:
        assert (f.world == WC.LANE_MARKING).any() and (f.world == WC.ROAD).any()
    assert sum(bool((f.world == WC.TRAFFIC_SIGN).any()) for f in frames) >= len(frames) // 2
    # The camera moves: neighbouring frames differ, but little (the same street, 0.8 m on).
    for a, b in zip(frames, frames[1:], strict=False):
        step = np.abs(a.rgb.astype(np.int16) - b.rgb).mean()
        assert 0.5 < step < 40
        assert set(a.sign_classes) & set(b.sign_classes) or not a.sign_classes
    assert np.abs(frames[0].rgb.astype(np.int16) - frames[-1].rgb).mean() > step


def test_demo_data_video_writes_an_mp4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "drive.mp4"
    assert main(["demo-data", "--video", str(out), "--seconds", "0.5", "--seed", "2"]) == 0
    assert "5 frames, 512x256, 10 fps" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    count = 0
    while (got := cap.read())[0]:
        assert got[1].shape == (256, 512, 3)
        count += 1
    assert count == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.mp4"]  # no temporary left
    assert main(["demo-data", "--video", str(tmp_path / "drive.avi"), "--seconds", "0.5"]) == 2
    assert "give a .mp4 name" in capsys.readouterr().err
    assert main(["demo-data", "--video", str(out), "--root", str(tmp_path)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.mp4"]
