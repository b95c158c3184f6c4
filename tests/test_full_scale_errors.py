"""Bad input at real sizes: a step that cannot fit in memory, a crop no frame can fill, sizes that do not
divide by a model's output stride. Each is one line naming the setting to change, exit 2, no traceback."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from multiseg.demo.synthetic import write_cityscapes
from multiseg.errors import MultisegError
from multiseg.models import create_model
from multiseg.train.memory import check_step_fits, saved_bytes, step_bytes


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "multiseg", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _one_error_line(res: subprocess.CompletedProcess[str], command: str) -> str:
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith(f"multiseg {command}: error:")]
    assert len(errors) == 1, res.stderr[-2000:]
    return errors[0]


def _train_config(tmp_path: Path, **keys: object) -> Path:
    write_cityscapes(tmp_path / "cityscapes", "train", {"aachen": 2}, size=(128, 64))
    write_cityscapes(tmp_path / "cityscapes", "val", {"frankfurt": 1}, size=(128, 64), seed=1)
    values = {
        "data_root": tmp_path, "out_dir": tmp_path / "runs", "datasets": "[cityscapes]", "model": "enet",
        "resize_width": 128, "resize_height": 64, "crop_height": 64, "crop_width": 128, "workers": 0,
        "threads": 1, "epochs": 1, "batch_size": 2, **keys,
    }  # fmt: skip
    config = tmp_path / "run.yaml"
    config.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return config


def test_a_step_that_cannot_fit_in_memory_stops_before_training(tmp_path: Path) -> None:
    config = _train_config(tmp_path, batch_size=4096, crop_height=1024, crop_width=2048, resize_width=2048,
                           resize_height=1024)  # fmt: skip
    line = _one_error_line(_cli("train", str(config)), "train")
    assert "batch_size 4096 of 2048x1024 crops needs at least" in line
    assert "lower batch_size, or crop_width/crop_height" in line
    assert not list((tmp_path / "runs").rglob("*.pt"))


def test_a_crop_no_frame_can_fill_names_the_settings(tmp_path: Path) -> None:
    config = _train_config(tmp_path, crop_height=512, crop_width=1024, scale_max=2.0)
    line = _one_error_line(_cli("train", str(config)), "train")
    assert "crop 1024x512 is larger than every cityscapes frame can get (128x64 x scale_max 2 = 256x128)" in (
        line
    )
    assert line.endswith("lower crop_width/crop_height, or raise resize_width/resize_height or scale_max")


def test_bench_size_not_divisible_by_the_stride_names_the_option() -> None:
    line = _one_error_line(_cli("bench", "--model", "gunet", "--size", "500x1000"), "bench")
    assert line.endswith(
        "--size 500x1000 is not a multiple of gunet's output stride 32 (e.g. 512x1024 is); change --size"
    )


def test_grid_bench_size_is_checked_before_any_cell_trains(tmp_path: Path) -> None:
    paper = Path(__file__).resolve().parents[1] / "configs" / "paper"
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"bench: {{size: 520x1040}}\ncells:\n  - {{config: {paper / 'enet/cs.yaml'}}}\n"
        f"  - {{config: {paper / 'gunet/cs.yaml'}}}\n"
    )
    res = _cli("experiments", str(grid), "--out", str(tmp_path / "out"), "--data", str(tmp_path))
    line = _one_error_line(res, "experiments")
    assert "bench.size 520x1040 is not a multiple of gunet's output stride 32 (e.g. 544x1056 is)" in line
    assert not (tmp_path / "out" / "cells").exists()


def test_step_memory_is_linear_in_the_pixels_and_leaves_the_net_untouched() -> None:
    torch.manual_seed(0)
    net = create_model("erfnet", heads={"cityscapes": 19, "vistas": 66}, pad_to_stride=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.get_rng_state()
    one = step_bytes(net, 1, (128, 256), torch.device("cpu"))
    four = step_bytes(net, 4, (128, 256), torch.device("cpu"))
    assert torch.equal(rng_before, torch.get_rng_state())  # dropout in the probe draws from a forked RNG
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN statistics kept
    assert four.activations == pytest.approx(4 * one.activations, rel=1e-6)
    n_params = sum(p.numel() for p in net.parameters())
    assert one.parameters == 4 * 4 * n_params  # fp32 weights, gradients and Adam's two moments
    # the prediction from the 32x64 probe matches the bytes counted on a real 128x256 forward within 10 %
    measured = saved_bytes(copy.deepcopy(net).train(), torch.randn(1, 3, 128, 256), ["vistas"], None)
    assert one.activations == pytest.approx(measured, rel=0.1)
    with pytest.raises(MultisegError, match=r"^batch_size 100000 of 1024x512 crops needs at least"):
        check_step_fits(net, "erfnet", 100_000, (512, 1024), torch.device("cpu"))


def test_grid_evaluate_section_and_smoke_budget(tmp_path: Path) -> None:
    from multiseg.experiments.grid import SMOKE_BUDGET, EvaluateOptions, load_grid, smoke_bench

    paper = Path(__file__).resolve().parents[1] / "configs" / "paper"
    grid = tmp_path / "grid.yaml"
    bad = (("{full_res: 1}", "full_res must be true or false"), ("{tta: true}", "unknown key"))
    for section, problem in bad:
        grid.write_text(f"evaluate: {section}\ncells: [{paper / 'enet/cs.yaml'}]\n")
        with pytest.raises(MultisegError, match=f"evaluate: {problem}"):
            load_grid(grid)
    loaded = load_grid(paper / "grid.yaml", SMOKE_BUDGET)
    assert loaded.evaluate == EvaluateOptions(full_res=True) and len(loaded.cells) == 42
    budgets = {(c.cfg.epochs, c.cfg.max_steps, c.cfg.batch_size, c.cfg.val_max_samples) for c in loaded.cells}
    assert budgets == {(1, 2, 2, 1)}
    sizes = {(c.cfg.crop_width, c.cfg.crop_height, c.cfg.resize_width) for c in loaded.cells}
    assert sizes == {(1024, 512, 1024)}  # the paper's sizes stay: only the budget changes
    bench = smoke_bench(loaded).bench
    assert (bench.warmup, bench.min_time, bench.size) == (1, 0.0, (512, 1024))
