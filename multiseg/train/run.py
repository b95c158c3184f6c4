"""``multiseg train`` in the library: resolve a run's config and folder, then train or resume it."""

from __future__ import annotations

import time
from pathlib import Path

from multiseg.config import config_differences, load_config
from multiseg.errors import MultisegError
from multiseg.train.config import TrainConfig, demo_config
from multiseg.train.engine import Trainer
from multiseg.train.summary import TrainSummary


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
