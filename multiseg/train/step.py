"""One joint training step's losses: route each sample to its head, make GTSDB targets online.

The batch follows the data pipeline's contract (:mod:`multiseg.data.pipeline`): ``image`` uint8
(N, 3, H, W), ``label`` (N, H, W) with 255 = ignore, ``dataset_index`` (N,) into ``dataset_names``,
and per-sample ``boxes`` / ``box_classes`` lists for box-only datasets. The encoder runs once on the
whole batch; each head runs only on its own samples, plus the Cityscapes head on GTSDB samples when
their targets are merged with its prediction.

A universal model (``head_mode: universal``) runs its one decoder on the whole batch; each dataset's
samples get the NLL+ loss over their classes' universal sets, and the GTSDB box rule reads "traffic
sign" off the same logits' Cityscapes read-out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from multiseg.data.pipeline import normalize_on_device
from multiseg.labels import CITYSCAPES_TRAFFIC_SIGN, IGNORE_INDEX
from multiseg.models.universal import UNIVERSAL
from multiseg.train.box_targets import BoxTargetOptions, merge_batch
from multiseg.train.universal import nll_plus


@dataclass
class StepOutput:
    """Per-head mean cross-entropies of the heads present in the batch, and box-target statistics."""

    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    boxes_merged: int = 0
    boxes_fallback: int = 0


def head_selection(dataset_index: torch.Tensor, dataset_names: Sequence[str], merge_gtsdb: bool) -> dict:
    """Head -> sample indices it must run on. With merging, the Cityscapes head also sees GTSDB samples
    (appended after its own, so its first ``n_own`` outputs are its own samples)."""
    sel: dict[str, torch.Tensor] = {}
    for i, name in enumerate(dataset_names):
        idx = torch.nonzero(dataset_index == i).flatten()
        if idx.numel():
            sel[name] = idx
    if merge_gtsdb and "gtsdb" in sel:
        own = sel.get("cityscapes", dataset_index.new_zeros(0))
        sel["cityscapes"] = torch.cat([own, sel["gtsdb"]])
    return sel


def _ce(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor | None:
    """(Class-weighted) mean cross-entropy over non-ignored pixels, or None when every pixel is ignored."""
    if not bool((target != IGNORE_INDEX).any()):
        return None
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=IGNORE_INDEX)


def compute_losses(
    model: nn.Module,
    batch: Mapping[str, object],
    dataset_names: Sequence[str],
    box_opts: BoxTargetOptions,
    class_weights: Mapping[str, torch.Tensor] | None = None,
) -> StepOutput:
    """Forward the batch once through the shared encoder and return every present head's loss."""
    images = batch["image"]
    labels = batch["label"].long()
    dataset_index = batch["dataset_index"]
    merge = box_opts.policy == "merge" and "gtsdb" in dataset_names and "cityscapes" in dataset_names
    if getattr(model, "readout", None) is not None:
        return _universal_losses(model, batch, dataset_names, box_opts, class_weights or {}, merge)
    selection = head_selection(dataset_index, dataset_names, merge)
    outputs = model(normalize_on_device(images), heads=selection)
    out = StepOutput()
    for name, logits in outputs.items():
        own = torch.nonzero(dataset_index == dataset_names.index(name)).flatten()
        if own.numel() == 0:
            continue  # the Cityscapes head ran only to make GTSDB targets
        if name == "gtsdb" and merge:
            n_cs = int((dataset_index == dataset_names.index("cityscapes")).sum())
            sign = outputs["cityscapes"][n_cs:].detach().argmax(dim=1) == CITYSCAPES_TRAFFIC_SIGN
            boxes = [batch["boxes"][i] for i in own.tolist()]
            classes = [batch["box_classes"][i] for i in own.tolist()]
            target, merged, fell = merge_batch(sign, boxes, classes, labels[own], box_opts)
            out.boxes_merged += merged
            out.boxes_fallback += fell
        else:
            target = labels[own]
        loss = _ce(logits[: own.numel()], target, (class_weights or {}).get(name))
        if loss is not None:
            out.losses[name] = loss
    return out


def _universal_losses(
    model: nn.Module,
    batch: Mapping[str, object],
    dataset_names: Sequence[str],
    box_opts: BoxTargetOptions,
    class_weights: Mapping[str, torch.Tensor],
    merge: bool,
) -> StepOutput:
    """Per-dataset NLL+ of a universal model; GTSDB targets from the box rule, as label sets.

    The box rule is the multi-head one (:mod:`multiseg.train.box_targets`) with the Cityscapes read-out
    of the same universal logits as "the Cityscapes head": in-box pixels it calls "traffic sign" get
    the box's sign (that sign's universal class), the others GTSDB background (every universal class
    but the 43 signs) or ignore, and a GTSDB sample's loss is NLL+ over those sets.
    """
    labels = batch["label"].long()
    dataset_index = batch["dataset_index"]
    logits = model(normalize_on_device(batch["image"]), heads={UNIVERSAL: None})[UNIVERSAL]
    out = StepOutput()
    for i, name in enumerate(dataset_names):
        own = torch.nonzero(dataset_index == i).flatten()
        if own.numel() == 0:
            continue
        mine = logits.index_select(0, own)
        target = labels[own]
        if name == "gtsdb" and merge:
            with torch.no_grad():
                sign = model.readout(mine.detach(), "cityscapes").argmax(dim=1) == CITYSCAPES_TRAFFIC_SIGN
            boxes = [batch["boxes"][j] for j in own.tolist()]
            classes = [batch["box_classes"][j] for j in own.tolist()]
            target, merged, fell = merge_batch(sign, boxes, classes, target, box_opts)
            out.boxes_merged += merged
            out.boxes_fallback += fell
        loss = nll_plus(mine, target, model.readout.membership(name), class_weights.get(name))
        if loss is not None:
            out.losses[name] = loss
    return out


def enet_class_weights(counts: torch.Tensor, c: float = 1.02) -> torch.Tensor:
    """ENet's class weights ``1 / ln(c + p_k)`` from pixel counts per class (p_k = class frequency).

    They bound the weight of a rare class at ``1 / ln(c)`` (about 50) instead of letting it grow like
    ``1 / p``, which keeps a head whose target is almost all background (GTSDB) from collapsing to it.
    """
    freq = counts.double() / counts.sum().clamp(min=1)
    return (1.0 / torch.log(c + freq)).float()
