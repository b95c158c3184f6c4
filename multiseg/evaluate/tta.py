"""Test-time augmentation for ``multiseg eval --tta``: several scales and a mirror, softmax averaged.

Each view is the evaluation image (already fit to the run's size, as in plain evaluation) resized by one
of the scale factors (bilinear; default 0.5, 0.75, 1.0, 1.25, 1.5, 1.75 as in mmsegmentation's
multi-scale test) and, with ``flip``, also mirrored left-right. Every view's logits (mirrored back for a
mirrored view) are upsampled straight to the label's size, bilinearly and in strips of rows like plain
evaluation (:mod:`.upsample`), softmaxed there, and averaged; the prediction is the argmax of the
average. The softmax and the average are computed in float64: the float32 logits' order of classes
survives the softmax exactly, so one view at scale 1.0 without the mirror is plain evaluation, pixel for
pixel (in float32 the exponential rounds near-ties together and flips about one pixel in 10^5).

Mirrored classes: in a mirrored view a "turn right" sign reads as "turn left", so the view's class
probabilities are renamed through the head's mirror map before they are averaged (the dataset's
:class:`~multiseg.data.sample.Mirror`: GTSDB's twins ``GTSDB_MIRROR_PAIRS``, Vistas v2.0's arrows;
Cityscapes, Vistas v1.2 and lane classes mirror to themselves).

Classes with no mirror twin (GTSDB's speed limits and other signs with digits, text or a handed
figure, such as "road narrows on the right" or the roundabout): their mirror image is a sign that does
not exist, and training never showed the network one (the training flip skips such samples), so what
a mirrored view says about them means nothing. Mirrored views therefore do not vote on those classes:
a class with no twin gets the average over the unmirrored views alone, every other class the average
over all views. Ignoring the mirrored views only there keeps their evidence for everything else
(background, the symmetric signs, the twins); counting them as if such a sign were symmetric would
average in a sign the network has never seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from multiseg.data.pipeline import normalize_on_device
from multiseg.data.sample import Mirror
from multiseg.errors import MultisegError
from multiseg.evaluate.upsample import Upsampler

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@dataclass(frozen=True)
class TtaSpec:
    """The views of test-time augmentation: scale factors of the evaluation image, and the mirror."""

    scales: tuple[float, ...] = DEFAULT_SCALES
    flip: bool = True

    def __post_init__(self) -> None:
        if not self.scales or any(not 0.05 <= s <= 8 for s in self.scales):
            raise MultisegError(f"--tta-scales {list(self.scales)}: expected factors between 0.05 and 8")

    @property
    def views(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    def describe(self) -> str:
        scales = ", ".join(f"{s:g}" for s in self.scales)
        mirrored = ", each also mirrored" if self.flip else ""
        return f"test-time augmentation: {self.views} views (scales {scales}{mirrored})"


def parse_scales(text: str) -> tuple[float, ...]:
    """``"0.5,1,1.5"`` -> ``(0.5, 1.0, 1.5)``; a one-line error otherwise."""
    try:
        return tuple(float(s) for s in text.split(","))
    except ValueError:
        raise MultisegError(
            f"--tta-scales {text!r}: expected comma-separated factors, e.g. 0.5,1,1.5"
        ) from None


def flip_channels(mirror: Mirror | None, classes: int) -> torch.Tensor:
    """``out[c]``: the channel of a mirrored view's prediction that holds class ``c``; -1: no twin."""
    out = torch.arange(classes)
    if mirror is not None and mirror.box_class_map is not None:  # GTSDB: signs, then background
        twins = torch.from_numpy(mirror.box_class_map).long()
        out[: len(twins)] = twins
    elif mirror is not None and mirror.label_lut is not None:
        out = torch.from_numpy(mirror.label_lut[:classes]).long()
    return out


def _views(
    net: nn.Module, x: torch.Tensor, heads: list[str], spec: TtaSpec
) -> list[tuple[dict[str, torch.Tensor], bool]]:
    """Each view's logits per head (a mirrored view's mirrored back), with whether it was mirrored."""
    h, w = x.shape[-2:]
    out = []
    for s in spec.scales:
        size = (max(1, round(h * s)), max(1, round(w * s)))
        xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        out.append((net(xs, heads=heads), False))
        if spec.flip:
            mirrored = net(xs.flip(-1), heads=heads)
            out.append(({k: v.flip(-1) for k, v in mirrored.items()}, True))
    return out


def _fuse(
    views: Sequence[tuple[torch.Tensor, bool]], flip_map: torch.Tensor, size: tuple[int, int], strip: int = 64
) -> torch.Tensor:
    """The argmax at ``size`` of the views' averaged softmax (see the module docstring), ``strip``
    output rows at a time and one view's strip at a time, so big labels fit in memory."""
    device = views[0][0].device
    classes = views[0][0].shape[1]
    flip_map = flip_map.to(device)
    twin = flip_map >= 0
    take = flip_map.clamp(min=0)
    unmirrored = sum(not mirrored for _, mirrored in views)
    count = torch.full((classes,), float(unmirrored), dtype=torch.float64, device=device)
    count += twin.double() * (len(views) - unmirrored)
    ups = [Upsampler(logits[0], size) for logits, _ in views]
    out = torch.empty(size, dtype=torch.int64, device=device)
    for r0 in range(0, size[0], strip):
        r1 = min(r0 + strip, size[0])
        total = torch.zeros((1, classes, r1 - r0, size[1]), dtype=torch.float64, device=device)
        for up, (_, mirrored) in zip(ups, views, strict=True):
            p = up.rows(r0, r1).double().softmax(1)
            total += p[:, take] * twin.view(1, -1, 1, 1) if mirrored else p
        out[r0:r1] = (total / count.view(1, -1, 1, 1)).argmax(1)[0]
    return out


@torch.inference_mode()
def tta_predict(
    net: nn.Module,
    image: torch.Tensor,
    heads: list[str],
    size: tuple[int, int],
    spec: TtaSpec,
    flip_maps: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Class maps of ``heads`` at ``size`` for a ``1 x 3 x h x w`` uint8 image, from the fused views."""
    views = _views(net, normalize_on_device(image), heads, spec)
    return {
        h: _fuse(
            [(v[h], mirrored) for v, mirrored in views], flip_maps.get(h, torch.arange(v0.shape[1])), size
        )
        for h, v0 in views[0][0].items()
    }
