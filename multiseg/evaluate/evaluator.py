"""``multiseg eval``: every head of a checkpoint on the data its run trained on, with the benchmarks' rules.

Per head and dataset (specs section 1.5 for Cityscapes, 3.3-3.5 for Vistas):

* ``cityscapes``: mIoU over the 19 train classes; void GT pixels ignored, a prediction outside the 19
  classes on a valid pixel a miss (:class:`~multiseg.metrics.ConfusionMatrix`);
* ``vistas``: mIoU over the evaluated classes, and over the evaluated classes the strict
  Vistas->Cityscapes table maps to nothing (v1.2 only; the classes a Cityscapes model cannot know); with a
  ``cityscapes`` head too, that head on the Vistas images against the strictly mapped Vistas GT;
* ``lanes``: mIoU over road, lane marking, crosswalk plain, crosswalk zebra (not "other");
* ``gtsdb``: mIoU over the 43 signs against the box-derived targets of the run's policy, and against
  per-pixel ground truth where available (the demo world's true masks, or Meletis & Dubbelman's masks
  given with ``--gtsdb-masks``). Each GTSDB result also splits its matrix into ``sign_iou`` (IoU of
  "any sign" against background: were the signs found?), ``sign_category_accuracy`` (the right category
  on the sign pixels found) and ``sign_accuracy`` (the right class: were they named?).

Resolution: by default the images and labels are resized as in training validation (the image fits
``resize_width`` x ``resize_height``; labels by nearest neighbour), so the numbers equal the training
log's. ``full_res=True`` is the official protocol: labels stay at their original size and the logits
are bilinearly upsampled to it before the argmax. The report says which was used.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from multiseg.config import config_from_dict, read_yaml_mapping
from multiseg.data.base import SegDataset
from multiseg.data.pipeline import SkippedFiles, collate, normalize_on_device
from multiseg.data.sample import Mirror, Sample
from multiseg.data.transforms import fit_scale
from multiseg.errors import MultisegError
from multiseg.evaluate.report import (
    EvalResult,
    format_table,
    plot_class_iou,
    plot_confusion,
    write_csv,
    write_json,
)
from multiseg.evaluate.tta import TtaSpec, flip_channels, tta_predict
from multiseg.evaluate.upsample import upsample_argmax
from multiseg.labels import CITYSCAPES_CLASSES, CITYSCAPES_NUM_CLASSES, vistas_to_cityscapes_lut
from multiseg.metrics import ConfusionMatrix, sign_scores
from multiseg.models import MultiHeadSegmenter, inference_model, model_from_checkpoint
from multiseg.train.checkpoint import describe_progress, load_checkpoint
from multiseg.train.config import TrainConfig
from multiseg.train.data import ValSet, build_val_sets, fit_size, gtsdb_offline_policy


class ImageOnlyResize:
    """The evaluation transform of ``full_res``: the image is fit-resized exactly as in training (same
    rounding, same OpenCV interpolation) while label and boxes keep the original resolution."""

    def __init__(self, fit_width: int, fit_height: int) -> None:
        self.fit_width, self.fit_height = fit_width, fit_height

    def __call__(self, sample: Sample, mirror: Mirror, rng: np.random.Generator) -> Sample:
        """Resize ``sample.image`` only; ``mirror`` and ``rng`` are unused."""
        h, w = sample.image.shape[:2]
        scale = fit_scale(w, h, self.fit_width, self.fit_height, True)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size == (w, h):
            return sample
        return replace(sample, image=cv2.resize(sample.image, size, interpolation=cv2.INTER_LINEAR))


# -- loading a run or a checkpoint -----------------------------------------------------------------


def resolve_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """``RUN_DIR`` (its best.pt, else last.pt) or a checkpoint file -> (checkpoint, run dir or None)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name, path
        raise MultisegError(f"{path}: run folder has neither best.pt nor last.pt")
    if not path.is_file():
        raise MultisegError(f"{path}: no such run folder or checkpoint file")
    return path, path.parent if (path.parent / "config.yaml").is_file() else None


def check_model_matches(model_config: dict[str, Any], cfg: TrainConfig, source: str) -> None:
    """Raise, listing every difference, when a checkpoint's network is not the one its config describes."""
    problems = []
    if model_config.get("name") != cfg.model:
        problems.append(f"model {model_config.get('name')!r} vs {cfg.model!r}")
    if model_config.get("head_mode", "decoder") != cfg.head_mode:
        problems.append(f"head_mode {model_config.get('head_mode')!r} vs {cfg.head_mode!r}")
    heads = list(dict(model_config.get("heads") or {}))
    missing = [d for d in cfg.datasets if d not in heads]
    extra = [h for h in heads if h not in cfg.datasets]
    if missing or extra:
        problems.append(f"heads {heads} vs datasets {cfg.datasets} (missing {missing}, extra {extra})")
    if problems:
        raise MultisegError(f"{source}: checkpoint does not match the run config: {'; '.join(problems)}")


