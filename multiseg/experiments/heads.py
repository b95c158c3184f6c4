"""Head modes side by side: the table and figure of a grid that trains one model several ways.

Written by ``multiseg experiments`` when a grid has a ``head_mode: universal`` cell
(``configs/demo/universal.yaml``): for each model and dataset setting, every head mode's per-dataset
mIoU, mean, parameters and FPS (``head_modes.md``), and ``fig_head_modes.png`` with the per-dataset
mIoU bars (left) and FPS against parameters (right).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiseg.experiments.table import DATASET_COLUMNS, MODEL_ORDER, MODEL_TITLES, SETTINGS

Row = Mapping[str, Any]
#: Head modes in column order, with their titles.
HEAD_TITLES = {"decoder": "multi-head", "last_conv": "shared decoder", "universal": "universal"}
TABLE_FILE = "head_modes.md"
FIGURE_FILE = "fig_head_modes.png"


def wants_head_modes(rows: Sequence[Row]) -> bool:
    """Whether the grid compares against a universal head (the paper's grid does not)."""
    return any(r.get("head_mode") == "universal" for r in rows)


def _order(row: Row) -> tuple[int, int, int]:
    model, setting, mode = row["model"], row["setting"], row["head_mode"]
    return (
        MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER),
        SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS),
        list(HEAD_TITLES).index(mode) if mode in HEAD_TITLES else len(HEAD_TITLES),
    )


def _key(row: Row) -> tuple[str, str, str]:
    return row["model"], row["setting"], row["head_mode"]


def _pct(value: Any) -> str:
    return "–" if value is None or value != value else f"{100 * float(value):.1f}"


def _columns(rows: Sequence[Row]) -> list[tuple[str, str]]:
    return [(k, t) for k, t in DATASET_COLUMNS if any(r.get(f"miou/{k}") is not None for r in rows)]


def head_modes_markdown(rows: Sequence[Row], device: str) -> str:
    """The comparison table (percent mIoU, one decimal; FPS on ``device``)."""
    rows = sorted((r for r in rows if not r.get("pretrained")), key=_order)
    cols = _columns(rows)
    head = ["Model", "Training sets", "Head", *(t for _, t in cols), "Mean", "Params (M)", "FPS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for r in rows:
        cells = [
            MODEL_TITLES.get(r["model"], r["model"]),
            r["setting"],
            HEAD_TITLES.get(r["head_mode"], r["head_mode"]),
            *(_pct(r.get(f"miou/{k}")) for k, _ in cols),
            _pct(r.get("miou/mean")),
            "–" if r.get("params") is None else f"{r['params'] / 1e6:.2f}",
            "–" if r.get("fps") is None else f"{float(r['fps']):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    epochs = sorted({r.get("epochs") for r in rows if r.get("epochs") is not None})
    lines.append("")
    lines.append(
        f"Validation mIoU (%) at the best epoch; {', '.join(map(str, epochs))} epochs. FPS: batch 1, all "
        f"heads computed, BN folded, fp32, on {device}."
    )
    return "\n".join(lines) + "\n"


def head_modes_figure(rows: Sequence[Row], path: Path, device: str) -> Path:
    """Per-dataset mIoU bars per model and head mode (left); FPS against parameters (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r for r in rows if not r.get("pretrained")), key=_order)
    cols = _columns(rows)
    groups = list(dict.fromkeys((r["model"], r["setting"]) for r in rows))  # in table order
    modes = [m for m in HEAD_TITLES if any(r["head_mode"] == m for r in rows)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    labels, width = [], 0.8 / max(len(modes), 1)
    for j, mode in enumerate(modes):
        xs, ys = [], []
        for g, (model, setting) in enumerate(groups):
            row = next((r for r in rows if _key(r) == (model, setting, mode)), {})
            for c, (key, _) in enumerate(cols):
                xs.append(g * (len(cols) + 1) + c + (j - (len(modes) - 1) / 2) * width)
                value = row.get(f"miou/{key}")
                ys.append(0.0 if value is None else 100 * float(value))
        left.bar(xs, ys, width=width, label=HEAD_TITLES[mode])
    for g, (model, _setting) in enumerate(groups):
        for c, (_, title) in enumerate(cols):
            labels.append((g * (len(cols) + 1) + c, f"{MODEL_TITLES.get(model, model)}\n{title}"))
    left.set_xticks([x for x, _ in labels], [t for _, t in labels], fontsize=8)
    left.set_ylabel("validation mIoU (%)")
    left.grid(alpha=0.3, axis="y")
    left.legend(fontsize=8)
    left.set_title("per-dataset mIoU: " + ", ".join(sorted({s for _, s in groups})))
    markers = {"decoder": "o", "last_conv": "s", "universal": "^"}
    for r in rows:
        if r.get("fps") is None or r.get("params") is None:
            continue
        right.scatter(r["params"] / 1e6, float(r["fps"]), marker=markers.get(r["head_mode"], "x"), s=60)
        right.annotate(
            f"{MODEL_TITLES.get(r['model'], r['model'])} {HEAD_TITLES.get(r['head_mode'], r['head_mode'])}",
            (r["params"] / 1e6, float(r["fps"])),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    right.set_xlabel("parameters (M)")
    right.set_ylabel("FPS")
    right.grid(alpha=0.3)
    right.set_title(f"speed ({device})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_head_modes(rows: Sequence[Row], out_dir: Path, device: str) -> list[Path]:
    """``head_modes.md`` and ``fig_head_modes.png`` in ``out_dir`` when the grid has a universal cell."""
    if not wants_head_modes(rows):
        return []
    from multiseg.files import atomic_write_text

    table = Path(out_dir) / TABLE_FILE
    atomic_write_text(table, head_modes_markdown(rows, device))
    return [table, head_modes_figure(rows, Path(out_dir) / FIGURE_FILE, device)]
