"""Safe file writes and reads shared by configs, checkpoints and reports.

:func:`atomic_write` writes through a temporary file in the target's folder, fsyncs it and renames it
over the target, so a crash or ``kill -9`` at any moment leaves either the old file or the new one,
never half of one. :func:`load_torch_file` reads a torch file with ``weights_only=True`` and turns any
failure into a one-line user error. :func:`file_lock` serialises processes that would build the same
thing at once (every ``torchrun`` rank generating the demo world on first use).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from multiseg.errors import MultisegError


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    POSIX ``flock``: released by the kernel if the holder dies, so a killed run never leaves a stale
    lock. Where ``fcntl`` does not exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fh)`` on a temporary binary file, then atomically rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file name beside ``path`` for a writer that takes a name, not a file object.

    The name keeps ``path``'s suffix (video writers choose the container by it). When the block ends
    normally the file is renamed to ``path``; when it raises (Ctrl-C included) the file is deleted, so
    ``path`` is either the old file or the complete new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.partial-", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a new file's usual mode, not mkstemp's private 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(tmp: Path, root: Path) -> None:
    """Move a finished folder ``tmp`` to ``root``; an existing ``root`` is swapped out, then deleted."""
    if not root.exists():
        tmp.rename(root)
        return
    old = tmp.with_name(tmp.name + ".old")
    root.rename(old)
    try:
        tmp.rename(root)
    except BaseException:
        old.rename(root)
        raise
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def load_torch_file(path: Path, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)``; a missing or unreadable file is a one-line user error."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MultisegError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        first = str(err).splitlines()[0] if str(err) else ""
        raise MultisegError(f"cannot load {what} {path}: {type(err).__name__}: {first}") from None
