"""The universal head's read-out: from universal logits to each dataset's classes.

In ``head_mode="universal"`` one decoder emits logits over the universal taxonomy
(:mod:`multiseg.data.taxonomy`). A dataset class covers a set of universal classes, so its
probability is the sum of theirs; the per-dataset output is the log of that sum. Its argmax is the
dataset's prediction (summed probabilities, then argmax), its softmax the probabilities renormalised
over the dataset's classes, so evaluation, TTA, prediction and ONNX export treat it like any
head's logits. The sum is exact: a 1x1 convolution with the 0/1 membership matrix in principle
(:func:`union_probabilities`), gathers and a few channel sums in :class:`UniversalReadout`.

Training does not use this read-out: the NLL+ loss (:mod:`multiseg.train.universal`) works on the
universal logits with logsumexp, which stays finite where a sum of probabilities underflows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    """Universal logits -> dataset heads' log summed probabilities (see the module docstring).

    The sums are gathers, not the dense 1x1 convolution of :func:`union_probabilities` (same
    result): a class covering one universal class is that channel, a class covering several is the
    sum of theirs, so a read-out costs O(universal classes) per pixel rather than O(classes x
    universal classes), and exports as ONNX Gather, ReduceSum and Concat. The softmax is shared by
    every head read out of the same logits (:meth:`read_out`).
    """

    def __init__(self, taxonomy: Taxonomy, heads: Mapping[str, int]) -> None:
        super().__init__()
        check_heads(taxonomy, heads)
        self.taxonomy = taxonomy
        self.groups: dict[str, int] = {}
        # Rebuilt from the taxonomy (kept in the model's config), so none is part of the state dict.
        for head in heads:
            member = torch.from_numpy(taxonomy.membership(head))
            self.register_buffer(f"member_{head}", member, persistent=False)
            sets = taxonomy.unions[head]
            singles = [c for c, members in enumerate(sets) if len(members) == 1]
            groups = [c for c, members in enumerate(sets) if len(members) > 1]
            order = torch.empty(len(sets), dtype=torch.long)
            order[torch.tensor(singles + groups, dtype=torch.long)] = torch.arange(len(sets))
            source = torch.tensor([sets[c][0] for c in singles], dtype=torch.long)
            self.register_buffer(f"single_{head}", source, persistent=False)
            self.register_buffer(f"order_{head}", order, persistent=False)
            for k, c in enumerate(groups):
                members = torch.tensor(sets[c], dtype=torch.long)
                self.register_buffer(f"group_{head}_{k}", members, persistent=False)
            self.groups[head] = len(groups)

    def membership(self, head: str) -> Tensor:
        """The ``(C, U)`` 0/1 matrix of ``head`` (what the NLL+ loss indexes)."""
        return getattr(self, f"member_{head}")

    def probabilities(self, logits: Tensor) -> Tensor:
        """Universal softmax, in fp32 whatever the autocast."""
        with torch.autocast(logits.device.type, enabled=False):
            return torch.softmax(logits.float(), dim=1)

    def sums(self, probs: Tensor, head: str) -> Tensor:
        """``(N, C_head, H, W)``: each class's summed universal probability."""
        parts = [probs.index_select(1, getattr(self, f"single_{head}"))]
        for k in range(self.groups[head]):
            parts.append(probs.index_select(1, getattr(self, f"group_{head}_{k}")).sum(1, keepdim=True))
        return torch.cat(parts, dim=1).index_select(1, getattr(self, f"order_{head}"))

    def read_out(self, logits: Tensor, heads: Sequence[str]) -> dict[str, Tensor]:
        """Log summed probabilities of several heads from one softmax."""
        probs = self.probabilities(logits)
        return {h: torch.log(self.sums(probs, h).clamp_min(_TINY)) for h in heads}

    def forward(self, logits: Tensor, head: str) -> Tensor:
        return self.read_out(logits, [head])[head]
