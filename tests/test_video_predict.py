"""``multiseg predict`` on videos, frame folders and streams: overlapped stages, bounded memory, bad input.

The demo drive (``multiseg demo-data --video``, 12 frames at 256x128 here) is the video; a tiny untrained
ENet checkpoint with the three demo heads stands in for a run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

import cv2
import numpy as np
import pytest

from multiseg.cli import main
from multiseg.demo.drive import DriveSpec, write_drive_video
from multiseg.deploy.stream import QUEUE_SIZE, run_stream

FRAMES = 12
SUMMARY = re.compile(
    r"model (?P<model>[\d.]+) FPS, end to end (?P<e2e>[\d.]+) FPS .*decode (?P<decode>[\d.]+) ms, "
    r"infer (?P<infer>[\d.]+) ms \(model (?P<model_ms>[\d.]+) ms\), encode (?P<encode>[\d.]+) ms; "
    r"at most (?P<held>\d+) frames in memory"
)


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "drive.mp4"
    write_drive_video(path, seed=1, spec=DriveSpec(seconds=FRAMES / 10, size=(256, 128)), progress=False)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, save_tiny_checkpoint: Callable[..., Path]) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "enet.pt", Path("unused"))


def _read_video(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames, fps


# -- the command ----------------------------------------------------------------------------------


def test_overlay_video_has_every_frame_read_and_prints_the_fps(
    drive: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "overlay.mp4"
    assert main(["predict", str(checkpoint), str(drive), "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert f"video: {FRAMES} frames written of {FRAMES} read, 256x128 at 10 fps, unified overlay" in text
    m = SUMMARY.search(text)
    assert m is not None, text
    assert all(float(m[k]) > 0 for k in ("model", "e2e", "decode", "infer", "model_ms", "encode"))
    assert float(m["model_ms"]) <= float(m["infer"])  # the network is part of the inference stage
    assert int(m["held"]) <= 2 * QUEUE_SIZE + 3
    frames, fps = _read_video(out)
    assert len(frames) == FRAMES and fps == pytest.approx(10)
    assert frames[0].shape == (128, 256, 3)
    source, _ = _read_video(drive)
    # The overlay is the frame blended with the map: close to the source, not equal to it.
    diff = np.abs(frames[5].astype(np.int16) - source[5]).mean()
    assert 3 < diff < 120

    # The live FPS is drawn top-left on a black box.
    def black(image: np.ndarray) -> float:
        return float((image[:8, :40] < 30).all(-1).mean())

    assert black(frames[3]) > 0.6 and black(source[3]) < 0.2
    assert sorted(p.name for p in out.parent.iterdir()) == ["overlay.mp4"]


def test_every_max_frames_size_fps_and_a_frame_folder(
    drive: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "every.avi"
    args = ["predict", str(checkpoint), str(drive), "--out", str(out), "--every", "3", "--max-frames", "3"]
    assert main([*args, "--out-size", "128x64", "--heads", "gtsdb"]) == 0
    assert "3 frames written of 3 read (1 in 3 of 7 decoded), 128x64 at 3.33333 fps, gtsdb overlay" in (
        capsys.readouterr().out
    )
    frames, fps = _read_video(out)
    assert len(frames) == 3 and frames[0].shape == (64, 128, 3) and fps == pytest.approx(10 / 3, rel=1e-3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(_read_video(drive)[0][:5]):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    out2 = tmp_path / "folder.mp4"
    assert main(["predict", str(checkpoint), str(folder), "--out", str(out2), "--fps", "5"]) == 0
    assert "5 frames written of 5 read, 256x128 at 5 fps" in capsys.readouterr().out
    frames, fps = _read_video(out2)
    assert len(frames) == 5 and fps == pytest.approx(5)


@pytest.mark.slow
def test_onnxruntime_backend_writes_the_same_video_as_torch(
    drive: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    from multiseg.deploy.export import export_onnx
    from multiseg.deploy.predict import load_for_predict

    # The TorchScript exporter: seconds here, where the default one takes a minute or more.
    model = load_for_predict(checkpoint)[0]
    onnx = export_onnx(model, tmp_path / "m.onnx", ["cityscapes"], (32, 64), legacy=True)
    base = ["predict", str(checkpoint), str(drive), "--max-frames", "4", "--heads", "cityscapes"]
    base += ["--codec", "FFV1"]
    assert main([*base, "--out", str(tmp_path / "torch.avi"), "--device", "cpu"]) == 0
    assert (
        main([*base, "--out", str(tmp_path / "ort.avi"), "--backend", "onnxruntime", "--onnx", str(onnx)])
        == 0
    )
    assert "(onnxruntime, cpu" in capsys.readouterr().out
    a, _ = _read_video(tmp_path / "torch.avi")
    b, _ = _read_video(tmp_path / "ort.avi")
    assert len(a) == len(b) == 4
    for x, y in zip(a, b, strict=True):  # FFV1 is lossless: only the FPS caption and rare ties differ
        same = (x[20:] == y[20:]).all(axis=-1).mean()
        assert same > 0.999


# -- the pipeline ---------------------------------------------------------------------------------


def _frames(n: int | None, produced: list[int]) -> object:
    for i in count() if n is None else range(n):
        produced.append(i)
        yield np.full((4, 4, 3), i % 256, np.uint8)


def test_streaming_holds_a_bounded_number_of_frames() -> None:
    produced: list[int] = []
    written: list[int] = []
    ahead: list[int] = []

    def slow_encode(frame: np.ndarray, result: int, caption: str) -> None:
        ahead.append(len(produced) - len(written))  # decoded but not yet written
        time.sleep(0.002)
        written.append(result)

    stats = run_stream(_frames(200, produced), lambda f: (int(f[0, 0, 0]), 0.0), slow_encode,
                       queue_size=2, progress=False)  # fmt: skip
    assert stats.read == stats.written == 200 and written == [i % 256 for i in range(200)]
    assert stats.max_in_flight <= 2 * 2 + 3 and max(ahead) <= 2 * 2 + 3
    # The same stream without the bound: the decoder runs far ahead of the slow encoder.
    produced.clear()
    written.clear()
    ahead.clear()
    loose = run_stream(_frames(200, produced), lambda f: (int(f[0, 0, 0]), 0.0), slow_encode,
                       queue_size=10_000, progress=False)  # fmt: skip
    assert loose.max_in_flight > 50 and max(ahead) > 50


def test_decode_infer_and_encode_overlap() -> None:
    spans: dict[str, list[tuple[float, float]]] = {"decode": [], "infer": [], "encode": []}

    def timed(stage: str, seconds: float) -> None:
        start = time.perf_counter()
        time.sleep(seconds)
        spans[stage].append((start, time.perf_counter()))

    def frames() -> object:
        for i in range(20):
            timed("decode", 0.01)
            yield np.full((2, 2, 3), i, np.uint8)

    def infer(frame: np.ndarray) -> tuple[int, float]:
        timed("infer", 0.01)
        return int(frame[0, 0, 0]), 0.01

    stats = run_stream(frames(), infer, lambda f, r, c: timed("encode", 0.01), progress=False)
    assert stats.written == 20

    def overlaps(a: str, b: str) -> int:
        return sum(s1 < e2 and s2 < e1 for s1, e1 in spans[a] for s2, e2 in spans[b])

    assert overlaps("decode", "infer") > 5 and overlaps("infer", "encode") > 5


def test_an_error_in_any_stage_stops_the_stream_and_is_raised() -> None:
    def bad_frames() -> object:
        yield np.zeros((2, 2, 3), np.uint8)
        raise ValueError("frame 2 is broken")

    with pytest.raises(ValueError, match="frame 2"):
        run_stream(bad_frames(), lambda f: (0, 0.0), lambda f, r, c: None, progress=False)

    def bad_encode(frame: np.ndarray, result: int, caption: str) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_stream(_frames(None, []), lambda f: (0, 0.0), bad_encode, progress=False)


def test_ctrl_c_ends_a_camera_stream_and_keeps_it_but_aborts_a_file() -> None:
    written: list[int] = []

    def encode(frame: np.ndarray, result: int, caption: str) -> None:
        time.sleep(0.002)
        written.append(result)

    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    stats = run_stream(_frames(None, []), lambda f: (int(f[0, 0, 0]), 0.0), encode, live=True, progress=False)
    assert stats.interrupted and stats.written == stats.read == len(written) > 0
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run_stream(_frames(None, []), lambda f: (0, 0.0), encode, live=False, progress=False)


# -- bad input ------------------------------------------------------------------------------------

CASES = """
import json, os, sys, tempfile
from multiseg.cli import main
results = []
for args in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            rc = main(args)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
        err.seek(0)
        results.append([rc, err.read().decode()])
