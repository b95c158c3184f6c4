"""The grid file: which training runs (cells) a study is made of, and how to time and pretrain them.

A grid is one YAML mapping::

    study: paper                  # a title for the table and figures
    defaults: {workers: 4}        # TrainConfig keys for every cell, under what its config file says
    set: {epochs: 3}              # TrainConfig keys for every cell, over its config file
    bench: {size: 512x1024, min_time: 3.0, warmup: null, device: auto}   # FPS protocol (deploy.bench)
    pretrain: {data: null, epochs: 30}   # optional: how cells marked ``pretrained`` get encoder weights
    evaluate: {full_res: true}    # optional: score each trained cell's best.pt with ``multiseg eval``
    cells:
      - config: erfnet/cs.yaml    # a flat TrainConfig YAML, relative to the grid file
        name: erfnet-cs           # optional; default: <config's folder>-<config's stem>
        set: {epochs: 10}         # optional TrainConfig overrides for this cell only (over all else)
        pretrained: true          # optional: the encoder starts from pretrained weights (Fig 7)

What a cell *is* (model, dataset setting, head mode, pretrained) is read from its resolved config, so
the renderers need no labels beyond the config itself. Every mistake is a one-line
:class:`~multiseg.errors.MultisegError` naming the grid file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiseg.config import config_from_dict, config_to_dict, read_yaml_mapping
from multiseg.errors import MultisegError
from multiseg.train.config import TrainConfig

GRID_KEYS = ("study", "defaults", "set", "bench", "pretrain", "evaluate", "cells")
CELL_KEYS = ("config", "name", "set", "pretrained")

#: Short names of the datasets, in the order the paper adds them.
DATASET_ABBREV = {"cityscapes": "CS", "gtsdb": "GTSDB", "lanes": "LM", "vistas": "MV"}


@dataclass(frozen=True)
class BenchOptions:
    """How FPS is measured for the figures (see :mod:`multiseg.deploy.bench` for the protocol)."""

    size: tuple[int, int] = (512, 1024)
    min_time: float = 3.0
    warmup: int | None = None
    device: str = "auto"  # auto: CUDA when available, else CPU


@dataclass(frozen=True)
class PretrainOptions:
    """Encoder pretraining run by the grid for cells marked ``pretrained`` (keys of PretrainConfig)."""

    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateOptions:
    """A final ``multiseg eval`` of each trained cell's best checkpoint (capped by its ``val_max_samples``).

    ``full_res`` is the official protocol: logits upsampled to each label's original size.
    """

    full_res: bool = True


@dataclass(frozen=True)
class Cell:
    """One training run of the study."""

    name: str
    config_path: Path
    cfg: TrainConfig
    pretrained: bool = False

    @property
    def model(self) -> str:
        return self.cfg.model

    @property
    def setting(self) -> str:
        """The dataset setting as the paper writes it, e.g. ``CS+GTSDB+LM``."""
        return setting_label(self.cfg.datasets)


@dataclass(frozen=True)
class Grid:
    """A loaded, checked grid file."""

    path: Path
    study: str
    cells: tuple[Cell, ...]
    bench: BenchOptions
    pretrain: PretrainOptions | None
    evaluate: EvaluateOptions | None = None


def setting_label(datasets: Sequence[str]) -> str:
    """``["cityscapes", "gtsdb"]`` -> ``"CS+GTSDB"`` (canonical order, whatever the config's order)."""
    order = list(DATASET_ABBREV)
    return "+".join(DATASET_ABBREV[d] for d in sorted(datasets, key=order.index))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MultisegError(f"{where} must be a mapping of keys to values, not {type(value).__name__}")
    return dict(value)


def _check_keys(data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = [k for k in data if k not in known]
    if unknown:
        raise MultisegError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(known)})")


def _bench_options(data: Mapping[str, Any], where: str) -> BenchOptions:
    fields = [f.name for f in dataclasses.fields(BenchOptions)]
    _check_keys(data, fields, where)
    values = dict(data)
    if "size" in values:
        from multiseg.config import parse_size

        size = values["size"]
        values["size"] = tuple(size) if isinstance(size, (list, tuple)) else parse_size(str(size))
    if values.get("device", "auto") not in ("auto", "cpu", "cuda"):
        raise MultisegError(f"{where}: device must be auto, cpu or cuda, got {values['device']!r}")
    try:
        return BenchOptions(**values)
    except TypeError as err:
        raise MultisegError(f"{where}: {err}") from None


def _cell_name(entry: Mapping[str, Any], config: str) -> str:
    name = entry.get("name")
    if name is None:
        parts = [p for p in Path(config).with_suffix("").parts[-2:] if p not in ("/", "..", ".")]
        name = "-".join(parts)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise MultisegError(f"cell name {name!r} must be a plain folder name")
    return name


