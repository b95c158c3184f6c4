"""Confusion-matrix metrics: hand-computed cases, void handling, n/a classes, a numpy reference."""

from __future__ import annotations

import math

import numpy as np
import torch

from multiseg.evaluate.metrics import ConfusionMatrix


def test_hand_computed_iou() -> None:
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pr = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4)
    cm.update(pr, gt)
    iou = cm.iou()
    # class 0: TP 1, FP 1 (gt 2 -> pred 0), FN 1 (gt 0 -> pred 1) -> 1/3
    # class 1: TP 2, FP 1, FN 0 -> 2/3 ; class 2: TP 1, FP 0 (ignored pixels add nothing), FN 1 -> 1/2
    assert math.isclose(iou[0].item(), 1 / 3)
    assert math.isclose(iou[1].item(), 2 / 3)
    assert math.isclose(iou[2].item(), 1 / 2)
    assert math.isnan(iou[3].item()), "a class in neither GT nor prediction is n/a"
    assert math.isclose(cm.miou(), (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert math.isclose(cm.miou(classes=[1, 3]), 2 / 3)
    assert math.isclose(cm.pixel_accuracy(), 4 / 6)


def test_void_prediction_on_valid_pixel_is_a_miss() -> None:
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 255, 1, 7]), torch.tensor([0, 0, 1, 1]))
    iou = cm.iou()
    assert math.isclose(iou[0].item(), 1 / 2)  # the 255 prediction is a false negative of class 0
    assert math.isclose(iou[1].item(), 1 / 2)  # so is the out-of-range 7 for class 1
    assert cm.mat[:, :2].sum() == 2  # neither adds a false positive anywhere


def test_class_only_predicted_counts_as_zero() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 2]), torch.tensor([0, 0]))
    iou = cm.iou()
    assert iou[2].item() == 0.0 and math.isnan(iou[1].item())


def _numpy_iou(pred: np.ndarray, gt: np.ndarray, n: int) -> np.ndarray:
    valid = gt != 255
    conf = np.zeros((n, n), np.int64)
    np.add.at(conf, (gt[valid], pred[valid]), 1)
    tp = np.diag(conf).astype(float)
    denom = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def test_matches_numpy_reference_and_merges() -> None:
    rng = np.random.default_rng(0)
    n = 19
    full = ConfusionMatrix(n)
    parts = [ConfusionMatrix(n), ConfusionMatrix(n)]
    preds, gts = [], []
    for i in range(4):
        gt = rng.integers(0, n, (32, 48))
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, n, gt.shape)) % 256
        pred = np.where(pred == 255, 0, pred)
        preds.append(pred)
        gts.append(gt)
        full.update(torch.from_numpy(pred), torch.from_numpy(gt))
        parts[i % 2].update(torch.from_numpy(pred), torch.from_numpy(gt))
    ref = _numpy_iou(np.stack(preds), np.stack(gts), n)
    np.testing.assert_allclose(full.iou().numpy(), ref, rtol=1e-12)
    parts[0].merge(parts[1])
    assert torch.equal(parts[0].mat, full.mat)
