"""Bilinear upsampling of logits followed by argmax, in strips of rows so big frames fit in memory.

The official protocols compare predictions at the label's own resolution; upsampling 65-class logits
to a 4000x3000 Vistas frame at once would take 3 GB. :func:`upsample_argmax` gives the same labels as
``F.interpolate(logits, size, mode="bilinear", align_corners=False).argmax(1)`` while holding only
``strip`` output rows at a time: rows are blended by hand (torch's source-index rule), and the width is
interpolated by ``F.interpolate`` at unchanged height, which is the identity along rows.
:func:`upsampled_strips` gives the upsampled scores themselves, strip by strip (test-time augmentation
averages several views' softmax there).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F


def _source_rows(out_size: int, in_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For each output row: lower and upper source row and the upper row's weight (align_corners=False)."""
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=in_size - 1)
    hi = (lo + 1).clamp(max=in_size - 1)
    return lo, hi, (src - lo.float()).clamp(0, 1)


@torch.no_grad()
def upsampled_strips(
    logits: torch.Tensor, size: tuple[int, int], strip: int = 128
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``C x h x w`` scores bilinearly upsampled to ``size = (H, W)``, ``strip`` rows at a time:
    ``(r0, r1, rows)`` with ``rows`` the ``1 x C x (r1 - r0) x W`` output rows ``r0:r1`` (channels last)."""
    c, h, w = logits.shape
    height, width = size
    # Channels last: the width interpolation and the argmax over classes then read contiguous memory
    # (2-3x faster on CPU; the same numbers).
    x = logits[None].contiguous(memory_format=torch.channels_last)
    if (h, w) == (height, width):
        yield 0, height, x
        return
    lo, hi, frac = _source_rows(height, h, logits.device)
    for r0 in range(0, height, strip):
        r1 = min(r0 + strip, height)
        f = frac[r0:r1].view(1, 1, -1, 1).to(logits.dtype)
        rows = (x[:, :, lo[r0:r1]] * (1 - f) + x[:, :, hi[r0:r1]] * f).contiguous(
            memory_format=torch.channels_last
        )
        if w != width:
            rows = F.interpolate(rows, size=(r1 - r0, width), mode="bilinear", align_corners=False)
        yield r0, r1, rows


@torch.no_grad()
def upsample_argmax(logits: torch.Tensor, size: tuple[int, int], strip: int = 128) -> torch.Tensor:
    """``C x h x w`` (or ``1 x C x h x w``) logits -> ``H x W`` int64 class map at ``size = (H, W)``."""
    if logits.dim() == 4:
        logits = logits[0]
    if tuple(logits.shape[1:]) == tuple(size):
        return logits.argmax(0)
    out = torch.empty(size, dtype=torch.int64, device=logits.device)
    for r0, r1, rows in upsampled_strips(logits, size, strip):
        out[r0:r1] = rows.argmax(1)[0]
    return out
