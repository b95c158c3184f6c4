"""benchmarks/probe_sign_classes.py: box crops with context, written per split and class, then a real
(tiny) pretraining run that reports held-out accuracy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import load_benchmark

from multiseg.data.gtsdb import parse_gt_txt
from multiseg.demo.world import write_demo_world

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "probe_sign_classes.py"


def test_crop_box_adds_context_and_clips_to_the_frame() -> None:
    probe = load_benchmark("probe_sign_classes")
    image = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3)
    crop = probe.crop_box(image, np.array([50.0, 40.0, 70.0, 50.0]), context=0.1)  # 20x10, margin 2
    assert crop.shape[:2] == (14, 24)
    np.testing.assert_array_equal(crop[0, 0], image[38, 48])
    edge = probe.crop_box(image, np.array([0.0, 90.0, 10.0, 100.0]), context=0.5)
    assert edge.shape[:2] == (15, 15) and (edge[0, 0] == image[85, 0]).all()


def test_probe_writes_every_train_box_and_reports_accuracy(tmp_path: Path) -> None:
    world = write_demo_world(tmp_path / "world", n_frames=9).root
    out = tmp_path / "probe"
    args = ["--data", str(world / "gtsdb"), "--out", str(out), "--epochs", "1", "--image-size", "16"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--batch-size", "8", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    boxes = parse_gt_txt(world / "gtsdb" / "FullIJCNN2013" / "gt.txt")
    n_train = len(list((world / "gtsdb" / "true_masks" / "gtFine" / "train").glob("*.png")))
    train_boxes = [b for b in boxes if int(b.stem) < n_train]
    written = sorted((out / "crops" / "train").rglob("*.png"))
    assert len(written) == len(train_boxes)
    assert {p.parent.name for p in written} == {f"{b.class_id:02d}" for b in train_boxes}
    val_classes = {p.parent.name for p in (out / "crops" / "val").rglob("*.png")}
    assert val_classes <= {p.parent.name for p in written}  # classes the train boxes never show are left out
    assert re.search(rf"train crops: {len(train_boxes)} over \d+ classes", result.stdout)
    accuracy = re.search(r"held-out accuracy: (\S+)", result.stdout)
    assert accuracy is not None and 0.0 <= float(accuracy.group(1)) <= 1.0
    again = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "is not empty" in again.stderr
