"""``multiseg experiments``: the study grid, its table and figures."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_experiments(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiments",
        help="run a grid of training runs (the paper's study) and render Table 1 and Figs 4-7",
        description=(
            "Train every cell of GRID (a YAML file listing TrainConfig files; configs/paper/grid.yaml is the "
            "paper's study, configs/demo/grid.yaml the same on the demo world), skipping finished cells and "
            "resuming an interrupted one, then write results.csv/json, table1.md/csv and four PNG figures "
            "into --out, with FPS measured on this machine."
        ),
    )
    p.add_argument("grid", type=Path, help="grid file (see multiseg/experiments/grid.py for its keys)")
    p.add_argument("--out", type=Path, required=True, help="output folder; rerun with it to resume")
    p.add_argument("--models", nargs="+", metavar="NAME", help="run only the cells of these models")
    p.add_argument(
        "--budget-scale", type=float, default=1.0, metavar="F", help="multiply every cell's epochs by F"
    )
    p.add_argument("--data", type=Path, help="data_root for every cell (data/cityscapes, data/gtsdb, ...)")
    p.add_argument(
        "--smoke", action="store_true",
        help="a smoke budget for every cell: 1 epoch of at most 2 optimizer steps of batch 2, validation and "
        "evaluation on 1 frame per dataset, FPS from 3 timed runs; sizes, crops and models stay the cells' "
        "(--set still wins)",
    )  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one TrainConfig key in every cell (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--published", type=Path, help="published-values YAML shown beside ours (default: the shipped one)"
    )
    p.add_argument("--no-published", action="store_true", help="leave the paper's values out of Table 1")
    p.set_defaults(func=_run_experiments)


def _run_experiments(args: argparse.Namespace) -> int:
    from multiseg.config import parse_overrides
    from multiseg.experiments import load_grid, run_grid, scale_budget, select_models
    from multiseg.experiments.grid import SMOKE_BUDGET, smoke_bench
    from multiseg.experiments.table import PUBLISHED_FILE

    overrides = parse_overrides(args.overrides)
    if args.smoke:
        overrides = {**SMOKE_BUDGET, **overrides}
    if args.data is not None:
        overrides["data_root"] = str(args.data)
    grid = scale_budget(select_models(load_grid(args.grid, overrides), args.models), args.budget_scale)
    if args.smoke:
        grid = smoke_bench(grid)
    published = None if args.no_published else (args.published or PUBLISHED_FILE)
    print(run_grid(grid, args.out, published).summary())
    return 0
