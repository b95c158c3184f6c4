"""Online per-pixel targets for box-only datasets (GTSDB), made from boxes and the Cityscapes head.

The paper's rule (policy ``merge``): for a GTSDB image, the Cityscapes head's own prediction (taken
without gradient) says where "traffic sign" is; inside each box those pixels get the box's class.
Around it:

* in-box pixels the Cityscapes head does not call a sign become background (or ignore, an option);
* pixels outside every box are background, except those the Cityscapes head calls a sign: GTSDB leaves
  some signs unannotated, so those are ignored rather than taught as background;
* early in training the Cityscapes head finds no signs, so a box whose predicted sign coverage is below
  ``min_coverage`` falls back to the data pipeline's rasterised target (policy ``shape`` or ``box``)
  inside that box;
* overlapping boxes: smaller boxes are pasted last, so a small sign in front of a large one keeps its
  class (as Simple Does It does).

Policies ``box`` and ``shape`` use the data pipeline's raster unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

BoxPolicy = Literal["merge", "box", "shape"]


@dataclass(frozen=True)
class BoxTargetOptions:
    """How GTSDB targets are made; ``background`` is the GTSDB head's background class index."""

    policy: BoxPolicy = "merge"
    inbox_nonsign: Literal["background", "ignore"] = "background"
    min_coverage: float = 0.2
    background: int = 43
    ignore_index: int = 255


def _box_slices(box: torch.Tensor, height: int, width: int) -> tuple[slice, slice] | None:
    """Integer row/column slices of a half-open (x1, y1, x2, y2) box, clipped to the image; None if empty."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = max(x1, 0), min(x2, width)
    y1, y2 = max(y1, 0), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        return None
    return slice(y1, y2), slice(x1, x2)


def merge_sample(
    sign_mask: torch.Tensor,
    boxes: torch.Tensor,
    classes: torch.Tensor,
    fallback: torch.Tensor,
    opts: BoxTargetOptions,
) -> tuple[torch.Tensor, int]:
    """Target map (H, W) int64 for one sample, and how many boxes fell back to ``fallback``.

    ``sign_mask``: bool (H, W), where the Cityscapes head predicts "traffic sign";
    ``boxes``: (K, 4) half-open pixel boxes; ``classes``: (K,) class ids; ``fallback``: (H, W) the data
    pipeline's raster of the same boxes (policy ``shape`` or ``box``).
    """
    if opts.policy != "merge":
        return fallback.to(torch.int64), 0
    height, width = sign_mask.shape
    target = torch.full((height, width), opts.background, dtype=torch.int64, device=sign_mask.device)
    target[sign_mask] = opts.ignore_index
    inbox_other = opts.background if opts.inbox_nonsign == "background" else opts.ignore_index
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if len(boxes) else boxes.new_zeros(0)
    n_fallback = 0
    for k in torch.argsort(areas, descending=True).tolist():
        region = _box_slices(boxes[k], height, width)
        if region is None:
            continue
        inside = sign_mask[region]
        if inside.float().mean().item() >= opts.min_coverage:
            patch = torch.full_like(target[region], inbox_other)
            patch[inside] = int(classes[k])
            target[region] = patch
        else:
            target[region] = fallback[region].to(torch.int64)
            n_fallback += 1
    return target, n_fallback


def merge_batch(
    sign_masks: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    classes: Sequence[torch.Tensor],
    fallback: torch.Tensor,
    opts: BoxTargetOptions,
) -> tuple[torch.Tensor, int, int]:
    """Targets (N, H, W) for a batch of box-only samples, with the counts of boxes merged / fallen back."""
    out, merged, fell_back = [], 0, 0
    for i in range(sign_masks.shape[0]):
        target, n_fb = merge_sample(sign_masks[i], boxes[i], classes[i], fallback[i], opts)
        out.append(target)
        fell_back += n_fb
        merged += len(boxes[i]) - n_fb if opts.policy == "merge" else 0
    return torch.stack(out), merged, fell_back
