"""What a training run reports: the final summary of a finished run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multiseg.train.validate import SCORE_PREFIXES


@dataclass
class TrainSummary:
    """What a finished run reports."""

    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_score: float
    final: dict[str, float]
    stopped_early: bool
    seconds: float
    skipped: str = ""  # SkippedFiles.report() of a skip_bad run ("" when nothing was skipped)

    def table(self) -> str:
        """The final summary table printed at the end of a run."""
        lines = [f"run folder: {self.run_dir}", f"epochs: {self.epochs_run}  ({self.seconds:.0f} s)"]
        lines.append(f"best mean mIoU: {self.best_score:.4f} at epoch {self.best_epoch}")
        if self.stopped_early:
            lines.append("stopped early (no improvement within the patience)")
        if self.skipped:
            lines.append(self.skipped)
        lines.append(f"{'metric':<28} {'last epoch':>10}")
        for key, value in sorted(self.final.items()):
            if key.startswith((*SCORE_PREFIXES, "weight/")):
                lines.append(f"{key:<28} {_number(value):>10}")
        if any(v != v for v in self.final.values()):  # nan
            lines.append("-: no value (no pixel of the classes in the ground truth or the predictions)")
        return "\n".join(lines)


def _number(value: float) -> str:
    """Four decimals, or ``-`` for ``nan`` (a score with nothing to count)."""
    return "-" if value != value else f"{value:.4f}"
