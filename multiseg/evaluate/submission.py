"""Cityscapes benchmark submissions: the file format of the official server, and its evaluator's rules.

The official ``evalPixelLevelSemanticLabeling.py`` (specs section 1.5) takes single-channel PNGs of
Cityscapes **label ids** (not train ids), the same size as the ground truth, found recursively and matched
to each ground-truth frame by the pattern ``<city>_<seq>_<frame>*.png``, exactly one per frame.
``multiseg predict --submission`` writes ``cityscapes_submission/<city>_<seq>_<frame>_leftImg8bit.png``
at the photos' full resolution and zips the folder for upload; :func:`evaluate_results` scores such a
folder against ``gtFine`` label ids with the same rules (so a val-set submission can be checked locally).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from multiseg.data.base import first_few
from multiseg.data.io import read_label
from multiseg.errors import MultisegError
from multiseg.evaluate.report import EvalResult
from multiseg.labels import CITYSCAPES_CLASSES, cityscapes_id_to_train_id_lut
from multiseg.metrics import ConfusionMatrix

#: ``<city>_<seq>_<frame>`` at the start of a Cityscapes file name.
FRAME_ID = re.compile(r"^([a-z]+)_(\d{6})_(\d{6})")
#: Label ids the official script accepts in a prediction (0..33).
MAX_LABEL_ID = 33


def frame_id(name: str) -> str | None:
    """``frankfurt_000000_000294_leftImg8bit.png`` -> ``frankfurt_000000_000294``; None for other names."""
    match = FRAME_ID.match(name)
    return match.group(0) if match else None


def check_submission_names(names: Sequence[str]) -> None:
    """Raise, naming the first few, when some image names are not ``<city>_<seq>_<frame>...`` frames."""
    bad = [n for n in names if frame_id(n) is None]
    if bad:
        raise MultisegError(
            f"--submission: {len(bad)} image names are not Cityscapes frames <city>_<seq>_<frame>*: "
            f"{first_few(bad)}"
        )


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip every PNG of ``folder`` (flat, stored: PNGs are compressed already) into ``target``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for png in sorted(folder.glob("*.png")):
            zf.write(png, arcname=png.name)
    return target


def read_prediction(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A label-id prediction PNG, checked as the official script does (one channel, size, ids 0..33)."""
    pred = read_label(path)  # palette PNGs come back as their indices
    if pred.shape != shape:
        raise MultisegError(
            f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]}, ground truth {shape[1]}x{shape[0]}"
        )
    if pred.max(initial=0) > MAX_LABEL_ID:
        raise MultisegError(
            f"{path}: value {int(pred.max())} is not a Cityscapes label id (0..{MAX_LABEL_ID})"
        )
    return pred


def evaluate_results(results_dir: Path, gt_dir: Path) -> EvalResult:
    """Score label-id PNGs under ``results_dir`` against ``gt_dir/**/*_gtFine_labelIds.png`` (specs 1.5).

    GT ids map to train ids (void -> ignored); a predicted id outside the 19 train classes on a valid
    pixel is a miss, never ignored.
    """
    gts = sorted(Path(gt_dir).rglob("*_gtFine_labelIds.png"))
    if not gts:
        raise MultisegError(f"{gt_dir}: no *_gtFine_labelIds.png files")
    preds: dict[str, list[Path]] = {}
    for p in Path(results_dir).rglob("*.png"):
        if (fid := frame_id(p.name)) is not None:
            preds.setdefault(fid, []).append(p)
    lut = torch.from_numpy(cityscapes_id_to_train_id_lut().astype(np.int64))
    cm = ConfusionMatrix(len(CITYSCAPES_CLASSES))
    for gt_path in gts:
        fid = frame_id(gt_path.name)
        found = preds.get(fid or "", [])
        if len(found) != 1:
            raise MultisegError(f"{results_dir}: {len(found)} predictions match {fid} (exactly one needed)")
        gt = read_label(gt_path)
        pred = read_prediction(found[0], gt.shape)
        cm.update(lut[torch.from_numpy(pred.astype(np.int64))], lut[torch.from_numpy(gt.astype(np.int64))])
    groups = {"miou": tuple(range(len(CITYSCAPES_CLASSES)))}
    return EvalResult(
        head="cityscapes", dataset="cityscapes", split=Path(gt_dir).name, target="label-id files",
        classes=CITYSCAPES_CLASSES, groups=groups, iou=cm.iou().tolist(), confusion=cm.mat.tolist(),
        pixel_accuracy=cm.pixel_accuracy(), images=len(gts), means={"miou": cm.miou()},
    )  # fmt: skip
