"""``--skip-bad`` end to end: ``multiseg train`` and ``multiseg eval`` skip a truncated image with a warning,
count it and report it at the end; without the flag they stop with one line naming the file. The run uses
class weights, whose frequency pass reads every training sample before the first step (issue 21, item 12)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multiseg.demo.synthetic import write_cityscapes


def _multiseg(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("multiseg", path=str(Path(sys.executable).parent))
    cmd = [*([exe] if exe else [sys.executable, "-m", "multiseg.cli"]), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
def test_train_and_eval_skip_bad(tmp_path: Path) -> None:
    train = write_cityscapes(tmp_path / "cityscapes", "train", {"aachen": 8}, size=(128, 64))
    val = write_cityscapes(tmp_path / "cityscapes", "val", {"frankfurt": 3}, size=(128, 64), seed=1)
    _truncate(train[2])
    _truncate(val[1])
    config = tmp_path / "run.yaml"  # a config file, so the demo-run defaults do not apply
    config.write_text(
        f"data_root: {tmp_path}\nout_dir: {tmp_path / 'runs'}\ndatasets: [cityscapes]\nmodel: enet\n"
        "resize_width: 64\nresize_height: 32\ncrop_height: 32\ncrop_width: 64\nworkers: 1\nthreads: 1\n"
        "epochs: 1\n"
        "batch_size: 4\nclass_weighted_heads: [cityscapes]\n"  # the class-frequency pass reads train[2] first
    )

    stop = _multiseg("train", str(config))
    assert stop.returncode == 2
    errors = [line for line in stop.stderr.splitlines() if "error" in line]
    assert errors == [f"multiseg train: error: {val[1]}: truncated PNG (no IEND chunk)"]  # checked first

    res = _multiseg("train", str(config), "--skip-bad")
    assert res.returncode == 0, res.stderr
    assert "skipping bad sample" in res.stderr
    assert "class frequencies" in res.stderr  # the pass ran, and went past the corrupt file
    (report,) = [line for line in res.stdout.splitlines() if line.startswith("warning: skipped")]
    assert "2 unreadable file(s)" in report and str(train[2]) in report and str(val[1]) in report
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if (p / "last.pt").is_file()]

    stop = _multiseg("eval", str(run_dir), "--out", str(tmp_path / "e1"))
    assert stop.returncode == 2
    last = stop.stderr.strip().splitlines()[-1]
    assert last == f"multiseg eval: error: {val[1]}: truncated PNG (no IEND chunk)"

    res = _multiseg("eval", str(run_dir), "--out", str(tmp_path / "e2"), "--skip-bad")
    assert res.returncode == 0, res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last == f"warning: skipped 1 unreadable file(s) (1 time(s), skip_bad): {val[1]}"
    payload = json.loads((tmp_path / "e2" / "eval.json").read_text())
    assert payload["skipped_files"] == [str(val[1])]
    assert {r["images"] for r in payload["results"]} == {2}  # the stand-in batch is left out
