"""What a run says while it trains: the time left for the whole run and one line per validation.

The per-epoch progress bars only know their own epoch; :class:`RunClock` times the training steps and
the validations of this process and extrapolates them to the rest of the run, and
:func:`validation_line` puts what a validation found (each head's mIoU, the GTSDB head's sign IoU, the
loss weights, the best score so far) on one line of the terminal, not only in ``metrics.csv``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping


def format_duration(seconds: float) -> str:
    """``42s``, ``5m12s``, ``2h05m``: short enough for a progress bar."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def validates(epoch: int, epochs: int, val_every: int) -> bool:
    """Whether epoch ``epoch`` (1-based) ends with a validation: every ``val_every``-th and the last."""
    return epoch % val_every == 0 or epoch == epochs


class RunClock:
    """The time left for the whole run, from the mean step and validation times measured so far.

    Steps are timed from one step's end to the next (data loading included, the validation and
    checkpoint between two epochs excluded: :meth:`start_epoch` restarts the tick). Until a first
    validation has been timed, the estimate covers the training steps only; an early stop makes it an
    upper bound.
    """

    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int,
        val_every: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.epochs, self.steps_per_epoch, self.val_every = epochs, steps_per_epoch, val_every
        self._clock = clock
        self._tick = clock()
        self.step_seconds = self.val_seconds = 0.0
        self.steps = self.validations = 0

    def start_epoch(self) -> None:
        """Restart the step tick (what ran since the last step was no training step)."""
        self._tick = self._clock()

    def step_done(self) -> None:
        """One training step ended now."""
        now = self._clock()
        self.step_seconds += now - self._tick
        self.steps += 1
        self._tick = now

    def validation_done(self, seconds: float) -> None:
        """One validation took ``seconds``."""
        self.val_seconds += seconds
        self.validations += 1

    def seconds_left(self, epochs_done: int, step_in_epoch: int) -> float | None:
        """Seconds until the last epoch's validation ends; None before any step was timed.

        ``epochs_done`` full epochs (their validations included) and ``step_in_epoch`` steps of the
        next one are behind.
        """
        if not self.steps:
            return None
        steps_left = (self.epochs - epochs_done) * self.steps_per_epoch - step_in_epoch
        left = max(0, steps_left) * self.step_seconds / self.steps
        if self.validations:
            todo = sum(
                validates(e, self.epochs, self.val_every) for e in range(epochs_done + 1, self.epochs + 1)
            )
            left += todo * self.val_seconds / self.validations
        return left

    def left_text(self, epochs_done: int, step_in_epoch: int) -> str:
        """:meth:`seconds_left` as ``5m12s`` (``?`` before any step was timed)."""
        left = self.seconds_left(epochs_done, step_in_epoch)
        return "?" if left is None else format_duration(left)


def validation_line(
    epoch: int,
    epochs: int,
    row: Mapping[str, float],
    best: tuple[float, int],
    left: str | None = None,
) -> str:
    """One line after a validation: each head's mIoU (GTSDB: and its sign IoU), their mean, the loss
    weights, the best mean so far and the time left, e.g.

    ``epoch 8/72 val mIoU: cityscapes 0.214, gtsdb 0.003 (sign_iou 0.412), vistas 0.120; mean 0.112 |
    loss weights: cityscapes 0.93, gtsdb 1.41, vistas 0.88 | best 0.112 (epoch 8) | 7m05s left``
    """
    heads = [k.removeprefix("miou/") for k in row if k.startswith("miou/") and k != "miou/mean"]
    scores = []
    for head in heads:
        text = f"{head} {_num(row[f'miou/{head}'])}"
        if f"sign_iou/{head}" in row:
            text += f" (sign_iou {_num(row[f'sign_iou/{head}'])})"
        scores.append(text)
    parts = [f"epoch {epoch}/{epochs} val mIoU: {', '.join(scores)}; mean {_num(row.get('miou/mean'))}"]
    weights = [f"{k.removeprefix('weight/')} {v:.2f}" for k, v in row.items() if k.startswith("weight/")]
    if weights:
        parts.append(f"loss weights: {', '.join(weights)}")
    best_score, best_epoch = best
    parts.append(f"best {_num(best_score)} (epoch {best_epoch})" if best_epoch > 0 else "best -")
    if left is not None:
        parts.append(f"{left} left")
    return " | ".join(parts)


def _num(value: float | None) -> str:
    """A score with three decimals; ``-`` where there is none (no pixels of any evaluated class)."""
    return "-" if value is None or math.isnan(value) or math.isinf(value) else f"{value:.3f}"


def resume_line(epoch: int, step: int, per_epoch: int, global_step: int, best: tuple[float, int]) -> str:
    """Where a resumed run picks up (0-based ``epoch``, ``step`` in it) and the best (score, epoch) so far."""
    score, best_epoch = best
    note = f"; best mean mIoU so far {score:.4f} at epoch {best_epoch}" if best_epoch > 0 else ""
    return (
        f"multiseg: resumed from epoch {epoch + 1}, step {step} of {per_epoch} "
        f"({global_step} steps done{note})"
    )
