"""``multiseg eval --backend onnxruntime [--dtype int8]``: the deployed graph scored like the torch model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, save_tiny_checkpoint: Callable[..., Path]) -> Path:
    from multiseg.demo.world import write_demo_world

    root = tmp_path_factory.mktemp("demo") / "world"
    write_demo_world(root, seed=0, n_frames=5)
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "enet.pt", root)


INT8 = ("--backend", "onnxruntime", "--dtype", "int8")


def _eval(checkpoint: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "multiseg", "eval", str(checkpoint), "--out", str(out), "--workers", "0"]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=300)


def test_fp32_graph_scores_as_the_torch_model(checkpoint: Path, tmp_path: Path) -> None:
    torch_run = _eval(checkpoint, tmp_path / "torch")
    ort_run = _eval(checkpoint, tmp_path / "ort", "--backend", "onnxruntime")
    assert torch_run.returncode == 0 and ort_run.returncode == 0, ort_run.stderr
    meta = json.loads((tmp_path / "ort" / "eval.json").read_text())
    assert meta["backend"] == "onnxruntime" and meta["dtype"] == "fp32"
    agreement = meta["argmax_agreement_with_torch_fp32"]
    assert set(agreement) == {"cityscapes", "gtsdb", "vistas"}
    assert min(agreement.values()) > 0.999  # same weights, fp32: only ties and rounding may differ
    torch_scores = json.loads((tmp_path / "torch" / "eval.json").read_text())["results"]
    ort_scores = meta["results"]
    for a, b in zip(torch_scores, ort_scores, strict=True):
        assert (a["head"], a["dataset"], a["target"]) == (b["head"], b["dataset"], b["target"])
        assert a["miou"] == pytest.approx(b["miou"], abs=0.01)
    assert "argmax agreement with the fp32 torch model" in ort_run.stdout


def test_int8_graph_is_calibrated_on_the_runs_frames(checkpoint: Path, tmp_path: Path) -> None:
    run = _eval(checkpoint, tmp_path / "q", *INT8, "--calib-count", "4")
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "q" / "eval.json").read_text())
    assert meta["dtype"] == "int8"
    assert "leftImg8bit/train" in meta["resolution"]
    assert "first conv and transposed convs fp32" in meta["resolution"]
    assert all(0.0 <= a <= 1.0 for a in meta["argmax_agreement_with_torch_fp32"].values())


def test_int8_needs_onnxruntime_backend_and_enough_frames(checkpoint: Path, tmp_path: Path) -> None:
    run = _eval(checkpoint, tmp_path / "a", "--dtype", "int8")
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert "--dtype int8 needs --backend onnxruntime" in run.stderr
    run = _eval(checkpoint, tmp_path / "b", *INT8, "--calib-count", "999")
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert "int8 calibration" in run.stderr and "999 needed" in run.stderr
    assert not (tmp_path / "b" / "eval.json").exists()
