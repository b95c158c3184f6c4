"""ESPNet (Mehta et al., ECCV 2018) with p=2, q=8, written from the paper and the specs.

Encoder (ESPNet-C trunk): CBR 3->16 stride 2; BN-PReLU over [that, image/2] (19 ch); strided ESP
19->64; p ESP(64) modules; BN-PReLU over [ESP out, strided ESP out, image/4] (131 ch); strided ESP
131->128; q ESP(128); BN-PReLU over [strided out, ESP out] (256 ch at stride 8). The image copies come
from repeated 3x3 stride-2 average pooling ("input reinforcement").

Decoder (works in class space, C channels throughout; the *train* variant whose last CBR reads the
19-channel stride-2 map): 1x1 classifier 256->C, BN, 2x2 stride-2 transposed conv; concat with a 1x1
projection of the 131-ch stride-4 map; BN-PReLU, ESP(2C->C, no residual), transposed conv, BN-PReLU;
concat with the 19-ch stride-2 map, CBR 3x3 -> C; 2x2 stride-2 transposed conv. 363,462 parameters at
C=19 (trunk 344,329).

Heads, and why ``last_conv`` needs care here: every decoder layer carries C channels, so there is no
class-agnostic body to share. ``decoder`` mode (the paper's network) keeps one whole class-space
decoder per dataset (19,133 parameters at C=19). ``last_conv`` mode is a re-parameterisation
(models.md 5.4, option b): one shared decoder of fixed width ``shared_width`` (K) in place of C, and per
dataset only the final 2x2 transposed conv K -> C_d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseg.models.layers import conv_bn_act
from multiseg.models.multihead import Architecture, ComposedDecoder, Features
from multiseg.models.registry import register_model

BN_EPS = 1e-3


def bn_prelu(channels: int) -> nn.Sequential:
    """ESPNet's BR block: BN (eps 1e-3) -> per-channel PReLU."""
    return nn.Sequential(nn.BatchNorm2d(channels, eps=BN_EPS), nn.PReLU(channels))


