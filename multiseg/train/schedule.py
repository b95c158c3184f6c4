"""Poly learning-rate decay, stepped once per epoch, in the usual and in the paper's literal form."""

from __future__ import annotations

from typing import Literal

PolyForm = Literal["standard", "paper"]


def poly_factor(epoch: int, total_epochs: int, power: float = 0.9, form: PolyForm = "standard") -> float:
    """LR multiplier at ``epoch`` (0-based) of ``total_epochs``.

    ``standard``: ``(1 - e/T) ** power`` (ERFNet's and most segmentation code's poly rule).
    ``paper``: ``1 - (e/T) ** power``, the formula as printed in the paper. Both start at 1 and reach 0 at
    ``e = T``; the literal form keeps the LR higher for longer (at e/T = 0.5: 0.46 vs 0.54).
    """
    if total_epochs <= 0:
        raise ValueError("total_epochs must be positive")
    frac = min(max(epoch / total_epochs, 0.0), 1.0)
    if form == "standard":
        return (1.0 - frac) ** power
    if form == "paper":
        return 1.0 - frac**power
    raise ValueError(f"unknown poly form {form!r}")
