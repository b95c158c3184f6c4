"""What a training run reports: the final summary of a finished run, in numbers and in plain words."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from multiseg.labels import GTSDB_CATEGORIES, GTSDB_NUM_CLASSES
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
    classes: dict[str, int] = field(default_factory=dict)  # head -> classes its mIoU averages over
    is_main: bool = True  # False on the other ranks under torchrun: only rank 0 prints the summary

    def table(self) -> str:
        """The final summary printed at the end of a run: numbers, then each head in plain words."""
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
        words = head_sentences(self.final, self.classes)
        if words:
            lines.append(f"what each head reached at the last validation (epoch {self.epochs_run}):")
            lines += [f"  {line}" for line in words]
        return "\n".join(lines)


def head_sentences(scores: Mapping[str, float], classes: Mapping[str, int]) -> list[str]:
    """One plain sentence per validated head, e.g. for GTSDB: its sign pixels overlap the true signs by
    61 %, it names 1.5 % of those it finds right (chance 2.3 %).

    ``scores`` are a validation's keys (``miou/<head>``, ``sign_iou/gtsdb`` ...); ``classes`` the
    number of classes each head's mIoU averages over.
    """
    lines = []
    for key, miou in scores.items():
        if not key.startswith("miou/") or key == "miou/mean":
            continue
        head = key.removeprefix("miou/")
        if f"sign_iou/{head}" in scores:
            lines.append(_sign_sentence(head, scores))
            continue
        if math.isnan(miou):
            lines.append(f"{head} head: no score (its validation split holds no pixel of a scored class)")
            continue
        n = classes.get(head)
        over = f" over its {n} classes" if n else ""
        lines.append(
            f"{head} head: mIoU {_pct(miou)} (predicted and true pixels of a class overlap by {_pct(miou)}, "
            f"on average{over})"
        )
    return lines


def _sign_sentence(head: str, scores: Mapping[str, float]) -> str:
    """A GTSDB head against the true sign masks: finding signs, their category, naming them."""
    found = scores[f"sign_iou/{head}"]
    category = scores.get(f"sign_category_accuracy/{head}", math.nan)
    named = scores.get(f"sign_accuracy/{head}", math.nan)
    miou = scores.get(f"miou_true/{head}", scores[f"miou/{head}"])
    if math.isnan(category) or math.isnan(named):  # no true sign pixel was predicted as a sign
        return (
            f"{head} head: finds no sign yet (sign IoU {_pct(found)}: none of its sign pixels is on a true "
            f"sign); mIoU over the {GTSDB_NUM_CLASSES} signs {_pct(miou)}"
        )
    return (
        f"{head} head: finds the signs with {_pct(found)} overlap between its sign pixels and the true ones "
        f"(sign IoU); of the sign pixels it finds, it gives {_pct(category)} the right category "
        f"(chance {_pct(1 / len(GTSDB_CATEGORIES))}) and names {_pct(named)} right "
        f"(chance {_pct(1 / GTSDB_NUM_CLASSES)}); mIoU over the {GTSDB_NUM_CLASSES} signs {_pct(miou)}"
    )


def _pct(value: float) -> str:
    """A share as a percentage: ``61 %``, ``1.5 %`` (two significant digits below 10 %); ``-`` if none."""
    if math.isnan(value) or math.isinf(value):
        return "-"
    pct = 100 * value
    return f"{pct:.1f} %" if pct < 10 else f"{pct:.0f} %"


def _number(value: float) -> str:
    """Four decimals, or ``-`` for ``nan`` (a score with nothing to count)."""
    return "-" if value != value else f"{value:.4f}"