def load_run(path: Path) -> tuple[MultiHeadSegmenter, TrainConfig, Path, Path | None]:
    """The model and training config of a run folder or checkpoint, checked against each other."""
    ckpt, run_dir = resolve_checkpoint(path)
    blob = load_checkpoint(ckpt)
    if not isinstance(blob, dict) or "model_config" not in blob:
        raise MultisegError(f"{ckpt}: not a multiseg checkpoint (no 'model_config' entry)")
    raw_cfg = blob.get("config")
    source = str(ckpt)
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        raw_cfg, source = read_yaml_mapping(run_dir / "config.yaml"), f"{ckpt} with {run_dir / 'config.yaml'}"
    if not isinstance(raw_cfg, dict):
        raise MultisegError(f"{ckpt}: holds no training 'config' and no config.yaml is beside it")
    cfg = config_from_dict(TrainConfig, raw_cfg, source)
    check_model_matches(dict(blob["model_config"]), cfg, source)
    model = model_from_checkpoint(ckpt)
    model.pad_to_stride = True  # evaluation frames keep their aspect ratio, so sizes vary
    return model, cfg, ckpt, run_dir


def override_data(cfg: TrainConfig, data: Sequence[str]) -> TrainConfig:
    """``--data ROOT`` (replaces data_root and clears per-dataset roots) and ``--data NAME=PATH`` items."""
    changes: dict[str, Any] = {}
    for item in data:
        name, sep, value = item.partition("=")
        if not sep:
            changes.update(data_root=Path(item), cityscapes_root=None, gtsdb_root=None, vistas_root=None)
            continue
        key = {"lanes": "vistas"}.get(name.strip(), name.strip())
        if key not in ("cityscapes", "gtsdb", "vistas"):
            raise MultisegError(f"--data {item}: NAME must be cityscapes, gtsdb, vistas or lanes")
        changes[f"{key}_root"] = Path(value)
    return replace(cfg, **changes)


# -- what to measure -----------------------------------------------------------------------------


@dataclass
class Probe:
    """One confusion matrix to fill: ``head``'s prediction vs the GT of ``source`` (0: the dataset's
    label, 1: the per-pixel GT set), optionally mapped through ``gt_lut``."""

    head: str
    dataset: str
    target: str
    classes: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]
    source: int = 0
    gt_lut: torch.Tensor | None = None
    signs: bool = False  # a GTSDB matrix: add :func:`~multiseg.metrics.sign_scores`
    cm: ConfusionMatrix | None = None
    images: int = 0


def probes_for(vs: ValSet, heads: dict[str, int]) -> list[Probe]:
    """The matrices to fill on one validation set (see the module docstring)."""
    ds = vs.dataset
    if heads[vs.name] != ds.num_classes:
        raise MultisegError(
            f"head {vs.name!r} has {heads[vs.name]} classes but {vs.name} split {ds.split!r} has "
            f"{ds.num_classes} ({', '.join(ds.classes[:3])}, ...); is this the data the run trained on?"
        )
    groups: dict[str, tuple[int, ...]] = {"miou": tuple(ds.eval_classes)}
    target = "boxes" if vs.name == "gtsdb" else "labels"
    signs = vs.name == "gtsdb"
    probes = [Probe(vs.name, vs.name, target, tuple(ds.classes), groups, signs=signs)]
    to_cs = getattr(ds, "to_cityscapes", None)
    if vs.name == "vistas" and to_cs is not None:
        groups["miou_not_in_cityscapes"] = tuple(i for i in ds.eval_classes if to_cs[i] == 255)
        if heads.get("cityscapes") == CITYSCAPES_NUM_CLASSES:
            lut = torch.from_numpy(vistas_to_cityscapes_lut().astype(np.int64))
            cs_groups = {"miou": tuple(range(CITYSCAPES_NUM_CLASSES))}
            probes.append(Probe("cityscapes", "vistas", "strict cityscapes mapping", CITYSCAPES_CLASSES,
                                cs_groups, gt_lut=lut))  # fmt: skip
    if vs.pixel_gt is not None:
        pixel_groups = {"miou": tuple(ds.eval_classes)}
        probes.append(Probe(vs.name, vs.name, "pixel gt", tuple(ds.classes), pixel_groups, source=1,
                            signs=signs))  # fmt: skip
    return probes


# -- the loop -------------------------------------------------------------------------------------


def _loader(dataset: SegDataset, max_samples: int | None, workers: int) -> DataLoader:
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    return DataLoader(Subset(dataset, list(range(n))), batch_size=1, collate_fn=collate, num_workers=workers)


