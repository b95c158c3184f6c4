"""What a run shows: ``metrics.csv``, TensorBoard scalars, and PNG plots at the end."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from multiseg.files import atomic_write_text


class MetricsLog:
    """One row per epoch in ``metrics.csv`` (columns grow as keys appear), mirrored to TensorBoard.

    On resume the file is cut back to the epochs the checkpoint has seen, so a killed and resumed run
    ends with the same file as an uninterrupted one.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, float]] = self._read()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def _read(self) -> list[dict[str, float]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as fh:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]

    def truncate(self, last_epoch: int) -> None:
        """Forget rows after ``last_epoch`` (those were written after the checkpoint being resumed)."""
        self.rows = [r for r in self.rows if r.get("epoch", -1) <= last_epoch]
        self._write()

    def log(self, epoch: int, values: Mapping[str, float]) -> None:
        row = {"epoch": float(epoch), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        self._write()
        if self._tb is not None:
            for key, value in values.items():
                if not math.isnan(float(value)):
                    self._tb.add_scalar(key, float(value), epoch)
            self._tb.flush()

    def _write(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        lines = [",".join(columns)]
        for row in self.rows:
            lines.append(",".join(_fmt(row.get(c)) for c in columns))
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def plot(self, out_dir: Path) -> list[Path]:
        """Losses, loss weights and per-head mIoU per epoch, one PNG each; returns the files written."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        groups = {"losses.png": "loss/", "loss_weights.png": "weight/", "miou.png": "miou/"}
        written = []
        for filename, prefix in groups.items():
            keys = sorted({k for r in self.rows for k in r if k.startswith(prefix)})
            if not keys:
                continue
            fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
            for key in keys:
                pts = [(r["epoch"], r[key]) for r in self.rows if key in r and not math.isnan(r[key])]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=key[len(prefix) :])
            ax.set_xlabel("epoch")
            ax.set_ylabel(prefix.rstrip("/"))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = Path(out_dir) / filename
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
        return written


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"
