"""Corrupt or truncated files: one-line errors naming the file (also from DataLoader workers), or with
``skip_bad`` a skip that is warned about, counted and reported."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import multiseg_cmd

from multiseg.data.io import FileError, read_image
from multiseg.data.pipeline import SkippedFiles, build_dataset, build_train_loader
from multiseg.data.transforms import TrainTransform, TransformConfig
from multiseg.demo.synthetic import corrupt_png, write_cityscapes
from multiseg.errors import MultisegError

CFG = TransformConfig(fit_width=96, fit_height=48, crop_height=32, crop_width=64)


def _truncate(path: Path) -> None:
    """Cut a real PNG in half, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("workers", [0, 1])
def test_truncated_png_is_a_one_line_error_naming_the_file(tmp_path: Path, workers: int) -> None:
    """torch re-raises a worker's exception with the worker's traceback; FileError keeps one line."""
    images = write_cityscapes(tmp_path, "train", {"aachen": 4}, size=(96, 48))
    _truncate(images[2])
    ds = build_dataset("cityscapes", tmp_path, "train", transform=TrainTransform(CFG))
    loader, _, _ = build_train_loader([ds], batch_size=2, num_workers=workers, policy="none")
    with pytest.raises(MultisegError) as exc:
        list(loader)
    assert _one_line(exc.value) == f"{images[2]}: truncated PNG (no IEND chunk)"


def test_file_error_survives_pickling_and_leaves_plain_messages_alone() -> None:
    err = FileError("/data/a.png: truncated PNG (no IEND chunk)")
    assert str(pickle.loads(pickle.dumps(err))) == str(err) == "/data/a.png: truncated PNG (no IEND chunk)"
    wrapped = (
        "Caught FileError in DataLoader worker process 3.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise FileError(m)\n'
        "multiseg.data.io.FileError: /data/a.png: truncated PNG (no IEND chunk)\n"
    )
    assert str(FileError(wrapped)) == "/data/a.png: truncated PNG (no IEND chunk)"
    assert str(FileError("Caught something else")) == "Caught something else"


def test_real_truncated_png_is_rejected_by_the_reader(tmp_path: Path) -> None:
    (image,) = write_cityscapes(tmp_path, "train", {"aachen": 1}, size=(96, 48))
    _truncate(image)
    with pytest.raises(FileError, match="truncated PNG") as exc:
        read_image(image)
    assert str(image) in _one_line(exc.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_skips_warns_counts_and_reports(tmp_path: Path, workers: int) -> None:
    """Counts come back from worker processes through the batches (warnings print in the workers)."""
    images = write_cityscapes(tmp_path, "train", {"aachen": 6}, size=(96, 48))
    _truncate(images[1])
    _truncate(images[4])
    ds = build_dataset("cityscapes", tmp_path, "train", transform=TrainTransform(CFG), skip_bad=True)
    loader, sampler, _ = build_train_loader([ds], batch_size=2, num_workers=workers, policy="none")
    skipped, seen = SkippedFiles(), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(2):
            sampler.set_epoch(epoch)
            for batch in loader:
                skipped.add(batch)
                seen += batch["path"]
    assert len(seen) == 12 and str(images[1]) not in seen and str(images[4]) not in seen
    assert skipped.files == 2 and sum(skipped.counts.values()) == 4  # each drawn once per epoch
    report = skipped.report()
    assert report == f"warning: skipped 2 unreadable file(s) (4 time(s), skip_bad): {images[1]}, {images[4]}"
    if workers == 0:  # a forked worker inherits pytest's warning recorder, so only here can the test see it
        warned = [str(w.message) for w in caught]
        assert f"skipping bad sample: {images[1]}: truncated PNG (no IEND chunk)" in warned


def test_skipped_files_marks_stand_in_batches_and_reports_nothing_when_clean() -> None:
    counter = SkippedFiles()
    assert counter.add({"skipped": []}) is False and counter.add({}) is False
    assert counter.report() == ""
    assert counter.add({"skipped": ["/d/b.png", "/d/a.png"]}) is True
    counter.add({"skipped": ["/d/b.png", "/d/c.png", "/d/e.png"]})
    assert counter.report() == (
        "warning: skipped 4 unreadable file(s) (5 time(s), skip_bad): /d/a.png, /d/b.png, /d/c.png (+1 more)"
    )


def _train_one_epoch(root: Path) -> subprocess.CompletedProcess[str]:
    """``multiseg train`` for one epoch on the Cityscapes under ``root``, with 1 DataLoader worker."""
    config = root / "run.yaml"  # a config file, so the demo-run defaults do not apply
    config.write_text(
        f"data_root: {root}\nout_dir: {root / 'runs'}\ndatasets: [cityscapes]\nresize_width: 128\n"
        "resize_height: 64\ncrop_height: 64\ncrop_width: 128\nworkers: 1\nthreads: 1\nepochs: 1\n"
        "batch_size: 4\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*multiseg_cmd(), "train", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "truncated PNG (no IEND chunk)"),
        (corrupt_png, "corrupt or unsupported image file (libpng error: bad adaptive filter value)"),
    ],
    ids=["truncated", "corrupt"],
)
def test_cli_train_stops_on_a_bad_image_with_multiseg_s_line_only(
    tmp_path: Path, damage: Callable[[Path], None], reason: str
) -> None:
    """``multiseg train`` with a DataLoader worker (a forked process) exits 2; stderr holds one error line
    naming the file, and nothing from libpng itself."""
    images = write_cityscapes(tmp_path / "cityscapes", "train", {"aachen": 4}, size=(128, 64))
    write_cityscapes(tmp_path / "cityscapes", "val", {"frankfurt": 1}, size=(128, 64), seed=1)
    damage(images[1])
    res = _train_one_epoch(tmp_path)
    assert res.returncode == 2
    assert "libpng" not in res.stderr.replace("(libpng error", "")
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert errors == [f"multiseg train: error: {images[1]}: {reason}"]