def _predict(
    net: nn.Module, image: torch.Tensor, heads: list[str], size: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Class maps of ``heads`` at ``size`` (logits upsampled first when the label is bigger/smaller)."""
    logits = net(normalize_on_device(image), heads=heads)
    return {h: upsample_argmax(v[0], size) for h, v in logits.items()}


@torch.inference_mode()
def evaluate_set(
    net: nn.Module,
    vs: ValSet,
    probes: list[Probe],
    device: torch.device,
    max_samples: int | None,
    workers: int,
    skipped: SkippedFiles | None = None,
    tta: TtaSpec | None = None,
    flip_maps: dict[str, torch.Tensor] | None = None,
) -> None:
    """Fill every probe's confusion matrix over one validation set (one image at a time).

    A batch standing in for a corrupt file (``skip_bad``) is counted in ``skipped`` and left out: its
    sample is the next readable one, evaluated at its own index anyway. ``tta``: predict with
    test-time augmentation (:mod:`.tta`), mirrored views renamed through ``flip_maps`` (head -> channels).
    """
    skipped = skipped if skipped is not None else SkippedFiles()
    for p in probes:
        p.cm = ConfusionMatrix(len(p.classes), device=device)
    heads = sorted({p.head for p in probes})
    loaders = [_loader(vs.dataset, max_samples, workers)]
    if vs.pixel_gt is not None:
        loaders.append(_loader(vs.pixel_gt, max_samples, workers))
    total = len(loaders[0])
    for batches in tqdm(zip(*loaders, strict=True), total=total, desc=f"eval {vs.name}", leave=False):
        if skipped.add(batches[0]) or any(b["skipped"] for b in batches[1:]):
            continue
        labels = [b["label"][0].to(device) for b in batches]
        image, size = batches[0]["image"].to(device), tuple(labels[0].shape)
        if tta is None:
            preds = _predict(net, image, heads, size)
        else:
            preds = tta_predict(net, image, heads, size, tta, flip_maps or {})
        for p in probes:
            gt = labels[p.source]
            if p.gt_lut is not None:
                gt = p.gt_lut.to(device)[gt.long()]
            assert p.cm is not None
            p.cm.update(preds[p.head], gt)
            p.images += 1


def _result(p: Probe, split: str) -> EvalResult:
    assert p.cm is not None
    p.cm.all_reduce()
    iou = p.cm.iou().cpu().tolist()
    scores = {}
    if p.signs:
        scores = sign_scores(p.cm)
    return EvalResult(
        head=p.head, dataset=p.dataset, split=split, target=p.target, classes=p.classes, groups=p.groups,
        iou=iou, confusion=p.cm.mat.cpu().tolist(), pixel_accuracy=p.cm.pixel_accuracy(), images=p.images,
        means={name: p.cm.miou(idx) for name, idx in p.groups.items()}, scores=scores,
    )  # fmt: skip


@dataclass
class EvalOptions:
    """What ``multiseg eval`` was asked for."""

    split: str = "val"
    full_res: bool = False
    data: list[str] = field(default_factory=list)
    gtsdb_masks: Path | None = None
    heads: list[str] | None = None
    max_samples: int | None = None
    device: str = "auto"
    workers: int = 1
    skip_bad: bool = False  # leave corrupt files out (counted, reported) instead of stopping
    plain: bool = False  # the plain eval-mode model instead of inference_model's (BN folded, layout)
    tta: TtaSpec | None = None  # test-time augmentation (multi-scale, mirror); None: one plain view


def resolution_note(cfg: TrainConfig, full_res: bool) -> str:
    """The sentence the report carries about the protocol."""
    fit = f"{cfg.resize_width}x{cfg.resize_height}" + "".join(
        f", {name} {w}x{h}" for name, (w, h) in cfg.dataset_resize.items()
    )
    if full_res:
        return (f"full resolution (official protocol): images fit {fit} for the network, logits bilinearly "
                "upsampled to each label's original size")  # fmt: skip
    return f"training resolution: images fit {fit}, labels resized to match with nearest neighbour"


def build_sets(cfg: TrainConfig, opts: EvalOptions) -> list[ValSet]:
    """The validation (or ``--split train``) sets of the chosen datasets, with the chosen resolution."""
    if opts.split not in ("val", "train"):
        raise MultisegError(f"--split {opts.split!r}: expected val or train")
    names = list(cfg.datasets) if opts.heads is None else list(opts.heads)
    if unknown := [h for h in names if h not in cfg.datasets]:
        raise MultisegError(f"--heads: {unknown} not in this model's heads {cfg.datasets}")
    resize = {k: v for k, v in cfg.dataset_resize.items() if k in names}
    # Without the cityscapes head a merge run's GTSDB set is still scored on its offline box targets.
    target = cfg.gtsdb_target if "cityscapes" in names else gtsdb_offline_policy(cfg)
    sub = replace(cfg, datasets=names, reference_dataset=names[0], dataset_resize=resize, gtsdb_target=target)
    sets = build_val_sets(sub, which=0 if opts.split == "train" else 1)
    for vs in sets:
        if vs.name == "gtsdb" and opts.gtsdb_masks is not None:
            from multiseg.data.pipeline import build_dataset
            from multiseg.train.data import dataset_root

            vs.pixel_gt = build_dataset(
                "gtsdb", dataset_root(cfg, "gtsdb"), vs.dataset.split, transform=vs.dataset.transform,
                label_source="pixel_masks", pixel_masks_dir=opts.gtsdb_masks, policy=vs.dataset.policy,
                ring=vs.dataset.ring,
            )  # fmt: skip
        for ds in (vs.dataset, vs.pixel_gt):
            if ds is not None:
                ds.skip_bad = opts.skip_bad
                if opts.full_res:
                    ds.transform = ImageOnlyResize(*fit_size(cfg, vs.name))
    return sets


def evaluate(
    model: MultiHeadSegmenter,
    cfg: TrainConfig,
    opts: EvalOptions,
    device: torch.device,
    skipped: SkippedFiles | None = None,
) -> list[EvalResult]:
    """Every requested head on its dataset(s); see the module docstring. ``skipped`` counts skip_bad skips."""
    model = inference_model(model.to(device), optimize=not opts.plain)
    results = []
    sets = build_sets(cfg, opts)
    # A head mirrors like the dataset it is named after (mirror twins; see multiseg.evaluate.tta).
    flips = {vs.name: flip_channels(vs.dataset.mirror, model.num_classes[vs.name]) for vs in sets}
    for vs in sets:
        probes = probes_for(vs, dict(model.num_classes))
        evaluate_set(model, vs, probes, device, opts.max_samples, opts.workers, skipped, opts.tta, flips)
        results.extend(_result(p, vs.dataset.split) for p in probes)
    return results


def prepare_out_dir(out: Path) -> Path:
    """Create ``out`` and prove it is writable, before any work (one-line error otherwise)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".multiseg-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise MultisegError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


def write_report(results: list[EvalResult], meta: dict[str, Any], out: Path, resolution: str) -> list[Path]:
    """JSON, CSV, and per result a bar chart and a confusion matrix PNG; returns the files written."""
    written = [out / "eval.json", out / "eval.csv"]
    write_json(results, meta, written[0])
    write_csv(results, written[1])
    for r in results:
        bars, conf = out / f"iou_{r.key}.png", out / f"confusion_{r.key}.png"
        plot_class_iou(r, bars, resolution)
        plot_confusion(r, conf, resolution)
        written += [bars, conf]
    return written


def run_eval(path: Path, opts: EvalOptions, out: Path | None) -> str:
    """``multiseg eval``: load, check, evaluate, write the report; returns the text to print."""
    from multiseg.train.device import resolve_device

    model, cfg, ckpt, run_dir = load_run(path)
    cfg = override_data(cfg, opts.data)
    tag = f"eval-{opts.split}-{'fullres' if opts.full_res else 'trainres'}{'-tta' if opts.tta else ''}"
    out = prepare_out_dir(out if out is not None else (run_dir or ckpt.parent) / tag)
    device = resolve_device(opts.device)
    start = time.perf_counter()
    skipped = SkippedFiles()
    results = evaluate(model, cfg, opts, device, skipped)
    seconds = time.perf_counter() - start
    resolution = resolution_note(cfg, opts.full_res)
    if opts.tta is not None:
        resolution += f"; {opts.tta.describe()}"
    meta = {
        "checkpoint": str(ckpt), "model": model.name, "heads": dict(model.num_classes), "split": opts.split,
        "full_res": opts.full_res, "resolution": resolution, "device": str(device),
        "seconds": round(seconds, 2), "skipped_files": sorted(skipped.counts),
        "tta": None if opts.tta is None else {"scales": list(opts.tta.scales), "flip": opts.tta.flip},
    }  # fmt: skip
    progress, epoch = describe_progress(load_checkpoint(ckpt), ckpt.name)
    meta["checkpoint_epoch"] = epoch
    write_report(results, meta, out, resolution)
    files = "eval.json, eval.csv, iou_*.png, confusion_*.png"
    report = f"scored {ckpt}: {progress}\n{format_table(results, resolution)}"
    report += f"\nevaluated in {seconds:.1f} s\nreport: {out} ({files})"
    return f"{report}\n{skipped.report()}" if skipped.counts else report


def mean_of(results: list[EvalResult], head: str, dataset: str, target: str, group: str = "miou") -> float:
    """Look one number up in a result list (``nan`` when absent); handy in tests and scripts."""
    for r in results:
        if (r.head, r.dataset, r.target) == (head, dataset, target):
            return r.means.get(group, math.nan)
    return math.nan
