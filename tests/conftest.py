"""Shared test set-up: one torch thread per xdist worker, the real-fixture folder, a small demo world."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import build_once

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two busy processes on two cores: more intra-op threads only oversubscribe (specs/environment.md §9).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real dataset files in ../shared/fixtures; the test is skipped where they are absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is absent")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def save_tiny_checkpoint() -> Callable[[Path, Path], Path]:
    """Saves an untrained ENet checkpoint with the three demo heads (trained at 64x32 on ``data_root``)."""
    import torch

    from multiseg.config import config_to_dict
    from multiseg.models import create_model
    from multiseg.train.config import TrainConfig

    def save(path: Path, data_root: Path) -> Path:
        heads = {"cityscapes": 19, "gtsdb": 44, "vistas": 65}
        torch.manual_seed(0)
        model = create_model("enet", heads=heads, pad_to_stride=True).eval()
        cfg = TrainConfig(
            datasets=list(heads), data_root=data_root, model="enet", resize_width=64, resize_height=32,
            crop_width=64, crop_height=32,
        )  # fmt: skip
        blob = {"model": model.state_dict(), "model_config": model.config, "config": config_to_dict(cfg)}
        torch.save(blob, path)
        return path

    return save


def _tiny_enet_ort_folder(
    tmp_path_factory: pytest.TempPathFactory, save_tiny_checkpoint: Callable[[Path, Path], Path]
) -> Path:
    """The tiny ENet checkpoint (on a 5-frame demo world) scored by ``multiseg eval --backend
    onnxruntime``, which exports its dynamic fp32 graph as ``predict --backend onnxruntime`` does
    (``export_for_ort``) and writes it beside its report. Built once for all workers: the export alone
    takes 20-40 s here, so the tests that need the graph share this one."""

    def build(folder: Path) -> None:
        from multiseg.demo.world import write_demo_world

        write_demo_world(folder / "world", seed=0, n_frames=5)
        checkpoint = save_tiny_checkpoint(folder / "enet.pt", folder / "world")
        cmd = [sys.executable, "-m", "multiseg", "eval", str(checkpoint), "--out", str(folder / "ort")]
        run = subprocess.run(
            [*cmd, "--workers", "0", "--backend", "onnxruntime"], capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stderr[-3000:]
        (folder / "ort_stdout.txt").write_text(run.stdout)

    return build_once(tmp_path_factory, "tiny_enet_ort", build)


@pytest.fixture(scope="session")
def tiny_enet_onnx(
    tmp_path_factory: pytest.TempPathFactory, save_tiny_checkpoint: Callable[[Path, Path], Path]
) -> tuple[Path, Path]:
    """The tiny ENet checkpoint and its dynamic fp32 ONNX graph (the one its onnxruntime eval scored)."""
    folder = _tiny_enet_ort_folder(tmp_path_factory, save_tiny_checkpoint)
    return folder / "enet.pt", folder / "ort" / "model.fp32.onnx"


@pytest.fixture(scope="session")
def tiny_enet_ort_eval(
    tmp_path_factory: pytest.TempPathFactory, save_tiny_checkpoint: Callable[[Path, Path], Path]
) -> tuple[Path, str]:
    """The report folder and the stdout of ``multiseg eval --backend onnxruntime`` on the tiny checkpoint."""
    folder = _tiny_enet_ort_folder(tmp_path_factory, save_tiny_checkpoint)
    return folder / "ort", (folder / "ort_stdout.txt").read_text()
