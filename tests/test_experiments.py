"""``multiseg experiments``: the paper's recipes load, bad grids fail in one line, Table 1's layout on given
numbers, and a two-cell grid on a tiny demo world that is interrupted, resumed and rendered."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from multiseg.cli import main
from multiseg.config import config_differences, load_config
from multiseg.errors import MultisegError
from multiseg.experiments import load_grid, scale_budget, select_models
from multiseg.experiments.figures import FIGURES, render_figures
from multiseg.experiments.runner import _same_file
from multiseg.experiments.table import Published, load_published, table1_csv, table1_markdown
from multiseg.models import list_models
from multiseg.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "configs" / "paper"
TINY = {
    "resize_width": 128, "resize_height": 64, "crop_height": 64, "crop_width": 128, "epochs": 2,
    "workers": 0, "threads": 1, "batch_size": 4, "patience": 0, "val_max_samples": 2,
}  # fmt: skip


def test_every_paper_config_loads_and_the_grids_cover_the_study() -> None:
    files = sorted(p for p in PAPER.glob("*/*.yaml"))
    assert len(files) == 6 * 7  # 4 settings + last_conv + 2 pretrained, per model
    for path in files:
        cfg = load_config(TrainConfig, path)
        assert cfg.model == path.parent.name
    for grid_path in (PAPER / "grid.yaml", REPO / "configs" / "demo" / "grid.yaml"):
        grid = load_grid(grid_path)
        assert sorted(c.config_path for c in grid.cells) == [p.resolve() for p in files]
        assert {c.model for c in grid.cells} == set(list_models())
        main_cells = {
            (c.model, c.setting) for c in grid.cells if c.cfg.head_mode == "decoder" and not c.pretrained
        }
        assert len(main_cells) == 24
        assert {s for _, s in main_cells} == {"CS", "CS+GTSDB", "CS+GTSDB+LM", "CS+GTSDB+MV"}
        single = [c for c in grid.cells if c.cfg.head_mode == "last_conv"]
        assert len(single) == 6 and {c.setting for c in single} == {"CS+GTSDB"}
        pretrained = [c for c in grid.cells if c.pretrained]
        assert len(pretrained) == 12 and {c.setting for c in pretrained} == {"CS", "CS+GTSDB"}
    demo = load_grid(REPO / "configs" / "demo" / "grid.yaml")
    assert demo.pretrain is not None and all(c.cfg.data_root is None for c in demo.cells)


def test_budget_scale_and_model_selection(tmp_path: Path) -> None:
    grid = load_grid(PAPER / "grid.yaml")
    small = scale_budget(select_models(grid, ["enet", "erfnet"]), 0.1)
    assert {c.model for c in small.cells} == {"enet", "erfnet"}
    assert {c.cfg.epochs for c in small.cells} == {15}
    with pytest.raises(MultisegError, match="--models"):
        select_models(grid, ["segformer"])
    with pytest.raises(MultisegError, match="budget-scale"):
        scale_budget(grid, 0)


def _write_grid(path: Path, cells: list, **top: object) -> Path:
    path.write_text(yaml.safe_dump({"study": "test", **top, "cells": cells}, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("cells", "top", "message"),
    [
        ([{"config": "x.yaml"}], {}, "config file .*x.yaml does not exist"),
        ([{"config": str(PAPER / "enet/cs.yaml"), "colour": 1}], {}, "unknown key 'colour'"),
        ([{"config": str(PAPER / "enet/cs.yaml")}], {"budget": 3}, "unknown key 'budget'"),
        ([{"config": str(PAPER / "enet/cs.yaml")}], {"set": {"epoch": 3}}, "set: unknown key 'epoch'"),
        ([{"config": str(PAPER / "enet/cs.yaml"), "set": {"model": "segnet"}}], {}, "unknown model 'segnet'"),
        ([], {}, "'cells' must be a non-empty list"),
    ],
)
def test_bad_grids_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cells: list, top: dict, message: str
) -> None:
    grid = _write_grid(tmp_path / "grid.yaml", cells, **top)
    assert main(["experiments", str(grid), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("multiseg experiments: error:")
    import re

    assert re.search(message, err), err


def _row(model: str, setting: str, **miou: float) -> dict:
    names = {"CS": "cityscapes", "GTSDB": "gtsdb", "LM": "lanes", "MV": "vistas"}
    datasets = [names[s] for s in setting.split("+")]
    row = {
        "cell": f"{model}-{setting}", "model": model, "setting": setting, "datasets": ";".join(datasets),
        "head_mode": "decoder", "pretrained": False, "params": 2_100_000, "fps": 41.66,
    }  # fmt: skip
    row.update({f"miou/{k}": v for k, v in miou.items()})
    row["miou/mean"] = sum(miou.values()) / len(miou)
    return row


def test_table1_layout_on_given_numbers() -> None:
    rows = [
        _row("erfnet", "CS+GTSDB", cityscapes=0.70, gtsdb=0.50),
        _row("enet", "CS", cityscapes=0.581),
        _row("erfnet", "CS", cityscapes=0.7),
        {**_row("erfnet", "CS", cityscapes=0.9), "pretrained": True},  # Fig 7 only, not in Table 1
        _row("erfnet", "CS+GTSDB+MV", cityscapes=0.6, gtsdb=0.4, vistas=0.35),
    ]
    published = Published("Paper, Table 1", values={("erfnet", "CS"): {"cityscapes": 71.2, "mean": 71.2}})
    lines = table1_markdown(rows, published, device="CPU test").splitlines()
    assert lines[0] == "| Model | Training sets | CS | GTSDB | LM | MV | Mean | Params (M) | FPS |"
    assert lines[1] == "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[2] == "| ENet | CS | 58.1 / n/a | – | – | – | 58.1 / n/a | 2.10 | 41.7 |"
    assert lines[3] == "| ERFNet | CS | 70.0 / 71.2 | – | – | – | 70.0 / 71.2 | 2.10 | 41.7 |"
    assert lines[4] == "|  | CS+GTSDB | 70.0 / n/a | 50.0 / n/a | – | – | 60.0 / n/a | 2.10 | 41.7 |"
    assert (
        lines[5] == "|  | CS+GTSDB+MV | 60.0 / n/a | 40.0 / n/a | – | 35.0 / n/a | 45.0 / n/a | 2.10 | 41.7 |"
    )
    assert lines[6] == ""
    assert any("Paper values: Paper, Table 1." in line for line in lines)
    plain = table1_markdown(rows).splitlines()
    assert plain[3] == "| ERFNet | CS | 70.0 | – | – | – | 70.0 | 2.10 | 41.7 |"
    table = list(csv.DictReader(table1_csv(rows, published).splitlines()))
    assert [(r["model"], r["setting"]) for r in table] == [
        ("enet", "CS"), ("erfnet", "CS"), ("erfnet", "CS+GTSDB"), ("erfnet", "CS+GTSDB+MV"),
    ]  # fmt: skip
    assert table[1]["cityscapes_paper"] == "71.2" and table[1]["gtsdb"] == "" and table[0]["mean_paper"] == ""
    none_yet = table1_markdown(rows, Published("Paper, Table 1"), device="CPU test").splitlines()
    assert none_yet[:6] == plain[:6] and "/" not in none_yet[3]
    assert "not transcribed yet (Paper, Table 1; published_table1.yaml)" in none_yet[-1]
    assert "cityscapes_paper" not in table1_csv(rows, Published("Paper, Table 1"))


def test_shipped_published_values_name_their_source_and_invent_nothing() -> None:
    published = load_published()
    assert "Leonardi" in published.source and "Table 1" in published.source
    assert all(v is None for row in published.values.values() for v in row.values())


def test_figures_from_given_rows(tmp_path: Path) -> None:
    rows = []
    for model, base in (("enet", 0.5), ("erfnet", 0.6)):
        for i, setting in enumerate(("CS", "CS+GTSDB", "CS+GTSDB+LM", "CS+GTSDB+MV")):
            rows.append(_row(model, setting, cityscapes=base - 0.01 * i))
        rows.append(
            {**_row(model, "CS+GTSDB", cityscapes=base, gtsdb=0.3), "head_mode": "last_conv", "fps": 60}
        )
        rows.append({**_row(model, "CS", cityscapes=base + 0.05), "pretrained": True})
    paths = render_figures(rows, tmp_path, device="CPU test")
    assert [p.name for p in paths] == list(FIGURES)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from multiseg.demo.world import write_demo_world

    root = tmp_path_factory.mktemp("world") / "demo"
    write_demo_world(root, n_frames=9)
    return root


@pytest.mark.slow
def test_two_cell_grid_is_interrupted_resumed_and_rendered(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multiseg.train import engine

    grid = _write_grid(
        tmp_path / "grid.yaml",
        [{"config": str(PAPER / "enet/cs.yaml")}, {"config": str(PAPER / "enet/cs_gtsdb_last_conv.yaml")}],
        set=TINY,
        bench={"size": "64x128", "min_time": 0.02, "warmup": 1, "device": "cpu"},
    )
    out = tmp_path / "out"
    args = ["experiments", str(grid), "--out", str(out), "--data", str(tiny_world)]

    # First run: Ctrl-C in the second epoch of the second cell.
    real_epoch = engine.Trainer._run_epoch
    started: list[tuple[str, bool]] = []

    def interrupting_epoch(self: engine.Trainer, stream: object) -> dict:
        if self.run_dir.name == "enet-cs_gtsdb_last_conv" and self.state.epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, stream)

    monkeypatch.setattr(engine.Trainer, "_run_epoch", interrupting_epoch)
    assert main(args) == 130
    first, second = out / "cells" / "enet-cs", out / "cells" / "enet-cs_gtsdb_last_conv"
    assert (first / "result.json").is_file() and not (second / "result.json").exists()
    assert (second / "last.pt").is_file()
    marker_before = (first / "result.json").read_bytes()

    # Second run: the finished cell is skipped, the interrupted one resumes from its last.pt.
    monkeypatch.setattr(engine.Trainer, "_run_epoch", real_epoch)
    real_init = engine.Trainer.__init__

    def recording_init(self: engine.Trainer, cfg: TrainConfig, run_dir: Path, resume: bool = False) -> None:
        started.append((Path(run_dir).name, resume))
        real_init(self, cfg, run_dir, resume)

    monkeypatch.setattr(engine.Trainer, "__init__", recording_init)
    assert main(args) == 0
    assert started == [("enet-cs_gtsdb_last_conv", True)]
    assert (first / "result.json").read_bytes() == marker_before
    with (second / "metrics.csv").open() as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2]

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["cell"], r["setting"], r["head_mode"]) for r in rows] == [
        ("enet-cs", "CS", "decoder"), ("enet-cs_gtsdb_last_conv", "CS+GTSDB", "last_conv"),
    ]  # fmt: skip
    for r in rows:
        assert 0.0 <= float(r["miou/mean"]) <= 1.0 and float(r["fps"]) > 0 and int(r["params"]) > 0
        assert r["device"].startswith("CPU")
    assert rows[1]["miou/gtsdb"] != "" and rows[0]["miou/gtsdb"] == ""
    assert json.loads((out / "results.json").read_text())["device"].startswith("CPU")
    table = (out / "table1.md").read_text().splitlines()
    assert table[0].startswith("| Model | Training sets | CS |")
    assert table[2].startswith("| ENet | CS | ")  # the last_conv cell belongs to Fig 6, not Table 1
    assert table[3] == ""
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((out / "speed.json").read_text())) == 2

    # A third run changes nothing, and a changed recipe in the same folder is refused.
    started.clear()
    assert main(args) == 0 and started == []
    assert main([*args, "--set", "lr=0.01"]) == 2


def test_saved_cell_config_paths_compare_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resuming a grid from another spelling of --out (relative vs absolute) is not a config change."""
    monkeypatch.chdir(tmp_path)
    relative = load_config(TrainConfig, None, ["encoder_weights=runs/p/encoder.pt"])
    absolute = load_config(TrainConfig, None, [f"encoder_weights={tmp_path}/runs/p/encoder.pt"])
    other = load_config(TrainConfig, None, ["encoder_weights=runs/q/encoder.pt"])
    (line,) = config_differences(relative, absolute)
    assert _same_file(relative, absolute, line)
    (line,) = config_differences(relative, other)
    assert not _same_file(relative, other, line)
