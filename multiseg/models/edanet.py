"""EDANet (Lo, Hang, Chan, Lin, MMAsia 2019), written from the paper's layer tables and the specs.

Encoder: downsampling 3->15 and 15->60 (``[3x3 stride-2 conv || 2x2 max-pool]``, BN, ReLU), five EDA
modules (growth 40, dilations 1,1,1,2,2) to 260 ch, downsampling 260->130 (conv only, more input than
output channels), eight EDA modules (dilations 2,2,4,4,8,8,16,16) to 450 ch at stride 8. Decoder: 1x1
conv 450->C and bilinear x8. 689,485 parameters at C=19 (encoder 680,916).

An EDA module is ``1x1 conv -> BN -> ReLU -> 3x1, 1x3 -> BN -> ReLU -> dilated 3x1, 1x3 -> BN -> ReLU ->
Dropout2d``, its k new channels concatenated with its input (dense connectivity, no residual sum).

Heads: the decoder *is* one conv, so ``decoder`` and ``last_conv`` mode build the same network
(451*C parameters per dataset, no shared decoder parameters). The paper's inference-only extra x2
upsampling to 2048x1024 is left out: every multiseg head returns logits at input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseg.models.layers import ConcatDownsampler
from multiseg.models.multihead import Architecture, Features
from multiseg.models.registry import register_model

BN_EPS = 1e-5  # the re-implementation the authors link to keeps PyTorch's default


class EDAModule(nn.Module):
    """One dense EDA module: ``in`` -> ``in + growth`` channels (new features first, then the input)."""

    def __init__(self, in_channels: int, dilation: int, growth: int = 40, dropout: float = 0.02) -> None:
        super().__init__()
        k, d = growth, dilation
        self.growth = growth
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, k, 1),
            nn.BatchNorm2d(k, eps=BN_EPS),
            nn.ReLU(inplace=True),
            nn.Conv2d(k, k, (3, 1), padding=(1, 0)),
            nn.Conv2d(k, k, (1, 3), padding=(0, 1)),
            nn.BatchNorm2d(k, eps=BN_EPS),
            nn.ReLU(inplace=True),
            nn.Conv2d(k, k, (3, 1), padding=(d, 0), dilation=(d, 1)),
            nn.Conv2d(k, k, (1, 3), padding=(0, d), dilation=(1, d)),
            nn.BatchNorm2d(k, eps=BN_EPS),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.main(x), x], 1)


class EDANetEncoder(nn.Module):
    """Everything up to EDA 2-8; returns ``{"features": 450 ch @ 1/8}``."""

    def __init__(
        self,
        growth: int = 40,
        dropout: float = 0.02,
        dilations1: tuple[int, ...] = (1, 1, 1, 2, 2),
        dilations2: tuple[int, ...] = (2, 2, 4, 4, 8, 8, 16, 16),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConcatDownsampler(3, 15, BN_EPS), ConcatDownsampler(15, 60, BN_EPS)]
        width = 60
        for d in dilations1:
            layers.append(EDAModule(width, d, growth, dropout))
            width += growth
        reduced = width // 2
        layers.append(
            nn.Sequential(
                nn.Conv2d(width, reduced, 3, stride=2, padding=1),
                nn.BatchNorm2d(reduced, eps=BN_EPS),
                nn.ReLU(inplace=True),
            )
        )
        width = reduced
        for d in dilations2:
            layers.append(EDAModule(width, d, growth, dropout))
            width += growth
        self.out_channels = width
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Features:
        if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return {"features": self.layers(x)}
        return {"features": self._dense_in_one_buffer(x)}

    def _dense_in_one_buffer(self, x: Tensor) -> Tensor:
        """Inference without the growing concatenations: each run of EDA modules writes its new
        channels in front of its input inside one buffer of the run's final width.

        Module ``i``'s input is the buffer's channel suffix ``[start_i:]`` (new features come first),
        so nothing is copied but the run's input once; equal to ``self.layers(x)``. Only without
        autograd: the writes would modify tensors saved for backward.
        """
        layers = list(self.layers)
        i = 0
        while i < len(layers):
            run = []
            while i + len(run) < len(layers) and isinstance(layers[i + len(run)], EDAModule):
                run.append(layers[i + len(run)])
            if not run:
                x = layers[i](x)
                i += 1
                continue
            growth = sum(m.growth for m in run)
            n, c, h, w = x.shape
            buffer = x.new_empty(n, c + growth, h, w)
            start = growth
            buffer[:, start:] = x
            for module in run:
                buffer[:, start - module.growth : start] = module.main(buffer[:, start:])
                start -= module.growth
            x = buffer
            i += len(run)
        return x


class ProjectAndUpsample(nn.Module):
    """1x1 conv (bias) to C classes at stride 8, then bilinear upsampling to the input size."""

    def __init__(self, in_channels: int, num_classes: int, align_corners: bool = False) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, num_classes, 1)
        self.align_corners = align_corners

    def forward(self, feats: Features, size: tuple[int, int]) -> Tensor:
        logits = self.project(feats["features"])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)


class _NoSharedDecoder(nn.Module):
    """The shared decoder of a network whose decoder is only the class-emitting conv: a pass-through."""

    def forward(self, feats: Features, size: tuple[int, int]) -> Features:
        return feats


@register_model("edanet")
class EDANet(Architecture):
    """EDANet as published; ``align_corners`` is the one choice the paper leaves open.

    Args:
        growth: growth rate k of the EDA modules (40).
        dropout: Dropout2d rate in each EDA module (0.02, the re-implementation's value).
        align_corners: of the final bilinear x8 (the re-implementation uses True; multiseg's other
            networks and GUM use the centre-aligned convention, False, which is the default here).
    """

    name = "edanet"
    output_stride = 8
    cpu_bf16_channels_last = False  # dilated convs with 25 (ESPNet) / 40 (EDANet) channels
    inference_channels_last = False  # 0.99x of the reference eager time vs 0.87x NCHW (issue 22's table)

    def __init__(self, growth: int = 40, dropout: float = 0.02, align_corners: bool = False) -> None:
        self.growth = growth
        self.dropout = dropout
        self.align_corners = align_corners

    def build_encoder(self) -> nn.Module:
        return EDANetEncoder(self.growth, self.dropout)

    def _encoder_channels(self) -> int:
        return (60 + 5 * self.growth) // 2 + 8 * self.growth

    def build_decoder(self, num_classes: int) -> nn.Module:
        return self.build_last_conv(num_classes)

    def build_shared_decoder(self) -> nn.Module:
        return _NoSharedDecoder()

    def build_last_conv(self, num_classes: int) -> nn.Module:
        return ProjectAndUpsample(self._encoder_channels(), num_classes, self.align_corners)
