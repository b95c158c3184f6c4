"""The console script itself: help texts, user errors as one line, and the README's set-up commands."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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
