"""ERFNet (Romera, Alvarez, Bergasa, Arroyo, IEEE T-ITS 2018), written from the paper and the specs.

Encoder: downsamplers 3->16->64, 5 Non-bottleneck-1D (64), downsampler 64->128, 8 NB1D (128) with
dilations 2, 4, 8, 16 twice (128 ch at stride 8). Decoder: upsampler (3x3 stride-2 transposed conv,
BN, ReLU) 128->64, 2 NB1D (64), upsampler 64->16, 2 NB1D (16), 2x2 stride-2 transposed conv 16->C.
2,066,642 parameters at C=19 (the official code's 20th "void" output aside).

Heads: in ``decoder`` mode each dataset gets layers 17-23; in ``last_conv`` mode layers 17-22 are
shared and only the final 16->C transposed conv is per dataset.
"""

from __future__ import annotations

from torch import Tensor, nn

from multiseg.models.layers import ConcatDownsampler, NonBottleneck1D
from multiseg.models.multihead import Architecture, Features
from multiseg.models.registry import register_model


def upsampler(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-2 transposed conv (bias) -> BN (eps 1e-3) -> ReLU: doubles the resolution."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(out_channels, eps=1e-3),
        nn.ReLU(inplace=True),
    )


class ERFNetEncoder(nn.Module):
    """Layers 1-16; returns ``{"features": 128 ch @ 1/8, "stage2": 64 ch @ 1/4}``.

    ``stage2`` (after the five 64-channel blocks) is exposed for networks that tap it (iGUM-Net's
    guidance); ERFNet's own decoder does not use it.
    """

    def __init__(self, dropout_64: float = 0.03, dropout_128: float = 0.3, lite_blocks: bool = False) -> None:
        super().__init__()
        self.down1 = ConcatDownsampler(3, 16)
        self.down2 = ConcatDownsampler(16, 64)
        self.stage2 = nn.Sequential(*[NonBottleneck1D(64, 1, dropout_64, lite_blocks) for _ in range(5)])
        self.down3 = ConcatDownsampler(64, 128)
        self.stage3 = nn.Sequential(
            *[NonBottleneck1D(128, d, dropout_128, lite_blocks) for d in (2, 4, 8, 16, 2, 4, 8, 16)]
        )

    def forward(self, x: Tensor) -> Features:
        mid = self.stage2(self.down2(self.down1(x)))
        return {"features": self.stage3(self.down3(mid)), "stage2": mid}


class ERFNetDecoderBody(nn.Module):
    """Layers 17-22: two upsamplers with two NB1D each; 16 channels at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            upsampler(128, 64),
            NonBottleneck1D(64),
            NonBottleneck1D(64),
            upsampler(64, 16),
            NonBottleneck1D(16),
            NonBottleneck1D(16),
        )

    def forward(self, feats: Features, size: tuple[int, int]) -> Features:
        return {"x": self.layers(feats["features"])}


class FinalDeconv(nn.Module):
    """The class-emitting 2x2 stride-2 transposed conv (bias) of ERFNet and ENet: stride 2 -> 1."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, num_classes, 2, stride=2)

    def forward(self, shared: Features, size: tuple[int, int]) -> Tensor:
        return self.deconv(shared["x"])


@register_model("erfnet")
class ERFNet(Architecture):
    """ERFNet as published: every choice here is the paper's / official code's.

    Args:
        dropout_64: Dropout2d rate of the 64-channel encoder blocks (0.03 in the official training code).
        dropout_128: Dropout2d rate of the 128-channel encoder blocks (0.3).
    """

    name = "erfnet"
    output_stride = 8

    def __init__(self, dropout_64: float = 0.03, dropout_128: float = 0.3) -> None:
        self.dropout_64 = dropout_64
        self.dropout_128 = dropout_128

    def build_encoder(self) -> nn.Module:
        return ERFNetEncoder(self.dropout_64, self.dropout_128)

    def build_shared_decoder(self) -> nn.Module:
        return ERFNetDecoderBody()

    def build_last_conv(self, num_classes: int) -> nn.Module:
        return FinalDeconv(16, num_classes)
