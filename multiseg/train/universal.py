"""NLL+: the partial-label loss of a universal head (Bevandić, Oršić, Šarić, Grubišić, Šegvić).

A pixel a dataset labels with class ``c`` is trained on the summed probability of the universal
classes ``c`` covers: ``-log sum_{u in U(c)} softmax(z)_u = logsumexp(z) - logsumexp(z[U(c)])``. The
two logsumexps keep it finite however small the union's probability is. It teaches exactly what the
dataset knows: how the mass splits *inside* a union (which GTSDB sign a Cityscapes "traffic sign"
is, which Vistas marking a Cityscapes "road" pixel is) is left to the datasets that tell them apart.

With one universal class per dataset class this is plain cross-entropy; a union of every class
costs nothing. Class weights and ``ignore_index`` act as in :func:`torch.nn.functional.cross_entropy`
(the weighted mean over non-ignored pixels).
"""

from __future__ import annotations

import torch
from torch import Tensor

from multiseg.labels import IGNORE_INDEX


def nll_plus(
    logits: Tensor,
    target: Tensor,
    membership: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor | None:
    """Mean NLL+ of ``(N, U, H, W)`` universal logits against ``(N, H, W)`` dataset-class targets.

    ``membership``: the dataset's ``(C, U)`` 0/1 matrix (row c: the universal classes class c
    covers). Returns ``None`` when every pixel is ignored.
    """
    valid = target != ignore_index
    if not bool(valid.any()):
        return None
    logits = logits.float()
    safe = torch.where(valid, target, torch.zeros_like(target))
    covered = membership.bool()[safe].permute(0, 3, 1, 2)  # (N, U, H, W): the target's union
    union = logits.masked_fill(~covered, float("-inf")).logsumexp(dim=1)
    per_pixel = logits.logsumexp(dim=1) - union
    w = valid.to(per_pixel.dtype)
    if weight is not None:
        w = w * weight.to(per_pixel)[safe]
    return (per_pixel * w).sum() / w.sum()
