"""Per-head loss weighting: learned homoscedastic-uncertainty weights (Kendall et al., CVPR 2018) or fixed.

The learned form trains one log-variance ``s_i`` per head and combines cross-entropy losses as
``sum_i exp(-s_i) * L_i + 0.5 * s_i`` (the classification term of the paper's Eq. 10 with
``s = log sigma^2``). At the optimum ``exp(-s_i) = 1 / (2 L_i)``: each head is normalised to the same loss
scale. Two rules keep it well behaved (specs/peers.md §3.3): a head with no sample in the batch adds
nothing, not even its ``0.5 * s_i`` (that term alone would push ``s_i`` down and inflate the weight),
and ``s_i`` is clamped so an easy head cannot take an unbounded weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class UncertaintyWeighting(nn.Module):
    """Learned loss weights: one log-variance parameter per head, clamped to ``[clamp_min, clamp_max]``."""

    def __init__(
        self, heads: Sequence[str], init: float = 0.0, clamp_min: float = -4.0, clamp_max: float = 6.0
    ) -> None:
        super().__init__()
        self.heads = list(heads)
        self.clamp_min, self.clamp_max = clamp_min, clamp_max
        self.log_vars = nn.ParameterDict({h: nn.Parameter(torch.tensor(float(init))) for h in self.heads})

    def _s(self, head: str) -> torch.Tensor:
        return self.log_vars[head].clamp(self.clamp_min, self.clamp_max)

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted total over the heads present in ``losses`` (absent heads contribute nothing)."""
        terms = [torch.exp(-self._s(h)) * loss + 0.5 * self._s(h) for h, loss in losses.items()]
        if not terms:
            raise ValueError("no head has a loss in this batch")
        return torch.stack(terms).sum()

    def weights(self) -> dict[str, float]:
        """The current effective weight ``exp(-s_i)`` of every head, for logging."""
        return {h: float(torch.exp(-self._s(h).detach())) for h in self.heads}


class FixedWeighting(nn.Module):
    """Constant per-head weights (default 1): ``sum_i w_i * L_i`` over the heads present."""

    def __init__(self, heads: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.heads = list(heads)
        weights = dict(weights or {})
        unknown = set(weights) - set(self.heads)
        if unknown:
            raise ValueError(f"loss weights given for unknown heads {sorted(unknown)}")
        self._w = {h: float(weights.get(h, 1.0)) for h in self.heads}

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not losses:
            raise ValueError("no head has a loss in this batch")
        return torch.stack([self._w[h] * loss for h, loss in losses.items()]).sum()

    def weights(self) -> dict[str, float]:
        return dict(self._w)
