"""Table 1 of the paper: validation mIoU of each model trained on 1, 2 and 3 datasets.

Layout (one row per model and training setting, models in the paper's order, settings in the order
datasets are added; one column per evaluated dataset, then the mean over the datasets the model was
trained on, parameters and FPS)::

    | Model | Training sets | CS | GTSDB | LM | MV | Mean | Params (M) | FPS |

A dataset the row was not trained on shows ``–``. With published values, every mIoU cell reads
``ours / paper`` (``n/a`` where the paper's number is not available), and the source is named under the
table. Numbers are percentages with one decimal, as in the paper.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multiseg.errors import MultisegError

#: Evaluated datasets, in column order: (metric key suffix, column title).
DATASET_COLUMNS = (("cityscapes", "CS"), ("gtsdb", "GTSDB"), ("lanes", "LM"), ("vistas", "MV"))
#: The paper's four training settings, in row order within a model.
SETTINGS = ("CS", "CS+GTSDB", "CS+GTSDB+LM", "CS+GTSDB+MV")
MODEL_ORDER = ("enet", "erfnet", "espnet", "edanet", "gunet", "igumnet")
MODEL_TITLES = {
    "enet": "ENet",
    "erfnet": "ERFNet",
    "espnet": "ESPNet",
    "edanet": "EDANet",
    "gunet": "GUNet",
    "igumnet": "iGUM-Net",
}
PUBLISHED_FILE = Path(__file__).with_name("published_table1.yaml")
_METRICS = (*(key for key, _ in DATASET_COLUMNS), "mean")


@dataclass(frozen=True)
class Published:
    """The paper's Table 1 values (percent; ``None`` = not available) and where they come from."""

    source: str
    note: str = ""
    values: dict[tuple[str, str], dict[str, float | None]] = field(default_factory=dict)

    def get(self, model: str, setting: str, metric: str) -> float | None:
        return self.values.get((model, setting), {}).get(metric)


def load_published(path: Path = PUBLISHED_FILE) -> Published:
    """Read a published-values file (``source``, ``note``, ``rows`` of model/setting/metrics)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise MultisegError(f"published values {path}: cannot read ({err.strerror})") from None
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        raise MultisegError(f"published values {path}: needs a 'source' naming where the numbers come from")
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    for i, row in enumerate(data.get("rows") or []):
        if not isinstance(row, dict) or "model" not in row or "setting" not in row:
            raise MultisegError(f"published values {path}: rows[{i}] needs 'model' and 'setting'")
        unknown = [k for k in row if k not in ("model", "setting", *_METRICS)]
        if unknown:
            raise MultisegError(f"published values {path}: rows[{i}] has unknown key '{unknown[0]}'")
        values[(str(row["model"]), str(row["setting"]))] = {
            m: None if row.get(m) is None else float(row[m]) for m in _METRICS
        }
    return Published(data["source"], str(data.get("note", "")), values)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f}"


def _published_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def table1_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The result rows Table 1 shows (decoder heads, scratch encoder), in the paper's order."""
    chosen = [r for r in rows if r["head_mode"] == "decoder" and not r["pretrained"]]

    def order(r: Mapping[str, Any]) -> tuple[int, str, int, str]:
        m = MODEL_ORDER.index(r["model"]) if r["model"] in MODEL_ORDER else len(MODEL_ORDER)
        s = SETTINGS.index(r["setting"]) if r["setting"] in SETTINGS else len(SETTINGS)
        return m, r["model"], s, r["setting"]

    return sorted(chosen, key=order)


def _cells(row: Mapping[str, Any], published: Published | None) -> list[str]:
    trained = set(str(row["datasets"]).split(";"))
    out = []
    for key, _title in DATASET_COLUMNS:
        if key not in trained:
            out.append("–")
            continue
        ours = _pct(row.get(f"miou/{key}"))
        if published is not None:
            ours += " / " + _published_pct(published.get(row["model"], row["setting"], key))
        out.append(ours)
    mean = _pct(row.get("miou/mean"))
    if published is not None:
        mean += " / " + _published_pct(published.get(row["model"], row["setting"], "mean"))
    out.append(mean)
    return out


def _params(row: Mapping[str, Any]) -> str:
    return "n/a" if row.get("params") is None else f"{row['params'] / 1e6:.2f}"


def _fps(row: Mapping[str, Any]) -> str:
    return "n/a" if row.get("fps") is None else f"{row['fps']:.1f}"


def table1_markdown(
    rows: Sequence[Mapping[str, Any]], published: Published | None = None, device: str | None = None
) -> str:
    """Table 1 as Markdown, with a caption saying what the numbers are.

    A ``published`` table without any value (none transcribed yet) adds no "/ paper" halves, only a
    line naming its source.
    """
    empty = published is not None and not published.values
    if empty:
        assert published is not None
        pending = f"The paper's values are not transcribed yet ({published.source}; {PUBLISHED_FILE.name})."
        published = None
    header = ["Model", "Training sets", *(t for _, t in DATASET_COLUMNS), "Mean", "Params (M)", "FPS"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 7) + "|"]
    previous = None
    for row in table1_rows(rows):
        model = MODEL_TITLES.get(row["model"], row["model"]) if row["model"] != previous else ""
        previous = row["model"]
        cells = [model, row["setting"], *_cells(row, published), _params(row), _fps(row)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "Validation mIoU (%) of the best epoch; Mean = over the datasets the model was trained on; "
        "– = not trained on that dataset. CS Cityscapes, GTSDB German Traffic Sign Detection Benchmark "
        "(boxes only), LM Lane Markings (Vistas), MV Mapillary Vistas.",
    ]
    if any("n/a" in line for line in lines):
        notes.append("n/a = no number: not measured in this grid, or (after /) not given in the paper.")
    if device:
        notes.append(f"Params and FPS of the network with all its heads, measured on {device}.")
    if published is not None:
        notes.append(f"Each mIoU cell: ours / paper. Paper values: {published.source}.")
        if published.note:
            notes.append(published.note)
    if empty:
        notes.append(pending)
    return "\n".join(lines + notes) + "\n"


def table1_csv(rows: Sequence[Mapping[str, Any]], published: Published | None = None) -> str:
    """Table 1 as CSV: raw fractions (not percent) for ours, percent for the paper's columns (if any)."""
    if published is not None and not published.values:
        published = None
    columns = ["model", "setting", *(k for k, _ in DATASET_COLUMNS), "mean", "params", "fps"]
    if published is not None:
        columns += [f"{m}_paper" for m in _METRICS]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in table1_rows(rows):
        trained = set(str(row["datasets"]).split(";"))
        values: list[Any] = [row["model"], row["setting"]]
        values += [row.get(f"miou/{k}", "") if k in trained else "" for k, _ in DATASET_COLUMNS]
        values += [row.get("miou/mean", ""), row.get("params", ""), row.get("fps", "")]
        if published is not None:
            got = [published.get(row["model"], row["setting"], m) for m in _METRICS]
            values += ["" if v is None else v for v in got]
        writer.writerow(["" if v is None else v for v in values])
    return buf.getvalue()