def cbr(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """ESPNet's CBR block: conv (no bias, same padding) -> BN -> PReLU."""
    return conv_bn_act(in_channels, out_channels, kernel, stride=stride, bn_eps=BN_EPS, act="prelu")


def up2(channels_in: int, channels_out: int) -> nn.ConvTranspose2d:
    """2x2 stride-2 transposed conv without bias, ESPNet's upsampling layer."""
    return nn.ConvTranspose2d(channels_in, channels_out, 2, stride=2, bias=False)


class ESPModule(nn.Module):
    """Efficient spatial pyramid: reduce, five parallel dilated 3x3 convs, hierarchical fusion, merge.

    ``reduce``: 1x1 conv to n = out//5 channels (3x3 stride 2 for the strided variant). Branches with
    dilation 1 (out - 4n channels), 2, 4, 8, 16 (n each); the dilated outputs are summed cumulatively
    before concatenation (hierarchical feature fusion); the input is added when ``residual``; BN-PReLU.
    """

    def __init__(
        self, in_channels: int, out_channels: int, residual: bool = True, strided: bool = False
    ) -> None:
        super().__init__()
        if residual and (strided or in_channels != out_channels):
            raise ValueError("a residual ESP module keeps resolution and width")
        n = out_channels // 5
        n1 = out_channels - 4 * n
        self.residual = residual
        self.reduce = (
            nn.Conv2d(in_channels, n, 3, stride=2, padding=1, bias=False)
            if strided
            else nn.Conv2d(in_channels, n, 1, bias=False)
        )
        self.branches = nn.ModuleList(
            nn.Conv2d(n, n1 if d == 1 else n, 3, padding=d, dilation=d, bias=False) for d in (1, 2, 4, 8, 16)
        )
        self.br = bn_prelu(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.reduce(x)
        outs = [branch(reduced) for branch in self.branches]
        fused = [outs[0], outs[1]]
        for out in outs[2:]:
            fused.append(fused[-1] + out)
        merged = torch.cat(fused, 1)
        if self.residual:
            merged = merged + x
        return self.br(merged)


def image_pyramid(x: Tensor, times: int) -> Tensor:
    """The image reduced ``times`` times by 3x3 stride-2 average pooling (input reinforcement)."""
    for _ in range(times):
        x = F.avg_pool2d(x, 3, stride=2, padding=1)
    return x


class ESPNetEncoder(nn.Module):
    """The ESPNet-C trunk; returns ``{"features": b3 (256 @ 1/8), "b2": 131 @ 1/4, "b1": 19 @ 1/2}``."""

    def __init__(self, p: int = 2, q: int = 8) -> None:
        super().__init__()
        self.level1 = cbr(3, 16, 3, stride=2)
        self.b1 = bn_prelu(19)
        self.level2_0 = ESPModule(19, 64, residual=False, strided=True)
        self.level2 = nn.Sequential(*[ESPModule(64, 64) for _ in range(p)])
        self.b2 = bn_prelu(128 + 3)
        self.level3_0 = ESPModule(128 + 3, 128, residual=False, strided=True)
        self.level3 = nn.Sequential(*[ESPModule(128, 128) for _ in range(q)])
        self.b3 = bn_prelu(256)

    def forward(self, x: Tensor) -> Features:
        b1 = self.b1(torch.cat([self.level1(x), image_pyramid(x, 1)], 1))
        down2 = self.level2_0(b1)
        b2 = self.b2(torch.cat([self.level2(down2), down2, image_pyramid(x, 2)], 1))
        down3 = self.level3_0(b2)
        b3 = self.b3(torch.cat([down3, self.level3(down3)], 1))
        return {"features": b3, "b2": b2, "b1": b1}


class ESPNetDecoderBody(nn.Module):
    """The class-space decoder up to stride 2, ``width`` channels (C in the paper, K when shared)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.Conv2d(256, width, 1, bias=False), nn.BatchNorm2d(width, eps=BN_EPS), up2(width, width)
        )
        self.project_b2 = nn.Conv2d(128 + 3, width, 1, bias=False)
        self.merge4 = nn.Sequential(
            bn_prelu(2 * width),
            ESPModule(2 * width, width, residual=False),
            up2(width, width),
            *bn_prelu(width),
        )
        self.merge2 = cbr(19 + width, width, 3)

    def forward(self, feats: Features, size: tuple[int, int]) -> Features:
        up = self.classifier(feats["features"])
        x = self.merge4(torch.cat([self.project_b2(feats["b2"]), up], 1))
        return {"x": self.merge2(torch.cat([x, feats["b1"]], 1))}


class FinalUp(nn.Module):
    """The last 2x2 stride-2 transposed conv (no bias), stride 2 -> 1."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.deconv = up2(in_channels, num_classes)

    def forward(self, shared: Features, size: tuple[int, int]) -> Tensor:
        return self.deconv(shared["x"])


@register_model("espnet")
class ESPNet(Architecture):
    """ESPNet (p, q) as published (train variant); ``shared_width`` is a proposal for ``last_conv`` mode.

    Args:
        p: ESP modules at stride 4 (2).
        q: ESP modules at stride 8 (8).
        shared_width: width K of the shared decoder in ``last_conv`` mode (not in the paper, whose decoder
            is per dataset; 19 = the Cityscapes class count the published decoder was sized for).
    """

    name = "espnet"
    output_stride = 8
    cpu_bf16_channels_last = False  # dilated convs with 25 (ESPNet) / 40 (EDANet) channels

    def __init__(self, p: int = 2, q: int = 8, shared_width: int = 19) -> None:
        self.p = p
        self.q = q
        self.shared_width = shared_width

    def build_encoder(self) -> nn.Module:
        return ESPNetEncoder(self.p, self.q)

    def build_decoder(self, num_classes: int) -> nn.Module:
        return ComposedDecoder(ESPNetDecoderBody(num_classes), FinalUp(num_classes, num_classes))

    def build_shared_decoder(self) -> nn.Module:
        return ESPNetDecoderBody(self.shared_width)

    def build_last_conv(self, num_classes: int) -> nn.Module:
        return FinalUp(self.shared_width, num_classes)
