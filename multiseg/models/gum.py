"""The Guided Upsampling Module (GUM, Mazzini BMVC 2018) and the guidance branch that drives it.

GUM upsamples a coarse class map ``U`` (N x C x h x w) to N x C x H x W by sampling it at the positions
plain upsampling would read, displaced by a per-output-pixel offset table (p, q) predicted by a small
guidance branch (gum_networks.md 1.2-1.3):

* source position of output pixel (i, j), centre-aligned: ``x = (j + 0.5) * w / W - 0.5`` (likewise y);
* guided position: ``(x + p, y + q)``, with (p, q) in *coarse-pixel* units of ``U``;
* ``mode="nearest"`` (the paper's GUM) copies the nearest coarse cell, ``mode="bilinear"`` mixes the
  four around it. Nearest gives the offsets no gradient, so train with bilinear.

Implemented with ``F.grid_sample(..., align_corners=False, padding_mode="border")``: with zero offsets
it equals ``F.interpolate(U, (H, W), mode=...)`` (``align_corners=False`` for bilinear), which the tests
check. With K > 1 offset tables ("hypotheses", an iGUM proposal) the K samples are blended by a
per-pixel softmax over K selection logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GUM_MODES = ("bilinear", "nearest")


def identity_grid(height: int, width: int, like: Tensor) -> Tensor:
    """The 1 x H x W x 2 grid (x, y order, [-1, 1]) of output pixel centres, for ``align_corners=False``."""
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) * 2 + 1) / width - 1
    grid_y = ys.view(1, height, 1, 1).expand(1, height, width, 1)
    grid_x = xs.view(1, 1, width, 1).expand(1, height, width, 1)
    return torch.cat([grid_x, grid_y], dim=3)


def guided_upsample(logits: Tensor, offsets: Tensor, mode: str = "bilinear") -> Tensor:
    """Sample ``logits`` (N x C x h x w) at the guided positions; ``offsets`` is N x 2 x H x W (p, q).

    Returns N x C x H x W. ``offsets[:, 0]`` shifts along x (width), ``offsets[:, 1]`` along y, in
    units of one coarse pixel.
    """
    if mode not in GUM_MODES:
        raise ValueError(f"GUM mode {mode!r} is not one of {GUM_MODES}")
    h, w = logits.shape[-2], logits.shape[-1]
    height, width = offsets.shape[-2], offsets.shape[-1]
    offsets = offsets.to(logits.dtype)
    shift = torch.stack([offsets[:, 0] * (2.0 / w), offsets[:, 1] * (2.0 / h)], dim=3)
    grid = identity_grid(height, width, logits) + shift
    return F.grid_sample(logits, grid, mode=mode, padding_mode="border", align_corners=False)


class GuidedUpsampling(nn.Module):
    """GUM with K offset hypotheses (K = 1: the paper's module); no parameters.

    Args:
        train_mode: sampling kernel in training (``"bilinear"``: the offsets need its gradient).
        eval_mode: sampling kernel in eval (``"nearest"`` is the paper's; ``"bilinear"`` matches training).
    """

    def __init__(self, train_mode: str = "bilinear", eval_mode: str = "bilinear") -> None:
        super().__init__()
        for mode in (train_mode, eval_mode):
            if mode not in GUM_MODES:
                raise ValueError(f"GUM mode {mode!r} is not one of {GUM_MODES}")
        self.train_mode = train_mode
        self.eval_mode = eval_mode

    def forward(self, logits: Tensor, offsets: Tensor, selection: Tensor | None = None) -> Tensor:
        """``offsets``: N x 2K x H x W; ``selection``: N x K x H x W logits (needed when K > 1)."""
        mode = self.train_mode if self.training else self.eval_mode
        k = offsets.shape[1] // 2
        if k == 1:
            return guided_upsample(logits, offsets, mode)
        assert selection is not None, "K > 1 offset tables need selection logits"
        weights = torch.softmax(selection, dim=1)
        samples = [
            guided_upsample(logits, offsets[:, 2 * i : 2 * i + 2], mode) * weights[:, i : i + 1]
            for i in range(k)
        ]
        return torch.stack(samples).sum(0)


class GuidanceBranch(nn.Module):
    """Predicts the offset table: 3x3 conv-BN-ReLU layers, a zero-initialised 3x3 conv, PixelShuffle.

    The last conv emits ``out_channels * shuffle**2`` maps at the input's resolution, and
    ``PixelShuffle(shuffle)`` turns them into ``out_channels`` maps at ``shuffle`` times that resolution
    (cheap full-resolution offsets). Zero initialisation makes GUM start as plain upsampling.
    """

    def __init__(self, in_channels: int, hidden: tuple[int, ...], out_channels: int, shuffle: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for h in hidden:
            layers += [
                nn.Conv2d(width, h, 3, padding=1, bias=False),
                nn.BatchNorm2d(h),
                nn.ReLU(inplace=True),
            ]
            width = h
        last = nn.Conv2d(width, out_channels * shuffle * shuffle, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers += [last, nn.PixelShuffle(shuffle)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
