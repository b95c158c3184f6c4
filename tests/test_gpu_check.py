"""benchmarks/gpu_check.py: the one-call GPU check runs end to end in its --quick CPU mode (issue 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from gpu_check_report import markdown  # noqa: E402

SECTIONS = ("environment", "inference_fps", "training_throughput", "real_run", "torch_compile",
            "onnxruntime_gpu", "ddp")  # fmt: skip


@pytest.mark.slow
def test_quick_check_runs_every_section_and_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True and results["device"] == "cpu"
    for section in SECTIONS:
        assert section in results, section
        assert not (isinstance(results[section], dict) and "error" in results[section]), results[section]
    fps = results["inference_fps"]
    assert {(r["heads"], r["head_mode"]) for r in fps} == {(1, "decoder"), (3, "decoder"), (3, "last_conv")}
    assert all(r["fps"] > 0 and r["median_ms"] > 0 for r in fps if "skipped" not in r)
    assert {r["dtype"] for r in results["training_throughput"]} == {"fp16", "bf16"}
    assert all(r["images_per_s"] > 0 for r in results["training_throughput"] if "skipped" not in r)
    run = results["real_run"]
    assert run["train_rc"] == 0 and run["eval_rc"] == 0
    assert run["steps_per_epoch"] >= 1 and run["loader_s_per_batch"] > 0
    assert {"cityscapes (labels)", "vistas (labels)"} <= set(run["scores"])
    assert 0.0 <= run["scores"]["cityscapes (labels)"]["miou"] <= 1.0
    assert "sign_iou" in run["scores"]["gtsdb (pixel gt)"]
    assert "skipped" in results["ddp"]  # no GPU here
    assert all("skipped" in r for r in results["onnxruntime_gpu"])  # no CUDA provider in the CPU build
    page = (out / "results.md").read_text()
    assert "no figure here is a GPU figure" in page and "| enet | 128x64 | 1 | decoder |" in page


def test_report_says_which_sections_failed_or_did_not_run() -> None:
    page = markdown({"environment": {"torch": "2.13"}, "inference_fps": {"error": "RuntimeError: boom"}})
    assert "- torch: 2.13" in page
    assert "failed: `RuntimeError: boom`" in page
    assert page.count("(not run)") == 5  # compile, onnxruntime, training, real run, ddp


def test_report_puts_the_papers_fps_beside_ours() -> None:
    rows = [{"model": "erfnet", "size": "1024x512", "heads": 1, "head_mode": "decoder", "dtype": "fp16",
             "channels_last": True, "median_ms": 4.0, "fps": 250.0}]  # fmt: skip
    page = markdown({"inference_fps": rows})
    expected = "| erfnet | 1024x512 | 1 | decoder | fp16 | channels_last | 4 | 250.0 | 41.7 (Titan X) | - |"
    assert expected in page
