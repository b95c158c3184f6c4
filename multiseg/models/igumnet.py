"""iGUM-Net (Spatial Sampling Network, Mazzini & Schettini, CVPRW 2019): a reconstruction, no public code.

**From the papers**: the SSN abstract says an *improved* GUM (iGUM) can replace the decoder "in toto";
the multi-dataset paper multiseg implements describes iGUM-Net as encoder-only, with an ERFNet-inspired
encoder with early downsampling and a modified Non-Bottleneck-1D module (gum_networks.md 3.1-3.2).

**Proposals** (gum_networks.md 3.3-3.4; every one is a constructor argument of :class:`IGUMNet`):

* encoder = ERFNet's encoder (downsamplers 3->16->64, 5 NB1D(64), downsampler 64->128, 8 NB1D(128) with
  dilations 2,4,8,16 x2); ``lite_blocks=True`` swaps in the cheaper "modified" NB1D that keeps only the
  dilated factorised pair (the paper's modification is unknown);
* a 1x1 classifier 128->C at stride 8;
* iGUM: guidance from the stride-4 encoder tap (after the 64-channel blocks) concatenated with the
  classifier logits (``guidance_input="logits"``) or the 128-ch features (``"features"``) upsampled x2,
  two 3x3 conv-BN-ReLU (``guidance_channels``), a zero-initialised 3x3 conv and ``PixelShuffle(4)``
  giving full-resolution offsets; ``hypotheses`` (K) offset tables blended by a per-pixel softmax
  (K = 1 is plain GUM); bilinear sampling in training, ``gum_eval_mode`` at inference.

With the defaults: 1,876,495 parameters for encoder + classifier and 42,496 for the iGUM head at C=19.

Heads: ``decoder`` mode gives each dataset its classifier and its own iGUM guidance, which by default
reads that dataset's logits. ``last_conv`` mode shares the guidance, which must then read features
(``guidance_input="features"``, the default in that mode), and keeps only the 1x1 classifier (129*C
parameters) per dataset.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from multiseg.errors import MultisegError
from multiseg.models.erfnet import ERFNetEncoder
from multiseg.models.gum import GuidanceBranch, GuidedUpsampling
from multiseg.models.layers import resize
from multiseg.models.multihead import Architecture, Features
from multiseg.models.registry import register_model

GUIDANCE_INPUTS = ("logits", "features")


class IGUMGuidance(nn.Module):
    """Offsets (N x 2K x H x W) and, for K > 1, selection logits (N x K x H x W) from the encoder tap."""

    def __init__(self, context_channels: int, hidden: tuple[int, ...], hypotheses: int) -> None:
        super().__init__()
        self.hypotheses = hypotheses
        out = 2 * hypotheses + (hypotheses if hypotheses > 1 else 0)
        self.branch = GuidanceBranch(64 + context_channels, hidden, out, shuffle=4)

    def forward(self, tap: Tensor, context: Tensor) -> tuple[Tensor, Tensor | None]:
        context = resize(context, (tap.shape[-2], tap.shape[-1]))
        out = self.branch(torch.cat([tap, context], 1))
        k = self.hypotheses
        if k == 1:
            return out, None
        return out[:, : 2 * k], out[:, 2 * k :]


class IGUMClassifier(nn.Module):
    """1x1 classifier at stride 8, then iGUM with offsets given by the shared decoder."""

    def __init__(self, num_classes: int, gum: GuidedUpsampling) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(128, num_classes, 1)
        self.gum = gum

    def forward(self, shared: Features, size: tuple[int, int]) -> Tensor:
        selection = shared.get("selection")
        return self.gum(self.classifier(shared["features"]), shared["offsets"], selection)


class IGUMHead(nn.Module):
    """Per-dataset decoder in ``decoder`` mode: classifier, its own guidance (logits or features), iGUM."""

    def __init__(
        self, num_classes: int, guidance: IGUMGuidance, gum: GuidedUpsampling, reads_logits: bool
    ) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(128, num_classes, 1)
        self.guidance = guidance
        self.gum = gum
        self.reads_logits = reads_logits

    def forward(self, feats: Features, size: tuple[int, int]) -> Tensor:
        logits = self.classifier(feats["features"])
        context = logits if self.reads_logits else feats["features"]
        offsets, selection = self.guidance(feats["stage2"], context)
        return self.gum(logits, offsets, selection)


class IGUMSharedGuidance(nn.Module):
    """Shared decoder in ``last_conv`` mode: one offset table from the features for every head."""

    def __init__(self, guidance: IGUMGuidance) -> None:
        super().__init__()
        self.guidance = guidance

    def forward(self, feats: Features, size: tuple[int, int]) -> Features:
        offsets, selection = self.guidance(feats["stage2"], feats["features"])
        shared = {"features": feats["features"], "offsets": offsets}
        if selection is not None:
            shared["selection"] = selection
        return shared


@register_model("igumnet")
class IGUMNet(Architecture):
    """iGUM-Net reconstruction; see the module docstring for paper facts vs proposals.

    Args:
        lite_blocks: use the cheaper "modified" NB1D (dilated factorised pair only) in the encoder.
        dropout_64 / dropout_128: Dropout2d rates of the 64- and 128-channel blocks (ERFNet's 0.03 / 0.3).
        guidance_input: what the guidance reads besides the stride-4 tap: ``"logits"`` (per-dataset
            guidance) or ``"features"``; ``None`` = logits in ``decoder`` mode, features in ``last_conv``.
        guidance_channels: hidden widths of the guidance convs (32, 32).
        hypotheses: K offset tables blended per pixel (1 = plain GUM).
        gum_train_mode / gum_eval_mode: GUM sampling kernel in training / eval.
    """

    name = "igumnet"
    output_stride = 8

    def __init__(
        self,
        lite_blocks: bool = False,
        dropout_64: float = 0.03,
        dropout_128: float = 0.3,
        guidance_input: str | None = None,
        guidance_channels: tuple[int, ...] = (32, 32),
        hypotheses: int = 1,
        gum_train_mode: str = "bilinear",
        gum_eval_mode: str = "bilinear",
    ) -> None:
        if guidance_input not in (None, *GUIDANCE_INPUTS):
            raise MultisegError(f"igumnet: guidance_input {guidance_input!r} is not logits or features")
        if hypotheses < 1:
            raise MultisegError(f"igumnet: hypotheses must be >= 1, got {hypotheses}")
        self.lite_blocks = lite_blocks
        self.dropout_64 = dropout_64
        self.dropout_128 = dropout_128
        self.guidance_input = guidance_input
        self.guidance_channels = tuple(guidance_channels)
        self.hypotheses = hypotheses
        self.gum_train_mode = gum_train_mode
        self.gum_eval_mode = gum_eval_mode

    def build_encoder(self) -> nn.Module:
        return ERFNetEncoder(self.dropout_64, self.dropout_128, lite_blocks=self.lite_blocks)

    def _gum(self) -> GuidedUpsampling:
        return GuidedUpsampling(self.gum_train_mode, self.gum_eval_mode)

    def build_decoder(self, num_classes: int) -> nn.Module:
        reads_logits = (self.guidance_input or "logits") == "logits"
        context = num_classes if reads_logits else 128
        guidance = IGUMGuidance(context, self.guidance_channels, self.hypotheses)
        return IGUMHead(num_classes, guidance, self._gum(), reads_logits)

    def build_shared_decoder(self) -> nn.Module:
        if self.guidance_input == "logits":
            raise MultisegError(
                "igumnet: head_mode 'last_conv' shares the guidance, so it cannot read logits"
            )
        return IGUMSharedGuidance(IGUMGuidance(128, self.guidance_channels, self.hypotheses))

    def build_last_conv(self, num_classes: int) -> nn.Module:
        return IGUMClassifier(num_classes, self._gum())