def test_any_per_sample_error_from_a_worker_is_one_line(tmp_path: Path) -> None:
    """A loader's own MultisegError (not a reader's FileError) also reaches the main process as one line."""
    write_cityscapes(tmp_path, "train", {"aachen": 2}, size=(96, 48))
    ds = build_dataset("cityscapes", tmp_path, "train", transform=TrainTransform(CFG))

    def load(index: int) -> None:
        raise MultisegError(f"sample {index}: a loader-specific problem")

    ds.load = load  # what GTSDB's Meletis reader raises for an 8-bit mask, without writing one
    loader, _, _ = build_train_loader([ds], batch_size=2, num_workers=1, policy="none")
    with pytest.raises(MultisegError) as exc:
        list(loader)
    assert _one_line(exc.value).endswith("a loader-specific problem")


def test_corrupt_png_is_one_line_with_the_codec_reason_and_nothing_from_libpng(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """libpng's own "libpng error: ..." line no longer reaches stderr; its reason is in the FileError."""
    (image,) = write_cityscapes(tmp_path, "train", {"aachen": 1}, size=(96, 48))
    corrupt_png(image)
    capfd.readouterr()
    with pytest.raises(FileError) as exc:
        read_image(image)
    assert _one_line(exc.value) == (
        f"{image}: corrupt or unsupported image file (libpng error: bad adaptive filter value)"
    )
    os.write(2, b"")  # the real stderr is back in place after the decode
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"


def test_other_output_written_during_decodes_is_passed_on(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Descriptor 2 points at the capture only around each decode; another thread's writes all arrive."""
    import threading

    (image,) = write_cityscapes(tmp_path, "train", {"aachen": 1}, size=(96, 48))
    capfd.readouterr()
    done = threading.Event()

    def progress() -> None:
        for i in range(300):
            os.write(2, f"\rstep {i}".encode())
        done.set()

    thread = threading.Thread(target=progress)
    thread.start()
    while not done.is_set():
        read_image(image)
    thread.join()
    pieces = capfd.readouterr().err.split("\r")  # a write caught in a decode's window arrives just after it
    assert pieces[0] == "" and sorted(pieces[1:]) == sorted(f"step {i}" for i in range(300))
