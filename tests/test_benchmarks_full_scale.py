"""The full-size benchmarks (issue 19) run end to end in their --quick modes (tiny frames, seconds).

Speed is never asserted here: the benchmarks print it. These only check that the scripts run and
print every line of their protocol, so a quiet rerun by hand works.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(script: str, *args: str) -> str:
    command = [sys.executable, str(BENCHMARKS / script), *args]
    res = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


@pytest.mark.slow
def test_bench_data_quick_prints_every_pipeline_the_goals_and_the_cores_per_gpu() -> None:
    out = run("bench_data.py", "--quick", "--no-prepared", "--workers", "0")
    for pipeline in ("decode only", "multiseg", "PIL"):
        assert f"      0  {pipeline}" in out
    assert "multiseg / PIL =" in out and "multiseg / decode-only CPU per image =" in out
    assert "feeding one GPU (ERFNet, 1024x512, batch 6) at 13.9 images/s" in out
    assert "specs/models.md" in out  # where the GPU throughput comes from


@pytest.mark.slow
def test_bench_full_scale_quick_measures_a_training_step_in_its_own_process() -> None:
    out = run("bench_full_scale.py", "--quick", "--what", "train", "--amp", "fp32")
    assert "enet     train    fp32" in out and "peak RSS" in out
    table = [line for line in out.splitlines() if line.startswith("| enet |")]
    assert len(table) == 1
    seconds, rss_gib = (float(v) for v in table[0].strip("| \n").split(" | ")[1:3])
    assert seconds > 0 and 0.05 < rss_gib < 8
