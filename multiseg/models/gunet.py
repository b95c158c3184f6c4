"""GUNet, the Guided Upsampling Network (Mazzini, BMVC 2018): a reconstruction, no public code exists.

**From the paper** (abstract, and secondary sources: gum_networks.md 1-2): a multi-resolution network
whose branches run one shared-weight trunk on rescaled copies of the input, a fusion module merging
them, a classifier, and the Guided Upsampling Module (GUM) taking the coarse class map to full
resolution with offsets from a guidance module. DRN-D-22 as the trunk is *recalled* from later
comparison tables.

**Proposals** (gum_networks.md 2.3 "GUN-A"; every one is a constructor argument of :class:`GUNet`):
branches at x0.5 and x0.25 of the input (``branch_scales``; the only reading compatible with the
reported 33.3 FPS for a DRN-D-22 trunk), fusion by concat + 1x1 + 3x3 conv to 256 channels
(``fusion``, ``fusion_channels``), guidance from the mid branch's stride-2 layer concatenated with the
upsampled fused features, 3x3 convs 64 and 32 then a zero-initialised conv and ``PixelShuffle(4)``
(``guidance_channels``), bilinear GUM in training and in eval (``gum_train_mode``, ``gum_eval_mode``;
the paper uses nearest at inference). ``trunk_channels`` lets a lighter trunk replace DRN-D-22.
With the defaults: about 16.9 M parameters and 50 GMAC at 512x1024; the coarse map is at stride 32/2 =
1/16 of the input, so GUM upsamples x16, and inputs must be multiples of 32.

Heads: ``decoder`` mode gives each dataset a classifier (1x1 conv 256 -> C) and its own guidance
module; ``last_conv`` mode shares the guidance module (it reads features, not class scores) and keeps
only the 1x1 classifier per dataset. GUM has no parameters. The class path is a single conv in both
modes; they differ only in whether the class-agnostic guidance branch is per dataset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseg.errors import MultisegError
from multiseg.models.gum import GuidanceBranch, GuidedUpsampling
from multiseg.models.layers import conv_bn_act, resize
from multiseg.models.multihead import Architecture, Features
from multiseg.models.registry import register_model

#: DRN-D-22 widths: layers 0-1, 2, 3, 4, 5, 6, 7, 8 (fyu/drn).
DRN_D_22_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convs (no bias, BN); 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        d = dilation
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=d, dilation=d, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=d, dilation=d, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.main(x) + skip)


class DRNTrunk(nn.Module):
    """A DRN-D-22-shaped trunk (output stride 8); returns (stride-2 features, stride-8 features).

    Layers 0-2 are conv-BN-ReLU (7x7, 3x3, 3x3 stride 2), layers 3-6 two BasicBlocks each (strides 2, 2,
    dilations 2, 4), layers 7-8 dilated conv-BN-ReLU; 15,880,752 parameters at the default widths, as
    fyu/drn's ``drn_d_22`` without its classifier.
    """

    def __init__(self, channels: tuple[int, ...] = DRN_D_22_CHANNELS) -> None:
        super().__init__()
        c0, c2, c3, c4, c5, c6, c7, c8 = channels
        self.stem = nn.Sequential(
            *conv_bn_act(3, c0, 7), *conv_bn_act(c0, c0, 3), *conv_bn_act(c0, c2, 3, stride=2)
        )
        self.body = nn.Sequential(
            BasicBlock(c2, c3, stride=2),
            BasicBlock(c3, c3),
            BasicBlock(c3, c4, stride=2),
            BasicBlock(c4, c4),
            BasicBlock(c4, c5, dilation=2),
            BasicBlock(c5, c5, dilation=2),
            BasicBlock(c5, c6, dilation=4),
            BasicBlock(c6, c6, dilation=4),
            *conv_bn_act(c6, c7, 3, dilation=2),
            *conv_bn_act(c7, c8, 3),
        )
        self.tap_channels = c2
        self.out_channels = c8

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tap = self.stem(x)
        return tap, self.body(tap)


class Fusion(nn.Module):
    """Merge mid and (upsampled) low branch features: concat + 1x1 + 3x3, or 1x1 projections summed."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "concat") -> None:
        super().__init__()
        if mode not in ("concat", "sum"):
            raise ValueError(f"fusion {mode!r} is not concat or sum")
        self.mode = mode
        if mode == "concat":
            self.merge = nn.Sequential(
                *conv_bn_act(2 * in_channels, out_channels, 1), *conv_bn_act(out_channels, out_channels, 3)
            )
        else:
            self.project_mid = conv_bn_act(in_channels, out_channels, 1, act=None)
            self.project_low = conv_bn_act(in_channels, out_channels, 1, act=None)

    def forward(self, mid: Tensor, low: Tensor) -> Tensor:
        low = resize(low, (mid.shape[-2], mid.shape[-1]))
        if self.mode == "concat":
            return self.merge(torch.cat([mid, low], 1))
        return F.relu(self.project_mid(mid) + self.project_low(low))


