"""Per-epoch validation: per-head mIoU from confusion matrices on the device, all-reduced under DDP.

Keys of the returned mapping:

* ``miou/<head>``: the head on its own validation split, over the dataset's evaluated classes (GTSDB:
  against box-derived targets, the 43 sign classes);
* ``miou_true/gtsdb``: the GTSDB head against per-pixel ground truth, where the data has it (the demo
  world's true sign masks, or Meletis & Dubbelman's annotations);
* ``pseudo_iou/gtsdb``: how well the online ``merge`` targets (boxes + the Cityscapes head) recover the
  true sign masks, so target policies can be compared;
* ``sign_iou/gtsdb``, ``sign_category_accuracy/gtsdb`` and ``sign_accuracy/gtsdb``: the ``miou_true``
  matrix split into finding signs (IoU of "any sign" against background), telling their category and
  naming them (right category / class on the sign pixels found), since a low sign mIoU can mean any.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from multiseg.data.base import SegDataset
from multiseg.data.pipeline import SkippedFiles, collate, exit_on_sigterm, normalize_on_device
from multiseg.labels import CITYSCAPES_TRAFFIC_SIGN
from multiseg.metrics import ConfusionMatrix, sign_scores
from multiseg.train.box_targets import BoxTargetOptions, merge_sample
from multiseg.train.config import TrainConfig
from multiseg.train.data import ValSet
from multiseg.train.distributed import DistInfo

#: The validation keys a run reports in its summary and the study grid keeps (``<prefix><head>``).
SCORE_PREFIXES = (
    "miou/",
    "miou_true/",
    "pseudo_iou/",
    "sign_iou/",
    "sign_category_accuracy/",
    "sign_accuracy/",
)


def _loader(dataset: Any, cfg: TrainConfig, info: DistInfo) -> DataLoader:
    """This rank's share of a validation set, optionally capped, one image per batch."""
    shard = Subset(dataset, list(range(info.rank, _val_count(dataset, cfg), info.world_size)))
    workers = min(cfg.workers, 1)
    return DataLoader(
        shard,
        batch_size=1,
        collate_fn=collate,
        num_workers=workers,
        generator=torch.Generator(),  # keeps the global RNG stream untouched (exact resume)
        worker_init_fn=exit_on_sigterm,
    )


