"""Building blocks shared by several architectures (ENet, ERFNet, EDANet, iGUM-Net)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseg.models.fold import bn_scale_shift, fold_conv_affine


def activation(kind: str, channels: int) -> nn.Module:
    """``"relu"`` or ``"prelu"`` (one slope per channel, as in ENet and ESPNet)."""
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "prelu":
        return nn.PReLU(channels)
    raise ValueError(f"activation {kind!r} is not relu or prelu")


class ConcatDownsampler(nn.Module):
    """Halve the resolution: ``[3x3 stride-2 conv (out - in filters) || 2x2 max-pool]`` -> BN -> act.

    The block of ENet's initial stage, ERFNet's downsampler and EDANet's downsampling block. BN follows
    the concatenation, so folding it puts the conv channels' share into the conv and keeps a per-channel
    affine (a tiny BN) for the pooled channels.
    """

    def __init__(self, in_channels: int, out_channels: int, bn_eps: float = 1e-3, act: str = "relu") -> None:
        super().__init__()
        if out_channels <= in_channels:
            raise ValueError("ConcatDownsampler needs out_channels > in_channels")
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=True)
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.pool_affine: ChannelAffine | None = None
        self.act = activation(act, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.max_pool2d(x, 2, 2)
        if self.bn is not None:
            return self.act(self.bn(torch.cat([self.conv(x), pooled], 1)))
        assert self.pool_affine is not None
        return self.act(torch.cat([self.conv(x), self.pool_affine(pooled)], 1))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the conv channels' BN into the conv; keep a per-channel affine for the pooled channels."""
        if self.bn is None:
            return
        n_conv = self.conv.out_channels
        scale, shift = bn_scale_shift(self.bn)
        fold_conv_affine(self.conv, scale[:n_conv], shift[:n_conv])
        self.pool_affine = ChannelAffine(scale[n_conv:], shift[n_conv:])
        self.bn = None


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel: what an eval-mode BatchNorm is once its statistics are folded.

    (An ``nn.BatchNorm2d`` with ``eps=0`` would do the same, but newer torch releases reject ``eps=0``.)
    """

    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("shift", shift.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel: int = 3,
    stride: int = 1,
    dilation: int = 1,
    bn_eps: float = 1e-5,
    act: str | None = "relu",
) -> nn.Sequential:
    """``k x k`` conv (no bias, "same" padding) -> BN -> activation; the BN folds into the conv."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=dilation * (kernel // 2),
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=bn_eps),
    ]
    if act is not None:
        layers.append(activation(act, out_channels))
    return nn.Sequential(*layers)


class NonBottleneck1D(nn.Module):
    """ERFNet's Non-bottleneck-1D residual block (Romera et al. 2018), written from the paper.

    ``3x1 conv, ReLU, 1x3 conv, BN, ReLU, 3x1 conv (dilation d), ReLU, 1x3 conv (dilation d), BN,
    dropout``, added to the input, then ReLU. All convs have a bias; BN eps 1e-3 as in ERFNet.
    ``lite=True`` keeps only the dilated factorised pair (the cheaper "modified" block that
    iGUM-Net may use; a proposal, see :mod:`multiseg.models.igumnet`).
    """

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0, lite: bool = False) -> None:
        super().__init__()
        d = dilation
        layers: list[nn.Module] = []
        if not lite:
            layers += [
                nn.Conv2d(channels, channels, (3, 1), padding=(1, 0)),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, (1, 3), padding=(0, 1)),
                nn.BatchNorm2d(channels, eps=1e-3),
                nn.ReLU(inplace=True),
            ]
        layers += [
            nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1)),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d)),
            nn.BatchNorm2d(channels, eps=1e-3),
            nn.Dropout2d(dropout),
        ]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.main(x) + x)


def resize(x: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize ``x`` to ``size`` (``align_corners=False`` for bilinear: the centre-aligned convention)."""
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)
