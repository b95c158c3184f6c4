"""Where the demo world lives: a cache folder that every command without a data root defaults to."""

from __future__ import annotations

import os
from pathlib import Path

from multiseg.demo.world import MARKER, write_demo_world
from multiseg.files import file_lock


def cache_dir() -> Path:
    """Where multiseg keeps generated data: ``$MULTISEG_CACHE``, else ``$XDG_CACHE_HOME/multiseg``."""
    if env := os.environ.get("MULTISEG_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "multiseg"


def demo_world_path(seed: int = 0, size: str = "small") -> Path:
    """Where the cached demo world of ``seed`` and ``size`` lives (whether or not it exists yet)."""
    return cache_dir() / f"demo_world_seed{seed}_{size}"


def demo_video_path(seed: int = 0) -> Path:
    """Where ``multiseg demo-data --video`` writes the demo drive of ``seed`` by default."""
    return cache_dir() / f"demo_drive_seed{seed}.mp4"


def demo_world_root(seed: int = 0, size: str = "small", announce: bool = True) -> Path:
    """The demo world in the cache, generated on first use (with a message saying where)."""
    root = demo_world_path(seed, size)
    if (root / MARKER).is_file():
        return root
    with file_lock(root.parent / f".{root.name}.lock"):  # torchrun ranks: one generates, the rest wait
        if not (root / MARKER).is_file():
            if announce:
                print(f"multiseg: generating the demo world into {root} (first use only)", flush=True)
            write_demo_world(root, seed=seed, size=size, force=False)
    return root
