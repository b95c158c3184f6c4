"""``multiseg experiments``: run every cell of a grid, resumably, then write results, Table 1 and figures.

Output folder::

    OUT/cells/<cell>/         a training run folder (config.yaml, last.pt, best.pt, metrics.csv) and,
                              once the cell is finished, result.json (the marker that makes reruns skip it);
                              with the grid's ``evaluate`` section also eval-<split>-<resolution>/ (the
                              ``multiseg eval`` report of best.pt, whose means go into the cell's row)
    OUT/pretrain/<model>/     encoder pretraining runs for the grid's pretrained cells (if the grid says so)
    OUT/speed.json            FPS measurements, one per distinct network (reused on reruns)
    OUT/results.csv, .json    one row per cell
    OUT/table1.md, .csv       Table 1 in the paper's layout
    OUT/fig4..fig7 *.png      the figures

Resume: a cell with ``result.json`` and the same config is skipped; one with ``last.pt`` but no marker
(interrupted) is resumed from it by the training engine; a cell whose saved config differs from the
grid's is an error, so results of different recipes never mix in one folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from multiseg.config import config_differences, config_from_dict, config_to_dict, load_config
from multiseg.errors import MultisegError
from multiseg.experiments.grid import Cell, EvaluateOptions, Grid
from multiseg.files import atomic_write_text
from multiseg.train.config import TrainConfig

MARKER = "result.json"
#: Columns of results.csv, in order; miou columns are fractions in [0, 1].
RESULT_COLUMNS = (
    "cell", "model", "setting", "datasets", "head_mode", "pretrained", "epochs", "best_epoch",
    "miou/cityscapes", "miou/gtsdb", "miou/lanes", "miou/vistas", "miou/mean",
    "params", "gmacs", "median_ms", "fps", "device", "seconds",
)  # fmt: skip


@dataclass(frozen=True)
class StudyOutputs:
    """What a finished ``experiments`` run wrote."""

    out_dir: Path
    rows: list[dict[str, Any]]
    trained: int
    skipped: int
    files: list[Path]
    device: str

    def summary(self) -> str:
        lines = [
            f"{len(self.rows)} cells ({self.trained} trained or resumed, {self.skipped} already done) "
            f"-> {self.out_dir}",
            f"FPS measured on {self.device}",
        ]
        lines += [f"  {p}" for p in self.files]
        return "\n".join(lines)


def best_row(metrics_csv: Path) -> tuple[int, dict[str, float]]:
    """The epoch and metrics of the best validated epoch (highest ``miou/mean``, first on ties)."""
    if not metrics_csv.is_file():
        raise MultisegError(f"{metrics_csv}: missing; the run has not finished an epoch")
    with metrics_csv.open(newline="") as fh:
        rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]
    scored = [r for r in rows if not math.isnan(r.get("miou/mean", math.nan))]
    if not scored:
        raise MultisegError(f"{metrics_csv}: no validated epoch")
    best = max(scored, key=lambda r: (r["miou/mean"], -r["epoch"]))
    return int(best["epoch"]), best


def _same_file(old: TrainConfig, new: TrainConfig, line: str) -> bool:
    """Whether a difference line is one path spelt two ways (relative vs absolute, same file)."""
    key = line.split(":", 1)[0]
    a, b = getattr(old, key, None), getattr(new, key, None)
    return isinstance(a, Path) and isinstance(b, Path) and a.absolute() == b.absolute()


def _check_saved_config(cell: Cell, cell_dir: Path) -> None:
    saved_path = cell_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = load_config(TrainConfig, saved_path)
    diff = [line for line in config_differences(saved, cell.cfg) if not _same_file(saved, cell.cfg, line)]
    if diff:
        raise MultisegError(
            f"cell {cell.name}: {saved_path} was trained with another config ({'; '.join(diff[:3])}); "
            "use another --out folder or delete that cell's folder"
        )


def _with_pretrained_encoder(cell: Cell, grid: Grid, out_dir: Path) -> Cell:
    """A pretrained cell of a grid with a ``pretrain`` section trains from the grid's own weights."""
    if not cell.pretrained or grid.pretrain is None:
        return cell
    from multiseg.train.pretrain import ensure_pretrained

    weights = ensure_pretrained(cell.model, grid.pretrain.values, out_dir / "pretrain")
    values = {**config_to_dict(cell.cfg), "encoder_weights": str(weights.absolute())}  # any working dir
    return replace(cell, cfg=config_from_dict(TrainConfig, values, str(cell.config_path)))


