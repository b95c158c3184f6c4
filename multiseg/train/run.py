"""``multiseg train`` in the library: resolve a run's config and folder, then train or resume it.

Resolving imports no torch, so a mistake in the command line or the config is answered at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from multiseg.config import config_differences, load_config
from multiseg.errors import MultisegError
from multiseg.train.config import TrainConfig, demo_config

if TYPE_CHECKING:
    from multiseg.train.summary import TrainSummary

#: ``--resume auto``: the newest run of the same config, or a new run.
AUTO = "auto"


def data_overrides(items: Sequence[str]) -> list[str]:
    """``--data ROOT`` and ``--data NAME=PATH`` (as in ``multiseg eval``) as ``--set`` items.

    ROOT sets ``data_root`` and clears the per-dataset roots; NAME=PATH sets that dataset's root
    (``lanes`` is read from the Vistas root). Values are JSON-quoted so any path reads back as itself.
    """
    out: list[str] = []
    for item in sorted(items, key=lambda i: "=" in i):  # a ROOT first: it clears the per-dataset roots
        name, sep, value = item.partition("=")
        if not sep:
            out.append(f"data_root={json.dumps(item)}")
            out += [f"{key}_root=null" for key in ("cityscapes", "gtsdb", "vistas")]
            continue
        key = {"lanes": "vistas"}.get(name.strip(), name.strip())
        if key not in ("cityscapes", "gtsdb", "vistas") or not value:
            raise MultisegError(
                f"--data {item}: expected ROOT or NAME=PATH with NAME one of cityscapes, gtsdb, vistas, lanes"
            )
        out.append(f"{key}_root={json.dumps(value)}")
    return out


def resolve_run(
    config_path: Path | None, overrides: list[str], resume: Path | None, force: bool
) -> tuple[TrainConfig, Path, bool]:
    """The config, run folder and resume flag of a ``multiseg train`` invocation.

    No config file and no resume: the demo-world defaults (:func:`demo_config`). A new run goes to
    ``out_dir/<time>-<model>`` so that runs never overwrite each other. With ``--resume RUN_DIR`` the
    saved ``config.yaml`` is used; a config file or ``--set`` that changes it is an error listing the
    differences, unless ``force``.

    ``--resume auto`` (what a requeued cluster job runs every time) continues the newest run in the
    config's ``out_dir`` that was started with the same config, and starts a new run when there is none.
    """
    if resume is not None and str(resume) == AUTO:
        cfg = _requested_config(config_path, overrides)
        found = newest_run(Path(cfg.out_dir), cfg)
        if _rank0():
            what = f"resuming {found}" if found else f"no run of this config in {cfg.out_dir}; starting one"
            print(f"multiseg: --resume auto: {what}", flush=True)
        if found is not None:
            return cfg, found, True
        resume = None
    if resume is not None:
        saved_path = Path(resume) / "config.yaml"
        has_checkpoint = any((Path(resume) / name).is_file() for name in ("last.pt", "best.pt"))
        if not has_checkpoint or not saved_path.is_file():
            raise MultisegError(
                f"--resume {resume}: no run to resume there (config.yaml and last.pt or best.pt needed)"
            )
        saved = load_config(TrainConfig, saved_path)
        cfg = load_config(TrainConfig, config_path or saved_path, overrides)
        diff = config_differences(saved, cfg)
        if diff and not force:
            raise MultisegError(
                f"--resume {resume}: the config differs from the saved one ({'; '.join(diff)}); "
                "add --force to accept"
            )
        return cfg, Path(resume), True
    cfg = _requested_config(config_path, overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.out_dir) / f"{stamp}-{cfg.model}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = Path(cfg.out_dir) / f"{stamp}-{cfg.model}-{n}"
    return cfg, run_dir, False


def _requested_config(config_path: Path | None, overrides: list[str]) -> TrainConfig:
    """The config a new run would use: the demo defaults without a file, then ``--set``."""
    return demo_config(overrides) if config_path is None else load_config(TrainConfig, config_path, overrides)


def _rank0() -> bool:
    """Rank 0 of a torchrun job, or a single process (the run folder is resolved on every rank)."""
    return os.environ.get("RANK", "0") == "0"


def newest_run(out_dir: Path, cfg: TrainConfig) -> Path | None:
    """The run folder in ``out_dir`` with ``cfg``'s config and the most recently written checkpoint.

    A run of another config is never picked (resume it by name, with ``--force``), so jobs that share
    an ``out_dir`` each find their own run.
    """
    found = []
    for saved_path in Path(out_dir).glob("*/config.yaml"):
        run_dir = saved_path.parent
        checkpoints = [run_dir / n for n in ("last.pt", "best.pt") if (run_dir / n).is_file()]
        if not checkpoints:
            continue
        try:
            saved = load_config(TrainConfig, saved_path)
        except MultisegError:  # a folder with some other config file in it
            continue
        if not config_differences(saved, cfg):
            found.append((max(p.stat().st_mtime for p in checkpoints), run_dir))
    return max(found)[1] if found else None


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> TrainSummary:
    """Run (or resume) one training run and return its summary."""
    from multiseg.train.engine import Trainer  # torch: imported once the config is known to be valid

    trainer = Trainer(cfg, run_dir, resume=resume)
    return trainer.fit()