class _FileCheck(Dataset):
    """Item ``i``: the path of sample ``i`` when it is unreadable under ``skip_bad``, else ``""``."""

    def __init__(self, dataset: SegDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> str:
        ok = self.dataset.load_or_skip(index) is not None
        return "" if ok else str(self.dataset.records[index].image)


def check_val_files(
    val_sets: list[ValSet], cfg: TrainConfig, info: DistInfo, skipped: SkippedFiles, show: bool = True
) -> None:
    """Decode every file this rank will validate on, before the first epoch.

    A corrupt validation file otherwise stops the run at its first validation, after a whole
    ``val_every`` of training and before any ``last.pt``. Here it is a one-line error before training
    starts, or, with ``skip_bad``, a skip counted in ``skipped`` (and skipped again at each validation).
    Decoding runs in ``workers`` DataLoader processes; it costs about one validation without the network.
    """
    datasets = [ds for vs in val_sets for ds in (vs.dataset, vs.pixel_gt) if ds is not None]
    total = sum(_val_count(ds, cfg) for ds in datasets)
    with tqdm(total=total, desc="checking validation files", disable=not show, leave=False) as bar:
        for ds in datasets:
            shard = Subset(_FileCheck(ds), list(range(info.rank, _val_count(ds, cfg), info.world_size)))
            loader = DataLoader(
                shard,
                batch_size=8,
                collate_fn=list,
                num_workers=cfg.workers,
                generator=torch.Generator(),
                worker_init_fn=exit_on_sigterm,
            )
            for paths in loader:
                skipped.counts.update(p for p in paths if p)
                bar.update(len(paths) * info.world_size)


def _val_count(dataset: SegDataset, cfg: TrainConfig) -> int:
    """How many samples of ``dataset`` validation reads (``val_max_samples`` caps it)."""
    return len(dataset) if cfg.val_max_samples is None else min(len(dataset), cfg.val_max_samples)


@torch.inference_mode()
def validate(
    net: nn.Module,
    val_sets: list[ValSet],
    cfg: TrainConfig,
    device: torch.device,
    info: DistInfo,
    skipped: SkippedFiles | None = None,
) -> dict[str, float]:
    """Evaluate every head on its validation split; see the module docstring for the keys.

    With ``skip_bad``, a batch standing in for a corrupt file is counted in ``skipped`` and left out
    (its sample is the next readable one, evaluated at its own index anyway).
    """
    skipped = skipped if skipped is not None else SkippedFiles()
    was_training = net.training
    net.eval()
    results: dict[str, float] = {}
    heads = set(getattr(net, "head_names", []))
    try:
        for vs in val_sets:
            if vs.name == "gtsdb" and vs.pixel_gt is not None:
                results.update(_validate_gtsdb(net, vs, cfg, device, info, "cityscapes" in heads, skipped))
            else:
                results[f"miou/{vs.name}"] = _validate_dense(net, vs, cfg, device, info, skipped)
    finally:
        net.train(was_training)
    return results


def _validate_dense(
    net: nn.Module, vs: ValSet, cfg: TrainConfig, device: torch.device, info: DistInfo, skipped: SkippedFiles
) -> float:
    cm = ConfusionMatrix(vs.dataset.num_classes, device=device)
    for batch in _loader(vs.dataset, cfg, info):
        if skipped.add(batch):
            continue
        logits = net(normalize_on_device(batch["image"].to(device)), heads=[vs.name])[vs.name]
        cm.update(logits.argmax(1), batch["label"].to(device))
    cm.all_reduce()
    return cm.miou(vs.dataset.eval_classes)


def _validate_gtsdb(
    net: nn.Module,
    vs: ValSet,
    cfg: TrainConfig,
    device: torch.device,
    info: DistInfo,
    with_cityscapes: bool,
    skipped: SkippedFiles,
) -> dict[str, float]:
    n = vs.dataset.num_classes
    boxes_cm, true_cm, pseudo_cm = (ConfusionMatrix(n, device=device) for _ in range(3))
    opts = BoxTargetOptions(
        policy="merge", inbox_nonsign=cfg.gtsdb_inbox_nonsign, min_coverage=cfg.gtsdb_min_coverage
    )
    for box_batch, true_batch in zip(
        _loader(vs.dataset, cfg, info), _loader(vs.pixel_gt, cfg, info), strict=True
    ):
        if skipped.add(box_batch) or true_batch["skipped"]:
            continue
        heads = ["gtsdb", "cityscapes"] if with_cityscapes else ["gtsdb"]
        out = net(normalize_on_device(box_batch["image"].to(device)), heads=heads)
        pred = out["gtsdb"].argmax(1)
        box_target = box_batch["label"].to(device)
        true_target = true_batch["label"].to(device)
        boxes_cm.update(pred, box_target)
        true_cm.update(pred, true_target)
        if with_cityscapes:
            sign = out["cityscapes"].argmax(1)[0] == CITYSCAPES_TRAFFIC_SIGN
            boxes = box_batch["boxes"][0].to(device)
            classes = box_batch["box_classes"][0].to(device)
            merged, _ = merge_sample(sign, boxes, classes, box_target[0], opts)
            pseudo_cm.update(merged, true_target[0])
    results = {}
    for key, cm in (("miou/gtsdb", boxes_cm), ("miou_true/gtsdb", true_cm), ("pseudo_iou/gtsdb", pseudo_cm)):
        if key == "pseudo_iou/gtsdb" and not with_cityscapes:
            continue
        cm.all_reduce()
        results[key] = cm.miou(vs.dataset.eval_classes)
    results.update({f"{name}/gtsdb": value for name, value in sign_scores(true_cm).items()})
    return results
