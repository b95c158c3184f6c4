"""Confusion-matrix metrics: hand-computed cases, void handling, n/a classes, a numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from multiseg.metrics import ConfusionMatrix, sign_scores


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


def test_cityscapes_rules_on_label_ids_hand_computed() -> None:
    """specs 1.5 on a 2x4 label-id frame: void GT ignored, void prediction a miss, absent classes n/a."""
    from multiseg.labels import cityscapes_id_to_train_id_lut

    lut = torch.from_numpy(cityscapes_id_to_train_id_lut().astype(np.int64))
    # label ids: 7 road, 8 sidewalk, 26 car, 0 unlabeled (void), 9 parking (ignored in eval)
    gt = torch.tensor([[7, 7, 7, 8], [26, 0, 9, 26]])
    pr = torch.tensor([[7, 0, 8, 8], [26, 26, 26, 7]])  # a void prediction on road; car on void/parking
    cm = ConfusionMatrix(19)
    cm.update(lut[pr], lut[gt])
    iou = cm.iou()
    # road: TP 1, FN 2 (one predicted void, one sidewalk), FP 1 (the car GT pixel predicted road) -> 1/4
    assert math.isclose(iou[0].item(), 1 / 4)
    # sidewalk: TP 1, FP 1 (road pixel) -> 1/2 ; car: TP 1, FN 1, FP 0 (void/parking GT add no FP) -> 1/2
    assert math.isclose(iou[1].item(), 1 / 2)
    assert math.isclose(iou[13].item(), 1 / 2)
    assert sum(not math.isnan(v) for v in iou.tolist()) == 3, "the 16 absent classes are n/a"
    assert math.isclose(cm.miou(), (1 / 4 + 1 / 2 + 1 / 2) / 3)
    assert math.isclose(cm.pixel_accuracy(), 3 / 6)
    assert cm.mat.sum() == 6 and cm.mat[0, 19] == 1  # 6 valid pixels; the void prediction in "outside"


def test_foreground_iou_and_accuracy_split_finding_from_naming() -> None:
    """Classes 0 and 1 are signs, 2 is background; 255 GT pixels are ignored, 7 is outside the set."""
    gt = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 255, 0])
    pr = torch.tensor([0, 1, 2, 1, 0, 2, 1, 2, 0, 7])
    cm = ConfusionMatrix(3)
    cm.update(pr, gt)
    # found: gt 0->0, 0->1, 1->1, 1->0 = 4; missed: gt 0->2, gt 0->7 = 2; false alarm: gt 2->1 = 1
    assert math.isclose(cm.foreground_iou(background=2), 4 / (4 + 2 + 1))
    assert math.isclose(cm.foreground_accuracy(background=2), 2 / 4)  # 0->0 and 1->1 of the 4 found
    perfect_finder = ConfusionMatrix(3)
    perfect_finder.update(torch.tensor([1, 0, 2]), torch.tensor([0, 1, 2]))
    assert perfect_finder.foreground_iou(2) == 1.0 and perfect_finder.foreground_accuracy(2) == 0.0
    assert perfect_finder.miou([0, 1]) == 0.0  # which the sign mIoU alone cannot tell apart from missing
    no_signs = ConfusionMatrix(3)
    no_signs.update(torch.tensor([2, 2]), torch.tensor([2, 2]))
    assert math.isnan(no_signs.foreground_iou(2)) and math.isnan(no_signs.foreground_accuracy(2))


def test_foreground_accuracy_with_class_groups_counts_the_right_group_as_right() -> None:
    """Classes 0 and 1 form one group, 2 another, 3 is background."""
    gt = torch.tensor([0, 0, 1, 2, 2, 3])
    pr = torch.tensor([0, 1, 2, 2, 3, 3])  # right, same group, other group, right, missed, background
    cm = ConfusionMatrix(4)
    cm.update(pr, gt)
    assert math.isclose(cm.foreground_accuracy(3), 2 / 4)
    assert math.isclose(cm.foreground_accuracy(3, class_groups=[0, 0, 1, 2]), 3 / 4)
    assert math.isclose(cm.foreground_accuracy(3, class_groups=[5, 5, 5, 5]), 1.0)  # background stays out
    with pytest.raises(ValueError, match="class_groups has 3 entries for 4 classes"):
        cm.foreground_accuracy(3, class_groups=[0, 0, 1])


def test_sign_scores_split_finding_category_and_class() -> None:
    """Speed limits 30 and 50 share the prohibitory category; stop is in "other"; 43 is background."""
    gt = torch.tensor([1, 1, 1, 1, 14, 43, 43])
    pr = torch.tensor([1, 2, 2, 14, 43, 43, 1])
    cm = ConfusionMatrix(44)
    cm.update(pr, gt)
    scores = sign_scores(cm)
    assert math.isclose(scores["sign_iou"], 4 / (4 + 1 + 1))  # 4 found, the stop sign missed, 1 false alarm
    assert math.isclose(scores["sign_category_accuracy"], 3 / 4)  # 30 -> 30, 30 -> 50 twice; not 30 -> stop
    assert math.isclose(scores["sign_accuracy"], 1 / 4)


def test_absent_class_in_subset_mean_and_all_nan() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0]), torch.tensor([0, 0]))
    assert cm.miou(classes=[0, 1, 2]) == 1.0  # classes 1 and 2 are n/a, not 0
    assert math.isnan(cm.miou(classes=[1, 2]))
    assert math.isnan(ConfusionMatrix(2).pixel_accuracy())


def test_normalized_confusion_rows() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1, 1, 9]), torch.tensor([0, 0, 1, 1, 1]))
    norm = cm.normalized()
    assert norm.shape == (3, 4)
    assert torch.allclose(norm[0], torch.tensor([0.5, 0.5, 0, 0], dtype=torch.float64))
    assert torch.allclose(norm[1], torch.tensor([0, 2 / 3, 0, 1 / 3], dtype=torch.float64))
    assert norm[2].isnan().all(), "class 2 has no ground truth: its row is n/a"
    assert cm.gt_pixels().tolist() == [2, 3, 0]