print(json.dumps(results))
"""


@pytest.mark.slow
def test_bad_video_input_is_one_line_exit_2_and_leaves_nothing(
    drive: Path, checkpoint: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    broken = tmp_path / "frames"
    broken.mkdir()
    for i, frame in enumerate(_read_video(drive)[0][:3]):
        cv2.imwrite(str(broken / f"{i}.png"), frame)
    (broken / "3.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    out.mkdir()
    ck = str(checkpoint)
    cases = {
        "garbage.mp4: cannot be read as a video": [ck, str(garbage), "--out", f"{out}/a.mp4"],
        "empty.mp4: cannot be read as a video": [ck, str(empty), "--out", f"{out}/a.mp4"],
        "camera 7 does not open": [ck, "7", "--out", f"{out}/a.mp4"],
        "cannot write .webm videos; use .mp4 (mp4v) or .avi (MJPG)": [
            ck, str(drive), "--out", f"{out}/a.webm"],
        "cannot write avc1 into .mp4; use .mp4 (mp4v) or .avi (MJPG)": [
            ck, str(drive), "--out", f"{out}/a.mp4", "--codec", "avc1"],
        "is a video or a camera: give --out a video file name": [ck, str(drive), "--out", f"{out}/folder"],
        "--every: only for a video --out": [ck, str(broken), "--out", f"{out}/images", "--every", "2"],
        "3.png": [ck, str(broken), "--out", f"{out}/b.mp4"],
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = json.dumps([["predict", *args] for args in cases.values()])
    proc = subprocess.run(
        [sys.executable, "-c", CASES, argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    for (expected, _), (rc, err) in zip(cases.items(), json.loads(proc.stdout.splitlines()[-1]), strict=True):
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("predict:")]  # bar
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("multiseg predict: error: "), (
            expected,
            err,
        )
        assert expected in lines[0], (expected, lines[0])
    assert list(out.iterdir()) == []  # no video, no temporary file
