"""Atomic writes, torch-file loading errors and the inter-process lock of ``multiseg.files``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from multiseg.errors import MultisegError
from multiseg.files import atomic_path, atomic_write_text, file_lock, load_torch_file

HOLDER = """
import sys, time
from pathlib import Path
from multiseg.files import file_lock
with file_lock(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("held")
    time.sleep(1.5)
    Path(sys.argv[2]).write_text("released")
"""


def test_file_lock_makes_a_second_process_wait(tmp_path: Path) -> None:
    lock, state = tmp_path / "x.lock", tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(state)])
    try:
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state.read_text() == "held"
        with file_lock(lock):
            seen = state.read_text()
    finally:
        holder.wait(timeout=30)
    assert seen == "released"


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_atomic_path_renames_when_done_and_deletes_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_load_torch_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(MultisegError, match="bad.pt"):
        load_torch_file(bad)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_torch_file(good)["w"], torch.ones(2))
