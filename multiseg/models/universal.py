"""The universal head's read-out: from universal logits to each dataset's classes.

In ``head_mode="universal"`` one decoder emits logits over the universal taxonomy
(:mod:`multiseg.data.taxonomy`). A dataset class covers a set of universal classes, so its
probability is the sum of theirs; the per-dataset output is the log of that sum. Its argmax is the
dataset's prediction (summed probabilities, then argmax), its softmax the probabilities renormalised
over the dataset's classes, so evaluation, TTA, prediction and ONNX export treat it like any
head's logits. The sum is a 1x1 convolution with the 0/1 membership matrix: exact, and one ONNX
``Conv``.

Training does not use this read-out: the NLL+ loss (:mod:`multiseg.train.universal`) works on the
universal logits with logsumexp, which stays finite where a sum of probabilities underflows.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseg.data.taxonomy import Taxonomy
from multiseg.errors import MultisegError

#: The name under which a universal model returns (and exports) its raw universal logits.
UNIVERSAL = "universal"
#: Floor of a summed probability before its log (fp32's smallest normal is about 1.2e-38).
_TINY = 1e-30


def union_probabilities(probs: Tensor, membership: Tensor) -> Tensor:
    """``(N, U, H, W)`` universal probabilities -> ``(N, C, H, W)`` sums over each class's set.

    ``membership`` is the ``(C, U)`` 0/1 matrix of :meth:`Taxonomy.membership`.
    """
    return F.conv2d(probs, membership[:, :, None, None].to(probs.dtype))


def check_heads(taxonomy: Taxonomy, heads: Mapping[str, int]) -> None:
    """The taxonomy must have exactly the model's heads, with the same class counts."""
    if set(taxonomy.unions) != set(heads):
        raise MultisegError(
            f"taxonomy: its datasets {sorted(taxonomy.unions)} are not the model's heads {sorted(heads)}"
        )
    for head, count in heads.items():
        if len(taxonomy.unions[head]) != count:
            raise MultisegError(
                f"taxonomy: {head!r} has {len(taxonomy.unions[head])} classes, the head {count}"
            )
    if UNIVERSAL in heads:
        raise MultisegError(f"heads: {UNIVERSAL!r} is reserved for the universal logits")


class UniversalReadout(nn.Module):
    """Universal logits -> one dataset head's log summed probabilities (see the module docstring)."""

    def __init__(self, taxonomy: Taxonomy, heads: Mapping[str, int]) -> None:
        super().__init__()
        check_heads(taxonomy, heads)
        self.taxonomy = taxonomy
        for head in heads:
            # Rebuilt from the taxonomy (kept in the model's config), so not part of the state dict.
            member = torch.from_numpy(taxonomy.membership(head))
            self.register_buffer(f"member_{head}", member, persistent=False)

    def membership(self, head: str) -> Tensor:
        return getattr(self, f"member_{head}")

    def forward(self, logits: Tensor, head: str) -> Tensor:
        with torch.autocast(logits.device.type, enabled=False):
            probs = torch.softmax(logits.float(), dim=1)
            return torch.log(union_probabilities(probs, self.membership(head)).clamp_min(_TINY))
