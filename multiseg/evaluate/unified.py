"""The unified label map: one picture of everything the heads know, in Cityscapes' classes plus details.

Unified ids:

* ``0..18``: the 19 Cityscapes train classes (from the ``cityscapes`` head; without it, from the
  ``vistas`` head through the strict Vistas->Cityscapes table of specs section 3.4, with the two
  crosswalk classes counted as road so that they can be painted);
* ``19..61``: the 43 GTSDB sign classes (``19 + class id``), painted where the Cityscapes classes say
  "traffic sign" **and** the ``gtsdb`` head names a sign (not its background);
* ``62`` lane marking, ``63`` crosswalk (plain), ``64`` crosswalk (zebra): painted on Cityscapes
  "road" where the ``lanes`` head finds them, else where the ``vistas`` head does;
* ``255``: unknown (a Vistas class with no Cityscapes counterpart when the base comes from Vistas).

Both paintings need the coarse class to agree, so a sign head firing on a wall or a marking head firing
on a car changes nothing: each detail refines its parent class, as in the label hierarchy of Meletis &
Dubbelman (specs section 4).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from multiseg.data.gtsdb import GtsdbDataset
from multiseg.data.vistas import LANES_PALETTE
from multiseg.labels import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_NUM_CLASSES,
    CITYSCAPES_PALETTE,
    CITYSCAPES_TRAFFIC_SIGN,
    GTSDB_CLASSES,
    GTSDB_NUM_CLASSES,
    IGNORE_INDEX,
    VISTAS_V12_NUM_LABELS,
    vistas_to_cityscapes_lut,
)

ROAD = CITYSCAPES_CLASSES.index("road")
SIGN_OFFSET = CITYSCAPES_NUM_CLASSES
LANE_MARKING = SIGN_OFFSET + GTSDB_NUM_CLASSES
CROSSWALK_PLAIN = LANE_MARKING + 1
CROSSWALK_ZEBRA = LANE_MARKING + 2
UNIFIED_CLASSES: tuple[str, ...] = (
    *CITYSCAPES_CLASSES,
    *(f"sign: {c.name}" for c in GTSDB_CLASSES),
    "lane marking",
    "crosswalk (plain)",
    "crosswalk (zebra)",
)
UNIFIED_PALETTE: tuple[tuple[int, int, int], ...] = (
    *CITYSCAPES_PALETTE,
    *GtsdbDataset.palette[:GTSDB_NUM_CLASSES],
    LANES_PALETTE[1],
    LANES_PALETTE[2],
    LANES_PALETTE[3],
)
#: Lanes head class -> unified id (road and "other" paint nothing).
_LANES_TO_UNIFIED = {1: LANE_MARKING, 2: CROSSWALK_PLAIN, 3: CROSSWALK_ZEBRA}
#: Vistas v1.2 head index -> unified id: marking--general, crosswalk-plain, marking--crosswalk-zebra.
_VISTAS_TO_UNIFIED = {24: LANE_MARKING, 8: CROSSWALK_PLAIN, 23: CROSSWALK_ZEBRA}
#: Class count of a Vistas v1.2 head (every label but void--unlabeled).
VISTAS_V12_HEAD_CLASSES = VISTAS_V12_NUM_LABELS - 1


def can_unify(num_classes: Mapping[str, int]) -> bool:
    """True when the heads give a Cityscapes base: a 19-class cityscapes head or a v1.2 vistas head."""
    return (
        num_classes.get("cityscapes") == CITYSCAPES_NUM_CLASSES
        or num_classes.get("vistas") == VISTAS_V12_HEAD_CLASSES
    )


def _lut(mapping: Mapping[int, int], size: int = 256) -> torch.Tensor:
    lut = torch.full((size,), -1, dtype=torch.int64)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def unified_from_labels(labels: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-head class maps (same shape, int) -> unified map (int64, same shape); see module docstring.

    Heads used: ``cityscapes`` (19 classes), ``gtsdb`` (43 signs + background), ``lanes`` (Lane
    Markings), ``vistas`` (v1.2 indices); absent heads are simply not painted. Raises ``ValueError``
    when neither a cityscapes nor a vistas map is given (call :func:`can_unify` first).
    """
    if "cityscapes" in labels:
        out = labels["cityscapes"].long().clone()
    elif "vistas" in labels:
        table = vistas_to_cityscapes_lut().astype(np.int64)
        table[list(_VISTAS_TO_UNIFIED)] = ROAD  # crosswalks lie on the road, so markings paint them
        out = torch.from_numpy(table).to(labels["vistas"].device)[labels["vistas"].long()]
    else:
        raise ValueError("the unified map needs a cityscapes or a vistas head")
    device = out.device
    if "gtsdb" in labels:
        sign = labels["gtsdb"].long()
        paint = (out == CITYSCAPES_TRAFFIC_SIGN) & (sign >= 0) & (sign < GTSDB_NUM_CLASSES)
        out = torch.where(paint, SIGN_OFFSET + sign, out)
    road = out == ROAD
    for head, table in (("vistas", _VISTAS_TO_UNIFIED), ("lanes", _LANES_TO_UNIFIED)):
        # vistas first, lanes second: the specialist head has the last word where both paint.
        if head in labels:
            marking = _lut(table).to(device)[labels[head].long().clamp(0, 255)]
            paint = road & (marking >= 0)
            out = torch.where(paint, marking, out)
    return out


def unified_from_logits(logits: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-head logits (``N x C x H x W``, same N, H, W) -> unified map ``N x H x W`` (argmax per head)."""
    return unified_from_labels({h: v.argmax(1) for h, v in logits.items()})


def unified_palette_lut() -> np.ndarray:
    """256 x 3 uint8 RGB table for unified ids (255 and unused ids black)."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(UNIFIED_PALETTE)] = np.array(UNIFIED_PALETTE, np.uint8)
    lut[IGNORE_INDEX] = 0
    return lut