def _load_cell(
    entry: Any,
    index: int,
    grid_path: Path,
    layers: tuple[Mapping[str, Any], Mapping[str, Any]],
    overrides: Mapping[str, Any],
) -> Cell:
    """One cell: its config file between the grid's ``defaults`` and ``set`` (``layers``), then its own
    ``set``, then the command line's ``overrides``."""
    where = f"{grid_path}: cells[{index}]"
    if isinstance(entry, str):
        entry = {"config": entry}
    entry = _mapping(entry, where)
    _check_keys(entry, CELL_KEYS, where)
    if not isinstance(entry.get("config"), str):
        raise MultisegError(f"{where}: needs 'config', the path of a TrainConfig YAML file")
    config_path = (grid_path.parent / entry["config"]).resolve()
    if not config_path.is_file():
        raise MultisegError(f"{where}: config file {config_path} does not exist")
    pretrained = entry.get("pretrained", False)
    if not isinstance(pretrained, bool):
        raise MultisegError(f"{where}: 'pretrained' must be true or false")
    defaults, grid_set = layers
    values = {**defaults, **read_yaml_mapping(config_path), **grid_set}
    values.update(_mapping(entry.get("set"), f"{where}.set"))
    values.update(overrides)
    cfg = config_from_dict(TrainConfig, values, source=str(config_path))
    from multiseg.models import list_models

    if cfg.model not in list_models():
        raise MultisegError(f"{config_path}: unknown model {cfg.model!r} (known: {', '.join(list_models())})")
    return Cell(_cell_name(entry, entry["config"]), config_path, cfg, pretrained)


def load_grid(path: Path, overrides: Mapping[str, Any] | None = None) -> Grid:
    """Read and check a grid file; ``overrides`` (TrainConfig keys) apply to every cell last."""
    path = Path(path)
    data = read_yaml_mapping(path)
    _check_keys(data, GRID_KEYS, str(path))
    layers = (_mapping(data.get("defaults"), f"{path}: defaults"), _mapping(data.get("set"), f"{path}: set"))
    train_keys = [f.name for f in dataclasses.fields(TrainConfig)]
    for name, layer in zip(("defaults", "set"), layers, strict=True):
        _check_keys(layer, train_keys, f"{path}: {name}")
    raw_cells = data.get("cells")
    if not isinstance(raw_cells, list) or not raw_cells:
        raise MultisegError(f"{path}: 'cells' must be a non-empty list of cells")
    cells = [_load_cell(e, i, path, layers, overrides or {}) for i, e in enumerate(raw_cells)]
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells):
        if cell.name in seen:
            raise MultisegError(
                f"{path}: cells[{seen[cell.name]}] and cells[{i}] are both named {cell.name!r}"
            )
        seen[cell.name] = i
    pretrain = None
    if data.get("pretrain") is not None:
        pretrain = PretrainOptions(_mapping(data["pretrain"], f"{path}: pretrain"))
    for i, cell in enumerate(cells):
        if cell.pretrained and pretrain is None and cell.cfg.encoder_weights is None:
            raise MultisegError(
                f"{path}: cells[{i}] ({cell.name}) is pretrained but sets no encoder_weights and the grid "
                "has no 'pretrain' section"
            )
    study = data.get("study", path.stem)
    bench = _bench_options(_mapping(data.get("bench"), f"{path}: bench"), f"{path}: bench")
    return Grid(path, str(study), tuple(cells), bench, pretrain, _evaluate_options(data, path))


def _evaluate_options(data: Mapping[str, Any], path: Path) -> EvaluateOptions | None:
    if data.get("evaluate") is None:
        return None
    where = f"{path}: evaluate"
    values = _mapping(data["evaluate"], where)
    _check_keys(values, [f.name for f in dataclasses.fields(EvaluateOptions)], where)
    if not isinstance(values.get("full_res", True), bool):
        raise MultisegError(f"{where}: full_res must be true or false")
    return EvaluateOptions(**values)


def select_models(grid: Grid, models: Sequence[str] | None) -> Grid:
    """The grid restricted to cells of ``models``; a model no cell uses is an error."""
    if not models:
        return grid
    present = {c.model for c in grid.cells}
    missing = [m for m in models if m not in present]
    if missing:
        raise MultisegError(
            f"--models: no cell of {grid.path} trains {missing[0]!r} (models in the grid: "
            f"{', '.join(sorted(present))})"
        )
    cells = tuple(c for c in grid.cells if c.model in models)
    return dataclasses.replace(grid, cells=cells)


#: TrainConfig keys of ``multiseg experiments --smoke``: two optimizer steps of batch 2, one validation
#: and one evaluation frame per dataset. Every other key (sizes, crops, scales, model) stays the cell's.
SMOKE_BUDGET: dict[str, Any] = {"epochs": 1, "max_steps": 2, "batch_size": 2, "val_max_samples": 1}


def smoke_bench(grid: Grid) -> Grid:
    """The grid's FPS protocol cut to one warm-up run and three timed runs (``--smoke``)."""
    return dataclasses.replace(grid, bench=dataclasses.replace(grid.bench, warmup=1, min_time=0.0))


def scale_budget(grid: Grid, factor: float) -> Grid:
    """Every cell's epoch budget (and patience) times ``factor``, at least one epoch."""
    if factor <= 0:
        raise MultisegError(f"--budget-scale must be > 0, got {factor}")
    if factor == 1:
        return grid
    cells = []
    for cell in grid.cells:
        values = config_to_dict(cell.cfg)
        values["epochs"] = max(1, round(cell.cfg.epochs * factor))
        if cell.cfg.patience:
            values["patience"] = max(1, round(cell.cfg.patience * factor))
        cells.append(
            dataclasses.replace(cell, cfg=config_from_dict(TrainConfig, values, str(cell.config_path)))
        )
    return dataclasses.replace(grid, cells=tuple(cells))