class GUNetEncoder(nn.Module):
    """Shared trunk on both rescaled copies + fusion; ``{"features": fused @ 1/16, "guide": tap @ 1/4}``."""

    def __init__(
        self,
        trunk_channels: tuple[int, ...],
        branch_divisors: tuple[int, int],
        fusion: str,
        fusion_channels: int,
    ) -> None:
        super().__init__()
        self.trunk = DRNTrunk(trunk_channels)
        self.branch_divisors = branch_divisors
        self.fusion = Fusion(self.trunk.out_channels, fusion_channels, fusion)

    def forward(self, x: Tensor) -> Features:
        h, w = x.shape[-2], x.shape[-1]
        d_mid, d_low = self.branch_divisors
        mid = resize(x, (h // d_mid, w // d_mid))
        low = resize(x, (h // d_low, w // d_low))
        guide, mid_feats = self.trunk(mid)
        _, low_feats = self.trunk(low)
        return {"features": self.fusion(mid_feats, low_feats), "guide": guide}


class GUNetGuidance(nn.Module):
    """Guidance module: [guide tap, fused features upsampled to it] -> offset table at input size."""

    def __init__(self, tap_channels: int, feat_channels: int, hidden: tuple[int, ...], shuffle: int) -> None:
        super().__init__()
        self.branch = GuidanceBranch(tap_channels + feat_channels, hidden, 2, shuffle)

    def forward(self, feats: Features) -> Tensor:
        guide = feats["guide"]
        context = resize(feats["features"], (guide.shape[-2], guide.shape[-1]))
        return self.branch(torch.cat([guide, context], 1))


class GUNetClassifier(nn.Module):
    """Per-dataset part in ``last_conv`` mode: 1x1 classifier + GUM with the shared offsets."""

    def __init__(self, in_channels: int, num_classes: int, gum: GuidedUpsampling) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(in_channels, num_classes, 1)
        self.gum = gum

    def forward(self, shared: Features, size: tuple[int, int]) -> Tensor:
        return self.gum(self.classifier(shared["features"]), shared["offsets"])


class GUNetSharedGuidance(nn.Module):
    """Shared decoder in ``last_conv`` mode: computes the offsets once for every head."""

    def __init__(self, guidance: GUNetGuidance) -> None:
        super().__init__()
        self.guidance = guidance

    def forward(self, feats: Features, size: tuple[int, int]) -> Features:
        return {"features": feats["features"], "offsets": self.guidance(feats)}


class GUNetHead(nn.Module):
    """Per-dataset decoder in ``decoder`` mode: classifier, its own guidance module, GUM."""

    def __init__(self, guidance: GUNetGuidance, classifier: GUNetClassifier) -> None:
        super().__init__()
        self.guidance = guidance
        self.classifier = classifier

    def forward(self, feats: Features, size: tuple[int, int]) -> Tensor:
        shared = {"features": feats["features"], "offsets": self.guidance(feats)}
        return self.classifier(shared, size)


@register_model("gunet")
class GUNet(Architecture):
    """GUNet reconstruction ("GUN-A"); see the module docstring for paper facts vs proposals.

    Args:
        trunk_channels: widths of the DRN-D-22-shaped trunk (L0-1, L2, ..., L8).
        branch_scales: input scales of the mid and low branches (x0.5, x0.25).
        fusion: ``"concat"`` (concat, 1x1 and 3x3 conv-BN-ReLU) or ``"sum"`` (1x1 projections added).
        fusion_channels: width of the fused features and the classifier's input (256).
        guidance_channels: hidden widths of the guidance module's 3x3 conv-BN-ReLU layers (64, 32).
        gum_train_mode / gum_eval_mode: GUM sampling kernel in training / eval.
    """

    name = "gunet"

    def __init__(
        self,
        trunk_channels: tuple[int, ...] = DRN_D_22_CHANNELS,
        branch_scales: tuple[float, float] = (0.5, 0.25),
        fusion: str = "concat",
        fusion_channels: int = 256,
        guidance_channels: tuple[int, ...] = (64, 32),
        gum_train_mode: str = "bilinear",
        gum_eval_mode: str = "bilinear",
    ) -> None:
        if len(trunk_channels) != 8:
            raise ValueError("trunk_channels needs 8 widths (L0-1, L2, L3, ..., L8)")
        divisors = tuple(round(1 / s) for s in branch_scales)
        if len(divisors) != 2 or any(
            abs(d * s - 1) > 1e-9 for d, s in zip(divisors, branch_scales, strict=True)
        ):
            raise MultisegError(
                f"gunet: branch_scales must be two values 1/k (e.g. 0.5, 0.25), got {branch_scales}"
            )
        self.trunk_channels = tuple(trunk_channels)
        self.branch_divisors = (divisors[0], divisors[1])
        self.fusion = fusion
        self.fusion_channels = fusion_channels
        self.guidance_channels = tuple(guidance_channels)
        self.gum_train_mode = gum_train_mode
        self.gum_eval_mode = gum_eval_mode
        # Trunk stride 8 on the smallest copy; offsets come from the mid branch's stride-2 tap.
        self.output_stride = 8 * max(self.branch_divisors)
        self.shuffle = 2 * self.branch_divisors[0]

    def build_encoder(self) -> nn.Module:
        return GUNetEncoder(self.trunk_channels, self.branch_divisors, self.fusion, self.fusion_channels)

    def _guidance(self) -> GUNetGuidance:
        return GUNetGuidance(
            self.trunk_channels[1], self.fusion_channels, self.guidance_channels, self.shuffle
        )

    def _gum(self) -> GuidedUpsampling:
        return GuidedUpsampling(self.gum_train_mode, self.gum_eval_mode)

    def build_decoder(self, num_classes: int) -> nn.Module:
        return GUNetHead(self._guidance(), self.build_last_conv(num_classes))

    def build_shared_decoder(self) -> nn.Module:
        return GUNetSharedGuidance(self._guidance())

    def build_last_conv(self, num_classes: int) -> nn.Module:
        return GUNetClassifier(self.fusion_channels, num_classes, self._gum())
