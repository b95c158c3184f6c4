"""Atomic, safely loadable checkpoints and the RNG state needed for exact resume.

Checkpoints are written to a temporary file in the same folder, fsynced and renamed over the target,
so a kill at any moment leaves either the old or the new file, never half of one. They hold only
tensors and plain Python containers, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiseg.errors import MultisegError
from multiseg.files import atomic_write, load_torch_file


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename, fsync of the folder)."""
    atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing or unreadable file is a user error."""
    return load_torch_file(path, map_location)


def rng_state() -> dict[str, Any]:
    """Every global RNG state a training step may consume (Python, NumPy, torch CPU and CUDA)."""
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we save
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].copy()),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(_as_tuple(state["python"]))
    npst = state["numpy"]
    legacy = ("MT19937", npst["key"].numpy(), npst["pos"], npst["has_gauss"], npst["cached"])
    np.random.set_state(legacy)  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """Python's random state is nested tuples; a round trip through a checkpoint may give lists."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def describe_progress(blob: Mapping[str, Any], name: str) -> tuple[str, int | None]:
    """Which ``multiseg train`` checkpoint ``blob`` (file ``name``) is and how far training had got, in
    words, and the epoch (1-based) whose weights it holds; ``("no training state in it: epoch unknown",
    None)`` for a checkpoint without one (an export, a hand-made file).

    ``best.pt`` holds the epoch-end state of the epoch that set the best mean mIoU (the same as that
    epoch's ``last.pt``), so only the name tells the two apart; a ``best.pt`` of the older layout, written
    before the epoch counter moved on (step = that epoch's last), is read as that epoch's end.
    ``last.pt`` is written at every epoch's end and on an interruption (then mid-epoch).
    """
    state, early = blob.get("state"), blob.get("early_stopping") or {}
    if not isinstance(state, Mapping):
        return "no training state in it: epoch unknown", None
    epochs = (blob.get("config") or {}).get("epochs")
    of = f" of {epochs}" if epochs else ""
    done, step, best = int(state["epoch"]), int(state["step_in_epoch"]), int(early.get("best_epoch", -1))
    if best == done + 1 and step > 0:  # the older best.pt layout
        done, step = best, 0
    score = f"best mean validation mIoU, {float(early.get('best', float('nan'))):.4f}"
    if name == "best.pt" and best == done and not step:
        return f"the best checkpoint ({score}), after epoch {done}{of}", done
    if best == done and not step:
        return f"the last checkpoint, after epoch {done}{of}, also the best ({score})", done
    best_note = f"; the best validation was epoch {best}" if best > 0 else ""
    if step:
        return f"the last checkpoint, in epoch {done + 1}{of} after {step} of its steps{best_note}", done
    return f"the last checkpoint, after epoch {done}{of}{best_note}", done


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files (``.last.pt.*.tmp`` ...) that atomic writes of a killed run left behind.

    :func:`~multiseg.files.atomic_write` deletes its temporary file on any exception, but not when the
    process is killed while writing; nothing else ever reads such a file. Only call this while no other
    process writes into ``run_dir`` (a run folder has one writer: the run's rank 0).
    """
    stale = sorted(p for p in Path(run_dir).glob(".*.tmp") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _position(ckpt: dict[str, Any]) -> tuple[int, int]:
    state = ckpt.get("state", {})
    return int(state.get("epoch", 0)), int(state.get("step_in_epoch", 0))


def resume_point(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """The checkpoint a run continues from: the further along of ``last.pt`` and ``best.pt``.

    ``best.pt`` holds the same epoch-end state as ``last.pt`` and is written just before it, so a run
    killed while writing ``last.pt`` (its first one, or a later one) resumes from ``best.pt``.
    """
    candidates = [Path(run_dir) / name for name in ("last.pt", "best.pt")]
    found = [(p, load_checkpoint(p, map_location)) for p in candidates if p.is_file()]
    if not found:
        raise MultisegError(f"{run_dir}: no checkpoint to resume from (neither last.pt nor best.pt)")
    return max(found, key=lambda item: _position(item[1]))  # max keeps the first (last.pt) on a tie
