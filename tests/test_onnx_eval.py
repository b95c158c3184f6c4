"""``multiseg eval --backend onnxruntime [--dtype int8]``: the deployed graph scored like the torch model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def checkpoint(tiny_enet_onnx: tuple[Path, Path]) -> Path:
    return tiny_enet_onnx[0]


INT8 = ("--backend", "onnxruntime", "--dtype", "int8")


def _eval(checkpoint: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "multiseg", "eval", str(checkpoint), "--out", str(out), "--workers", "0"]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fp32_eval(
    checkpoint: Path, tiny_enet_ort_eval: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """The checkpoint scored by torch and by ONNX Runtime (which exports it, in the shared conftest
    fixture): both report folders and the onnxruntime run's stdout."""

    out = tmp_path_factory.mktemp("fp32_eval") / "torch"
    torch_run = _eval(checkpoint, out)
    assert torch_run.returncode == 0, torch_run.stderr
    return out, *tiny_enet_ort_eval


def test_fp32_graph_scores_as_the_torch_model(fp32_eval: tuple[Path, Path, str]) -> None:
    torch_out, ort_out, stdout = fp32_eval
    meta = json.loads((ort_out / "eval.json").read_text())
    assert meta["backend"] == "onnxruntime" and meta["dtype"] == "fp32"
    agreement = meta["argmax_agreement_with_torch_fp32"]
    assert set(agreement) == {"cityscapes", "gtsdb", "vistas"}
    assert min(agreement.values()) > 0.999  # same weights, fp32: only ties and rounding may differ
    torch_scores = json.loads((torch_out / "eval.json").read_text())["results"]
    ort_scores = meta["results"]
    for a, b in zip(torch_scores, ort_scores, strict=True):
        assert (a["head"], a["dataset"], a["target"]) == (b["head"], b["dataset"], b["target"])
        assert a["miou"] == pytest.approx(b["miou"], abs=0.01)
    assert "argmax agreement with the fp32 torch model" in stdout
    assert "model.fp32.onnx: the scored graph (score it again with --onnx)" in stdout
    assert (ort_out / "model.fp32.onnx").is_file() and not list(ort_out.glob(".*"))  # no leftovers


def test_int8_graph_is_calibrated_on_the_runs_frames(
    tiny_enet_onnx: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, graph = tiny_enet_onnx  # the checkpoint's fp32 graph is quantised here, not exported again
    run = _eval(checkpoint, tmp_path / "q", *INT8, "--calib-count", "4", "--onnx", str(graph))
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "q" / "eval.json").read_text())
    assert meta["dtype"] == "int8"
    assert "leftImg8bit/train" in meta["resolution"]
    assert "first conv and transposed convs fp32" in meta["resolution"]
    assert all(0.0 <= a <= 1.0 for a in meta["argmax_agreement_with_torch_fp32"].values())
    assert (tmp_path / "q" / "model.int8.onnx").is_file()


def test_int8_needs_onnxruntime_backend_and_enough_frames(checkpoint: Path, tmp_path: Path) -> None:
    run = _eval(checkpoint, tmp_path / "a", "--dtype", "int8")
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert "--dtype int8 needs --backend onnxruntime" in run.stderr
    run = _eval(checkpoint, tmp_path / "b", *INT8, "--calib-count", "999")
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert "int8 calibration" in run.stderr and "999 needed" in run.stderr
    assert not (tmp_path / "b" / "eval.json").exists()
    run = _eval(checkpoint, tmp_path / "c", "--onnx", str(tmp_path / "missing.onnx"))
    assert run.returncode != 0 and "--onnx needs --backend onnxruntime" in run.stderr
    run = _eval(
        checkpoint, tmp_path / "d", "--backend", "onnxruntime", "--onnx", str(tmp_path / "missing.onnx")
    )
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert f"--onnx {tmp_path / 'missing.onnx'}: no such file" in run.stderr