def evaluate_cell(cell_dir: Path, options: EvaluateOptions) -> dict[str, Any]:
    """``multiseg eval`` of a trained cell (best.pt) into its folder; returns the row's extra columns.

    Columns: ``<tag>miou/<head>`` per head on its own data (GTSDB: the box targets),
    ``<tag>miou_true/gtsdb`` against per-pixel GT where the data has it, and ``<tag>seconds``, with
    ``<tag>`` = ``fullres_`` or ``eval_``. The cell's ``val_max_samples`` caps the images per dataset.
    """
    from multiseg.evaluate.evaluator import EvalOptions, evaluate, load_run, resolution_note, write_report
    from multiseg.train.device import resolve_device

    model, cfg, ckpt, _ = load_run(cell_dir)
    opts = EvalOptions(full_res=options.full_res, max_samples=cfg.val_max_samples, device=cfg.device)
    start = time.perf_counter()
    results = evaluate(model, cfg, opts, resolve_device(cfg.device))
    seconds = time.perf_counter() - start
    tag = "fullres_" if options.full_res else "eval_"
    out = cell_dir / f"eval-val-{'fullres' if options.full_res else 'trainres'}"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"checkpoint": str(ckpt), "model": model.name, "full_res": options.full_res,
            "seconds": round(seconds, 2)}  # fmt: skip
    write_report(results, meta, out, resolution_note(cfg, options.full_res))
    columns: dict[str, Any] = {}
    for r in results:
        if r.head == r.dataset and r.target in ("labels", "boxes"):
            columns[f"{tag}miou/{r.head}"] = r.means["miou"]
        elif r.head == r.dataset == "gtsdb" and r.target == "pixel gt":
            columns[f"{tag}miou_true/gtsdb"] = r.means["miou"]
    columns[f"{tag}seconds"] = round(seconds, 1)
    return columns


def run_cell(
    cell: Cell, cell_dir: Path, is_main: bool = True, evaluate: EvaluateOptions | None = None
) -> tuple[dict[str, Any], bool]:
    """Train (or resume, or skip) one cell, then evaluate it if asked; returns its result and whether
    training ran.

    Under ``torchrun`` every rank trains; only rank 0 (``is_main``) reads the metrics, evaluates and
    writes the marker, and the other ranks return an empty result.
    """
    from multiseg.train.engine import Trainer
    from multiseg.train.validate import SCORE_PREFIXES

    marker = cell_dir / MARKER
    _check_saved_config(cell, cell_dir)
    if marker.is_file():
        return json.loads(marker.read_text(encoding="utf-8")), False
    resume = (cell_dir / "last.pt").is_file()
    start = time.time()
    Trainer(cell.cfg, cell_dir, resume=resume).fit()
    if not is_main:
        return {}, True
    best_epoch, metrics = best_row(cell_dir / "metrics.csv")
    result = {
        "cell": cell.name,
        "model": cell.model,
        "setting": cell.setting,
        "datasets": ";".join(cell.cfg.datasets),
        "head_mode": cell.cfg.head_mode,
        "pretrained": cell.pretrained or cell.cfg.encoder_weights is not None,
        "epochs": cell.cfg.epochs,
        "best_epoch": best_epoch,
        **{k: v for k, v in metrics.items() if k.startswith(SCORE_PREFIXES)},
        # A resumed run spent part of its time in an earlier process, so its duration is unknown here.
        "seconds": None if resume else round(time.time() - start, 1),
    }
    if evaluate is not None:
        result.update(evaluate_cell(cell_dir, evaluate))
    atomic_write_text(marker, json.dumps(result, indent=2) + "\n")
    return result, True


