"""Plain helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path


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
