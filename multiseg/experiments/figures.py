"""Figs 4-7 of the paper as PNG files (matplotlib, Agg backend), drawn from the results rows.

* Fig 4: mean mIoU over the training datasets vs the training setting, one line per model.
* Fig 5: Cityscapes mIoU vs the training setting, one line per model.
* Fig 6: mean mIoU vs FPS on CS+GTSDB, bubble area proportional to parameters; circles are one decoder
  per dataset ("multi"), squares a shared decoder with one last conv per dataset ("single").
* Fig 7: gain in mean mIoU from a pretrained encoder over training from scratch, per model and setting.

A figure whose cells are not in the grid is still written, saying so, so a partial grid gives the same
four files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiseg.experiments.table import MODEL_ORDER, MODEL_TITLES, SETTINGS

Row = Mapping[str, Any]
FIGURES = ("fig4_mean_miou.png", "fig5_cityscapes_miou.png", "fig6_miou_vs_fps.png", "fig7_pretraining.png")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _value(row: Row, key: str) -> float | None:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def _models(rows: Sequence[Row]) -> list[str]:
    present = {r["model"] for r in rows}
    return [m for m in MODEL_ORDER if m in present] + sorted(present - set(MODEL_ORDER))


def _settings(rows: Sequence[Row]) -> list[str]:
    present = {r["setting"] for r in rows}
    return [s for s in SETTINGS if s in present] + sorted(present - set(SETTINGS))


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} cells in this grid", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def miou_vs_setting(rows: Sequence[Row], key: str, ylabel: str, title: str, path: Path) -> Path:
    """Figs 4 and 5: ``key`` (percent) per training setting, one line per model (decoder, scratch)."""
    plt = _plt()
    chosen = [r for r in rows if r["head_mode"] == "decoder" and not r["pretrained"]]
    chosen = [r for r in chosen if _value(r, key) is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if not chosen:
        _empty(ax, "decoder / scratch")
    else:
        settings = _settings(chosen)
        for model in _models(chosen):
            pts = sorted(
                (settings.index(r["setting"]), 100 * float(r[key])) for r in chosen if r["model"] == model
            )
            ax.plot(*zip(*pts, strict=True), marker="o", label=MODEL_TITLES.get(model, model))
        ax.set_xticks(range(len(settings)), settings)
        ax.set_xlabel("training datasets")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def miou_vs_fps(rows: Sequence[Row], path: Path, device: str | None = None) -> Path:
    """Fig 6: multi vs single decoder on CS+GTSDB; x FPS, y mean mIoU, bubble area ~ parameters."""
    plt = _plt()
    chosen = [
        r
        for r in rows
        if r["setting"] == "CS+GTSDB" and not r["pretrained"] and _value(r, "fps") and r.get("params")
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    if not chosen:
        _empty(ax, "CS+GTSDB")
    else:
        biggest = max(float(r["params"]) for r in chosen)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, model in enumerate(_models(chosen)):
            color = colors[i % len(colors)]
            mine = sorted((r for r in chosen if r["model"] == model), key=lambda r: r["head_mode"])
            for r in mine:
                ax.scatter(
                    r["fps"],
                    100 * float(r["miou/mean"]),
                    s=40 + 900 * float(r["params"]) / biggest,
                    marker="o" if r["head_mode"] == "decoder" else "s",
                    color=color,
                    alpha=0.6,
                    edgecolors="black",
                    linewidths=0.5,
                )
            if len(mine) > 1:
                ax.plot([r["fps"] for r in mine], [100 * float(r["miou/mean"]) for r in mine], color=color)
            ax.scatter([], [], color=color, label=MODEL_TITLES.get(model, model))
        ax.scatter([], [], marker="o", facecolors="none", edgecolors="black", label="multi decoder")
        ax.scatter([], [], marker="s", facecolors="none", edgecolors="black", label="single decoder")
        ax.set_xlabel("FPS" + (f" ({device})" if device else ""))
        ax.set_ylabel("mean mIoU (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    ax.set_title("Fig 6: mIoU vs FPS, bubble = parameters (CS+GTSDB)")
    return _save(fig, path)


def pretraining_gain(rows: Sequence[Row], path: Path) -> Path:
    """Fig 7: mean mIoU of the pretrained encoder minus the scratch one (points), per model and setting."""
    plt = _plt()
    pairs: dict[tuple[str, str], dict[bool, float]] = {}
    for r in rows:
        value = _value(r, "miou/mean")
        if r["head_mode"] == "decoder" and value is not None:
            pairs.setdefault((r["model"], r["setting"]), {})[bool(r["pretrained"])] = value
    gains = {k: 100 * (v[True] - v[False]) for k, v in pairs.items() if True in v and False in v}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if not gains:
        _empty(ax, "pretrained / scratch pairs of")
    else:
        models = [m for m in _models([{"model": m} for m, _ in gains])]
        settings = [s for s in SETTINGS if any(k[1] == s for k in gains)]
        settings += sorted({s for _, s in gains} - set(settings))
        width = 0.8 / len(settings)
        for j, setting in enumerate(settings):
            xs = [i + (j - (len(settings) - 1) / 2) * width for i in range(len(models))]
            ys = [gains.get((m, setting), 0.0) for m in models]
            ax.bar(xs, ys, width=width, label=setting)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(models)), [MODEL_TITLES.get(m, m) for m in models])
        ax.set_ylabel("mean mIoU gain (points)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, title="training sets")
    ax.set_title("Fig 7: pretrained encoder vs scratch")
    return _save(fig, path)


def render_figures(rows: Sequence[Row], out_dir: Path, device: str | None = None) -> list[Path]:
    """Write the four figures into ``out_dir``; returns their paths in figure order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = iter(FIGURES)
    return [
        miou_vs_setting(
            rows, "miou/mean", "mean mIoU (%)", "Fig 4: mean mIoU vs datasets", out_dir / next(names)
        ),
        miou_vs_setting(
            rows,
            "miou/cityscapes",
            "Cityscapes mIoU (%)",
            "Fig 5: Cityscapes mIoU vs datasets",
            out_dir / next(names),
        ),
        miou_vs_fps(rows, out_dir / next(names), device),
        pretraining_gain(rows, out_dir / next(names)),
    ]
