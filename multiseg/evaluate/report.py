"""Evaluation reports: the table on screen, JSON, CSV, per-class IoU bar charts, confusion matrices, legends.

Plots use matplotlib's Agg backend (no display needed). ``nan`` IoUs (the class is in neither ground
truth nor prediction) are written as ``null`` in JSON, an empty cell in CSV, and "-" on screen with a
note saying why; the bar chart leaves them out.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class EvalResult:
    """One head on one dataset against one kind of ground truth.

    ``groups`` maps a mean-IoU name (e.g. ``"miou"``, ``"miou_not_in_cityscapes"``) to the class indices
    it averages; ``confusion`` is the ``n x (n + 1)`` count matrix (last column: predictions outside the
    class set). ``pixel_accuracy`` counts every valid pixel of the head's classes, GTSDB's background
    included (so it is near 1 there; the sign mIoU is the number to read). ``scores`` holds other
    figures of the same matrix, e.g. GTSDB's ``sign_iou`` and ``sign_accuracy``.
    """

    head: str
    dataset: str
    split: str
    target: str
    classes: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]
    iou: list[float]
    confusion: list[list[int]]
    pixel_accuracy: float
    images: int
    means: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A file-name-safe id, e.g. ``gtsdb_on_gtsdb_pixel-gt``."""
        return f"{self.head}_on_{self.dataset}_{self.target}".replace(" ", "-").replace("/", "-")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` -> ``None``)."""
        return {
            "head": self.head,
            "dataset": self.dataset,
            "split": self.split,
            "target": self.target,
            "images": self.images,
            "pixel_accuracy": _json_float(self.pixel_accuracy),
            **{name: _json_float(v) for name, v in self.means.items()},
            **{name: _json_float(v) for name, v in self.scores.items()},
            "groups": {name: list(idx) for name, idx in self.groups.items()},
            "per_class_iou": {c: _json_float(v) for c, v in zip(self.classes, self.iou, strict=True)},
            "confusion": self.confusion,
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


#: What "-" means in the tables, printed under a table that shows one.
NO_VALUE_NOTE = "-: no value (no pixel of these classes in the ground truth or the predictions)"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"


def _pct_unit(value: float) -> str:
    """``12.34 %``, or ``-`` without the unit."""
    return "-" if math.isnan(value) else f"{100 * value:.2f} %"


def format_table(results: Sequence[EvalResult], resolution: str) -> str:
    """The table ``multiseg eval`` prints: one line per result and mean-IoU group, plus the protocol."""
    header = ("head", "dataset", "split", "ground truth", "classes", "metric", "mIoU %", "pixel acc %", "n")
    rows = [header]
    for r in results:
        for name, value in r.means.items():
            rows.append(
                (r.head, r.dataset, r.split, r.target, str(len(r.groups[name])), name, _pct(value),
                 _pct(r.pixel_accuracy), str(r.images))
            )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.scores:
            scores = ", ".join(f"{name} {_pct_unit(value)}" for name, value in r.scores.items())
            lines.append(f"{r.head} on {r.dataset} {r.target}: {scores}")
    values = [v for r in results for v in (*r.means.values(), r.pixel_accuracy, *r.scores.values())]
    if any(math.isnan(v) for v in values):
        lines.append(NO_VALUE_NOTE)
    lines.append(f"resolution: {resolution}")
    return "\n".join(lines)


def write_json(results: Sequence[EvalResult], meta: dict[str, Any], path: Path) -> None:
    """Everything: run metadata, every result with its per-class IoUs and confusion matrix."""
    data = {**meta, "results": [r.as_dict() for r in results]}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_csv(results: Sequence[EvalResult], path: Path) -> None:
    """One row per result and class: head, dataset, split, target, class index and name, IoU, evaluated."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["head", "dataset", "split", "target", "class_index", "class", "iou", "in_miou"])
        for r in results:
            main = set(r.groups.get("miou", ()))
            for i, (name, iou) in enumerate(zip(r.classes, r.iou, strict=True)):
                value = "" if math.isnan(iou) else f"{iou:.6f}"
                writer.writerow([r.head, r.dataset, r.split, r.target, i, name, value, int(i in main)])


def _pyplot():  # noqa: ANN202 - matplotlib is imported lazily, with the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_class_iou(result: EvalResult, path: Path, resolution: str) -> None:
    """Horizontal bar chart of the IoU of every class in the result's main mIoU (n/a classes left out)."""
    plt = _pyplot()
    idx = [i for i in result.groups.get("miou", range(len(result.classes))) if not math.isnan(result.iou[i])]
    names = [result.classes[i] for i in idx]
    values = [100 * result.iou[i] for i in idx]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * len(idx) + 1.2)))
    ax.barh(range(len(idx)), values, color="#4477aa")
    ax.set_yticks(range(len(idx)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU %")
    miou = result.means.get("miou", float("nan"))
    ax.set_title(
        f"{result.head} on {result.dataset} {result.split} ({result.target}): "
        f"mIoU {_pct_unit(miou)}\n{resolution}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: Up to this many classes a confusion matrix is labelled with names; above, with numbers and a key.
NAMED_TICKS_MAX = 30
#: Tick and key font size (points): 10.7 px at the 110 dpi the plots are saved at.
TICK_FONT = 7


def confusion_figure(result: EvalResult, resolution: str) -> Any:
    """The figure :func:`plot_confusion` saves (a matplotlib Figure; tests read its labels).

    Up to ``NAMED_TICKS_MAX`` classes the ticks are the class names; above (GTSDB: 44 classes, names up
    to 45 characters) they are class numbers at the same readable size, with a key of the names
    beside the matrix, instead of names shrunk to 4 px.
    """
    plt = _pyplot()
    mat = np.asarray(result.confusion, np.float64)
    rows = mat.sum(1, keepdims=True)
    norm = np.divide(mat, rows, out=np.full_like(mat, np.nan), where=rows > 0)
    n = len(result.classes)
    size = min(24.0, max(5.0, 0.18 * n + 3))
    named = n <= NAMED_TICKS_MAX
    if named:
        fig, ax = plt.subplots(figsize=(size, size))
        ticks = list(result.classes)
    else:
        fig, (ax, key) = plt.subplots(
            1, 2, figsize=(size + 4.5, size), gridspec_kw={"width_ratios": [size, 4.5]}
        )
        ticks = [str(i) for i in range(n)]
        key.axis("off")
        names = "\n".join(f"{i:>2}  {name}" for i, name in enumerate(result.classes))
        key.text(0, 1, names, va="top", ha="left", fontsize=TICK_FONT, family="monospace")
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n + 1), [*ticks, "(outside)"], rotation=90, fontsize=TICK_FONT)
    ax.set_yticks(range(n), ticks, fontsize=TICK_FONT)
    ax.set_xlabel("prediction" + ("" if named else " (class numbers: key on the right)"))
    ax.set_ylabel("ground truth")
    title = f"{result.head} on {result.dataset} ({result.target}), rows normalised\n{resolution}"
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def plot_confusion(result: EvalResult, path: Path, resolution: str) -> None:
    """Row-normalised confusion matrix (GT rows, predicted columns, last column "outside") as an image."""
    fig = confusion_figure(result, resolution)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def legend_image(
    classes: Sequence[str], palette: Sequence[tuple[int, int, int]], columns: int = 2, row_h: int = 18
) -> np.ndarray:
    """An RGB uint8 image of colour swatches with class names (drawn with OpenCV, no display needed).

    Names are never cut: the columns are as wide as the longest "<index> <name>" (GTSDB's 60 and 61
    differ only after 34 characters).
    """
    import cv2

    labels = [f"{i} {name}" for i, name in enumerate(classes)]
    widest = max((cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] for t in labels), default=0)
    col_w = max(260, 30 + widest + 10)
    rows = math.ceil(len(classes) / columns)
    img = np.full((rows * row_h + 8, columns * col_w, 3), 255, np.uint8)
    for i, (text, colour) in enumerate(zip(labels, palette, strict=True)):
        x, y = (i // rows) * col_w + 4, (i % rows) * row_h + 4
        cv2.rectangle(img, (x, y), (x + 24, y + row_h - 4), tuple(int(c) for c in colour), -1)
        cv2.rectangle(img, (x, y), (x + 24, y + row_h - 4), (0, 0, 0), 1)
        origin = (x + 30, y + row_h - 6)
        cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
