"""The console script itself: help texts, user errors as one line, and the README's set-up commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from multiseg.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _console_script() -> list[str]:
    exe = shutil.which("multiseg", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "multiseg.cli"]


@pytest.mark.parametrize("how", ["script", "python -m"])
def test_help_lists_every_command(how: str) -> None:
    cmd = _console_script() if how == "script" else [sys.executable, "-m", "multiseg"]
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, check=True).stdout
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert name in out


def test_every_command_has_help_for_every_option() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.dest != "help":
                assert action.help, (
                    f"multiseg {name}: option {action.option_strings or action.dest} has no help"
                )


def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    foreign = tmp_path / "not_a_demo"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    proc = subprocess.run(
        [*_console_script(), "demo-data", "--root", str(foreign)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("multiseg demo-data: error:") and str(foreign) in lines[-1]
    assert "Traceback" not in proc.stderr
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "args",
    [
        ["--data", "cityscape=x"],
        ["--set", "epochs=x"],
        ["--set", "balance_weights={cityscapes: 1}"],
        ["--resume", "no_such_run"],
    ],
    ids=["data", "value", "cross-key", "resume"],
)
def test_train_answers_a_command_or_config_mistake_before_importing_torch(args: list[str]) -> None:
    """The mistake is found while the run is resolved, which needs no torch (about 3 s to import on
    the slow hosts): the child reports whether torch was loaded when ``main`` returned."""
    code = (
        "import sys\nfrom multiseg.cli import main\nrc = main(sys.argv[1:])\n"
        "print('torch' in sys.modules)\nsys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, "train", *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == "False"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("multiseg train: error:"), proc.stderr


def test_unknown_command_exits_nonzero() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    setup = [b for b in blocks if b.startswith("python3 -m venv")]
    assert len(setup) == 2, "the README holds exactly two set-up commands"
    main_job, test_cmd = setup
    assert "multiseg" in main_job.split("&&")[-1]
    assert test_cmd in (REPO / ".ci" / "run").read_text()


def _readme_row(command: str) -> str:
    """The README command-table row that starts with ``multiseg COMMAND``, as typed there."""
    rows = re.findall(r"^\| `(multiseg [^`]+)` \|", (REPO / "README.md").read_text(), flags=re.M)
    (row,) = [r for r in rows if r.startswith(f"multiseg {command} ")]
    return row


def test_readme_export_row_parses_as_written() -> None:
    row = _readme_row("export")
    assert row == "multiseg export --onnx FILE [--dtype int8]"
    for argv in (["export", "--onnx", "FILE"], ["export", "--onnx", "FILE", "--dtype", "int8"]):
        args = build_parser().parse_args(argv)
        assert args.model is None and args.checkpoint is None


def test_export_without_a_source_takes_the_newest_run_else_the_default_model(
    tmp_path: Path, save_tiny_checkpoint: Callable[[Path, Path], Path]
) -> None:
    """The README row, plus --size, --legacy and --heads: as typed it exports at 512x1024 with dynamo
    (80 s on the busy host); the int8 path is tested in test_onnx_speed_paths.py."""
    fast = ["--size", "64x128", "--legacy", "--heads", "cityscapes"]
    res = subprocess.run(
        [*_console_script(), "export", "--onnx", "m.onnx", *fast],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert "no run under runs/demo or runs/train: erfnet (the default model) with random weights" in first
    assert "exported erfnet heads [cityscapes]" in res.stdout
    for name, age in (("20260101-000000-enet", 100), ("20260102-000000-enet", 0)):
        run = tmp_path / "runs" / "demo" / name
        run.mkdir(parents=True)
        for ckpt in ("best.pt", "last.pt"):
            save_tiny_checkpoint(run / ckpt, tmp_path)
            os.utime(run / ckpt, (time.time() - age, time.time() - age))
    argv = [*_console_script(), "export", "--onnx", "m.onnx", *fast]
    res = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    newest = Path("runs/demo/20260102-000000-enet/best.pt")
    assert (
        res.stdout.splitlines()[0]
        == f"export: no --model or --checkpoint: the newest run's best checkpoint, {newest}"
    )
    assert "exported enet heads [cityscapes]" in res.stdout


def test_train_help_lists_every_config_key_with_type_default_and_a_line() -> None:
    import dataclasses

    from multiseg.config import config_docs
    from multiseg.train.config import TrainConfig

    out = subprocess.run([*_console_script(), "train", "--help"], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    docs = config_docs(TrainConfig)
    assert [d.name for d in docs] == [f.name for f in dataclasses.fields(TrainConfig)]
    for doc in docs:
        assert doc.help, f"TrainConfig.{doc.name} has no #: line above it"
        (i,) = [i for i, line in enumerate(lines) if line.startswith(f"  {doc.name} (")]
        assert lines[i].startswith(f"  {doc.name} ({doc.type}) = {doc.default}")
        assert lines[i + 1].strip() == doc.help
    assert (
        "  epochs (int) = 150  [demo run: 72]" in lines
        and "  lr (float) = 0.0005  [demo run: 0.002]" in lines
    )
    assert "  model_kwargs (dict[str, Any]) = {}  [demo run: {dropout_128: 0.0, dropout_64: 0.0}]" in lines
