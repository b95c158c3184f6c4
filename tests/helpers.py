"""Plain helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def multiseg_cmd() -> list[str]:
    """The ``multiseg`` console script of this interpreter's environment, else ``python -m multiseg.cli``."""
    exe = shutil.which("multiseg", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "multiseg.cli"]


#: ``--set`` overrides of the tiny CLI runs: 128x64 frames and crops, no DataLoader worker, 1 thread.
TINY_RUN = [
    *("resize_width=128", "resize_height=64", "crop_height=64", "crop_width=128"),
    *("workers=0", "threads=1"),
]


def write_tiny_cityscapes(root: Path) -> None:
    """A random-pixel Cityscapes under ``root/cityscapes``: 12 training frames, 2 validation frames."""
    from multiseg.demo import synthetic

    synthetic.write_cityscapes(root / "cityscapes", "train", {"aachen": 12}, size=(128, 64))
    synthetic.write_cityscapes(root / "cityscapes", "val", {"frankfurt": 2}, size=(128, 64), seed=1)


def only_run_dir(out: Path) -> Path:
    """The one run folder under ``out`` (a test that expects exactly one run)."""
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv``."""
    with (run_dir / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def signal_once_shown(proc: subprocess.Popen, pattern: str, send: Callable[[], None]) -> str:
    """Reads ``proc``'s stderr as it comes, calls ``send`` once the regex ``pattern`` matches it (the
    progress bar, not a fixed sleep: a sleep let a run on a fast or a busy machine finish first), waits
    for ``proc`` to exit and returns all of its stderr."""
    chunks: list[str] = []
    stream = proc.stderr
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: stream.read(64), "")), daemon=True)
    reader.start()
    deadline = time.time() + 300
    while time.time() < deadline and not re.search(pattern, "".join(chunks)) and proc.poll() is None:
        time.sleep(0.02)
    send()
    proc.wait(timeout=120)  # a rank stopping alone would leave the other one hanging
    reader.join(timeout=30)
    return "".join(chunks)


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` of this test session, filled by ``build`` once for all pytest-xdist workers.

    A module fixture runs once in every worker that meets one of its tests; for an expensive one (a trained
    run, an exported graph, a full-size world) the first worker builds it under a file lock while the other
    waits, then both read it. Tests copy what they change. A failed build leaves nothing marked done.
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, shared by its workers
    folder = root / "built-once" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = folder.with_name(f"{name}.done")
    with FileLock(f"{folder}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
