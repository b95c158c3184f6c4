"""``multiseg train`` in the library: resolve a run's config and folder, then train or resume it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from multiseg.config import config_differences, load_config
from multiseg.errors import MultisegError
from multiseg.train.config import TrainConfig, demo_config
from multiseg.train.engine import Trainer
from multiseg.train.summary import TrainSummary


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
    """
    if resume is not None:
        saved_path = Path(resume) / "config.yaml"
        if not (Path(resume) / "last.pt").is_file() or not saved_path.is_file():
            raise MultisegError(f"--resume {resume}: no run to resume there (config.yaml and last.pt needed)")
        saved = load_config(TrainConfig, saved_path)
        cfg = load_config(TrainConfig, config_path or saved_path, overrides)
        diff = config_differences(saved, cfg)
        if diff and not force:
            raise MultisegError(
                f"--resume {resume}: the config differs from the saved one ({'; '.join(diff)}); "
                "add --force to accept"
            )
        return cfg, Path(resume), True
    cfg = demo_config(overrides) if config_path is None else load_config(TrainConfig, config_path, overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.out_dir) / f"{stamp}-{cfg.model}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = Path(cfg.out_dir) / f"{stamp}-{cfg.model}-{n}"
    return cfg, run_dir, False


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> TrainSummary:
    """Run (or resume) one training run and return its summary."""
    trainer = Trainer(cfg, run_dir, resume=resume)
    return trainer.fit()