def _speed(cell_dir: Path, grid: Grid, cache: dict[str, Any]) -> dict[str, Any]:
    """The cell network's speed, measured once per distinct network and protocol."""
    from multiseg.experiments.speed import measure_speed, speed_key
    from multiseg.train.checkpoint import load_checkpoint

    model_config = load_checkpoint(cell_dir / "last.pt")["model_config"]
    key = speed_key(model_config, grid.bench)
    if key not in cache:
        cache[key] = measure_speed(model_config, grid.bench)
    return cache[key]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def results_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """results.csv: the fixed columns first, then any extra metric columns the rows carry."""
    columns = list(RESULT_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buf.getvalue()


def render_outputs(
    rows: Sequence[Mapping[str, Any]], out_dir: Path, device: str, published_path: Path | None
) -> list[Path]:
    """results.csv/json, Table 1 (Markdown, CSV) and Figs 4-7 from the result rows."""
    from multiseg.experiments.figures import render_figures
    from multiseg.experiments.table import load_published, table1_csv, table1_markdown

    published = load_published(published_path) if published_path is not None else None
    files = {
        "results.csv": results_csv(rows),
        "results.json": json.dumps({"device": device, "rows": list(rows)}, indent=2) + "\n",
        "table1.md": table1_markdown(rows, published, device),
        "table1.csv": table1_csv(rows, published),
    }
    written = []
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    from multiseg.experiments.heads import render_head_modes

    return written + render_figures(rows, out_dir, device) + render_head_modes(rows, out_dir, device)


def _mean_text(value: float) -> str:
    """``41.3 %``, or why there is no number (no validation ran, or every head scored ``nan``)."""
    return "- (no validation score)" if math.isnan(value) else f"{100 * value:.1f} %"


def run_grid(grid: Grid, out_dir: Path, published_path: Path | None = None) -> StudyOutputs:
    """Run every cell of ``grid`` into ``out_dir`` (skipping finished ones), then render the study."""
    from multiseg.experiments.speed import bench_device, check_bench_size, device_name

    check_bench_size(grid)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_main = int(os.environ.get("RANK", "0")) == 0
    speed_path = out_dir / "speed.json"
    cache: dict[str, Any] = _read_json(speed_path)
    rows: list[dict[str, Any]] = []
    trained = 0
    bar = tqdm(grid.cells, desc="cells", unit="cell", position=0, dynamic_ncols=True, disable=not is_main)
    with bar:
        for cell in bar:
            bar.set_postfix_str(cell.name)
            cell = _with_pretrained_encoder(cell, grid, out_dir)
            cell_dir = out_dir / "cells" / cell.name
            result, ran = run_cell(cell, cell_dir, is_main, grid.evaluate)
            trained += ran
            if not is_main:
                continue  # rank 0 alone measures and renders
            speed = _speed(cell_dir, grid, cache)
            atomic_write_text(speed_path, json.dumps(cache, indent=2) + "\n")
            rows.append(
                {**result, **{k: speed[k] for k in ("params", "gmacs", "median_ms", "fps", "device")}}
            )
            tqdm.write(f"cell {cell.name}: {'trained' if ran else 'already done'}, "
                       f"mean mIoU {_mean_text(result.get('miou/mean', math.nan))}")  # fmt: skip
    device = device_name(bench_device(grid.bench))
    if not is_main:
        return StudyOutputs(out_dir, [], trained, 0, [], device)
    files = render_outputs(rows, out_dir, device, published_path)
    return StudyOutputs(out_dir, rows, trained, len(rows) - trained, files, device)
