"""Runs that survive a cluster, through the real CLI: SIGTERM writes a checkpoint between two steps and
exits 143, ``--resume auto`` continues the newest run of the same config (or starts one), a run killed
while writing ``last.pt`` leaves no temporary file for good and resumes from ``best.pt``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import (
    TINY_RUN,
    metrics_rows,
    multiseg_cmd,
    only_run_dir,
    signal_once_shown,
    write_tiny_cityscapes,
)

from multiseg.train.run import resolve_run

#: The progress bar part way through epoch 2 of 3 (neither 0 % nor 100 %).
MID_EPOCH_2 = r"epoch 2/3: +[1-9][0-9]?%"
TINY = ["datasets=[cityscapes]", "model=enet", "batch_size=2", *TINY_RUN]


@pytest.fixture(scope="module")
def cs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-pixel Cityscapes: 12 training frames (6 steps of 2 per epoch), 2 validation frames."""
    root = tmp_path_factory.mktemp("cs")
    write_tiny_cityscapes(root)
    return root


def _config(path: Path, root: Path, out: Path, *extra: str) -> Path:
    values = dict(item.split("=", 1) for item in [f"data_root={root}", f"out_dir={out}", *TINY, *extra])
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*multiseg_cmd(), *args], capture_output=True, text=True, env=_env(), timeout=300)


def _same_weights(a: Path, b: Path) -> bool:
    wa = torch.load(a, weights_only=True)["model"]
    wb = torch.load(b, weights_only=True)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_sigterm_then_resume_auto_and_a_run_killed_writing_last_pt_end_like_an_uninterrupted_run(
    cs_root: Path, tmp_path: Path
) -> None:
    # One DataLoader worker, and SIGTERM to the whole process group, as SLURM sends it to a job step.
    cfg_a = _config(tmp_path / "a.yaml", cs_root, tmp_path / "a", "epochs=3", "workers=1")
    done = _run(["train", str(cfg_a), "--resume", "auto"])  # nothing to resume: a new run
    assert done.returncode == 0, done.stderr
    assert f"multiseg: --resume auto: no run of this config in {tmp_path / 'a'}; starting one" in done.stdout
    assert "enet on cityscapes, cpu (1 thread), fp32" in done.stdout  # not "1 threads"
    reference = metrics_rows(only_run_dir(tmp_path / "a"))
    assert [r["epoch"] for r in reference] == ["1", "2", "3"]

    cfg_b = _config(tmp_path / "b.yaml", cs_root, tmp_path / "b", "epochs=3", "workers=1")
    proc = subprocess.Popen(
        [*multiseg_cmd(), "train", str(cfg_b)],
        env=_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    # SIGTERM to the whole process group once epoch 2 is under way: mid-epoch whatever the machine's load.
    err = signal_once_shown(proc, MID_EPOCH_2, lambda: os.killpg(proc.pid, signal.SIGTERM))
    assert proc.returncode == 143, err
    run_dir = only_run_dir(tmp_path / "b")
    (line,) = [line for line in err.splitlines() if line.startswith("multiseg")]
    assert line.startswith("multiseg train: stopped by SIGTERM at epoch ") and "Traceback" not in err
    assert line.endswith(f"resumable checkpoint written (continue with: multiseg train --resume {run_dir})")
    state = torch.load(run_dir / "last.pt", weights_only=True)["state"]
    assert 1 <= state["epoch"] < 3
    # The same run as a kill while writing last.pt leaves it: best.pt (an earlier epoch end) and a temporary.
    killed = tmp_path / "c" / run_dir.name
    shutil.copytree(run_dir, killed)
    (killed / "last.pt").unlink()
    stale = killed / ".last.pt.k3j9x2ab.tmp"
    stale.write_bytes((killed / "best.pt").read_bytes()[:1000])

    resumed = _run(["train", str(cfg_b), "--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"multiseg: --resume auto: resuming {run_dir}" in resumed.stdout
    assert only_run_dir(tmp_path / "b") == run_dir
    assert metrics_rows(run_dir) == reference
    assert _same_weights(only_run_dir(tmp_path / "a") / "last.pt", run_dir / "last.pt")

    from_best = _run(["train", "--resume", str(killed)])
    assert from_best.returncode == 0, from_best.stderr
    assert "multiseg: removed .last.pt.k3j9x2ab.tmp (left by a run killed while writing)" in from_best.stdout
    assert "multiseg: last.pt is missing (the run was killed while writing it); resuming from best.pt, " in (
        from_best.stdout
    )
    assert not stale.exists()
    assert metrics_rows(killed) == reference
    assert _same_weights(only_run_dir(tmp_path / "a") / "last.pt", killed / "last.pt")


def test_resume_auto_picks_the_newest_run_of_the_same_config(cs_root: Path, tmp_path: Path) -> None:
    """Runs of another config are never picked; of the same config, the most recently written one."""
    out = tmp_path / "out"
    cfg = _config(tmp_path / "run.yaml", cs_root, out, "epochs=1")
    for name, extra, age in (("old", [], 200), ("other", ["lr=0.1"], 0), ("new", [], 100), ("empty", [], 0)):
        (out / name).mkdir(parents=True)
        _config(out / name / "config.yaml", cs_root, out, "epochs=1", *extra)
        if name != "empty":  # a run with no checkpoint yet cannot be resumed
            (out / name / "last.pt").write_bytes(b"not read here")
            os.utime(out / name / "last.pt", (time.time() - age, time.time() - age))
    _, run_dir, resume = resolve_run(cfg, [], Path("auto"), force=False)
    assert (run_dir, resume) == (out / "new", True)
    _, run_dir, resume = resolve_run(cfg, ["lr=0.2"], Path("auto"), force=False)
    assert not resume and run_dir.parent == out and not run_dir.exists()


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_before_the_same_step(cs_root: Path, tmp_path: Path) -> None:
    """torchrun passes SIGTERM on to its ranks; they agree on the step, rank 0 writes last.pt and the line."""
    from multiseg.train.distributed import find_free_port

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun
    cfg = _config(tmp_path / "run.yaml", cs_root, tmp_path / "out", "epochs=3", "batch_size=4")
    cmd = [torchrun, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={find_free_port()}"]
    cmd += ["-m", "multiseg.cli", "train", str(cfg)]
    proc = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    err = signal_once_shown(proc, MID_EPOCH_2, lambda: proc.send_signal(signal.SIGTERM))
    lines = [line for line in err.splitlines() if line.startswith("multiseg train:")]
    assert len(lines) == 1 and lines[0].startswith("multiseg train: stopped by SIGTERM at epoch "), err[
        -3000:
    ]
    run_dir = only_run_dir(tmp_path / "out")
    state = torch.load(run_dir / "last.pt", weights_only=True)["state"]
    assert 1 <= state["epoch"] < 3
    cmd[3] = f"--master_port={find_free_port()}"
    resumed = subprocess.run(
        [*cmd[:4], "-m", "multiseg.cli", "train", "--resume", str(run_dir)],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["epoch"] for r in metrics_rows(run_dir)] == ["1", "2", "3"]
