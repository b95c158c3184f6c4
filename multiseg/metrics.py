"""Confusion-matrix segmentation metrics, accumulated on the device and mergeable across ranks.

One module for training validation and ``multiseg eval``, so the two always report the same number.

Definitions follow the official evaluators (specs/datasets.md §1.5 and §3.3):

* ground-truth pixels equal to ``ignore_index`` are dropped;
* a prediction outside the class set (e.g. "void" from a label-id file) on a valid pixel is a miss: it
  adds to that class's false negatives and to nobody's false positives (Cityscapes' rule);
* a class absent from both ground truth and prediction has IoU ``nan`` ("n/a"), never 0 or 1, and mean
  IoU is taken over the classes that are not ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from multiseg.labels import GTSDB_BACKGROUND, GTSDB_CATEGORIES, gtsdb_class_categories


class ConfusionMatrix:
    """A ``num_classes x (num_classes + 1)`` count matrix: rows = ground truth, columns = prediction.

    The extra last column counts predictions outside ``[0, num_classes)`` on valid pixels.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes + 1, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted class maps and ground-truth maps of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        n = self.num_classes
        target = target.reshape(-1).to(self.mat.device, torch.int64)
        pred = pred.reshape(-1).to(self.mat.device, torch.int64)
        valid = (target != self.ignore_index) & (target >= 0) & (target < n)
        target, pred = target[valid], pred[valid]
        pred = torch.where((pred >= 0) & (pred < n), pred, torch.full_like(pred, n))
        self.mat += torch.bincount(target * (n + 1) + pred, minlength=n * (n + 1)).reshape(n, n + 1)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same class count (e.g. from another evaluation shard)."""
        self.mat += other.mat.to(self.mat.device)

    def all_reduce(self) -> None:
        """Sum the matrix over all ranks of the default process group (no-op without one)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat, op=dist.ReduceOp.SUM)

    def reset(self) -> None:
        self.mat.zero_()

    def iou(self) -> torch.Tensor:
        """Per-class IoU as float64; ``nan`` where the class is in neither ground truth nor prediction."""
        mat = self.mat.double()
        tp = mat.diagonal()
        fn = mat.sum(dim=1) - tp
        fp = mat[:, : self.num_classes].sum(dim=0) - tp
        denom = tp + fp + fn
        return torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over ``classes`` (default: all), ignoring ``nan`` classes; ``nan`` if none is left."""
        iou = self.iou()
        if classes is not None:
            iou = iou[list(classes)]
        iou = iou[~iou.isnan()]
        return float(iou.mean()) if iou.numel() else float("nan")

    def _foreground(self, background: int) -> list[int]:
        return [c for c in range(self.num_classes) if c != background]

    def foreground_iou(self, background: int) -> float:
        """IoU of "any class but ``background``", whatever the class: how well objects are found.

        With GTSDB's 43 signs this separates finding a sign from naming it, which the sign mIoU mixes.
        A prediction outside the class set counts as neither foreground nor background (a miss on a
        foreground pixel). ``nan`` when no pixel is foreground in ground truth or prediction.
        """
        fg = self._foreground(background)
        mat = self.mat.double()
        tp = mat[fg][:, fg].sum()
        fn = mat[fg].sum() - tp
        fp = mat[background, fg].sum()
        denom = tp + fn + fp
        return float(tp / denom) if denom > 0 else float("nan")

    def foreground_accuracy(self, background: int, class_groups: Sequence[int] | None = None) -> float:
        """Of the pixels that are foreground in ground truth and prediction, the share of the right class.

        The other half of :meth:`foreground_iou`: given that an object was found, was it named right?
        With ``class_groups`` (a group id per class) a pixel counts as right when the predicted class is
        in the true class's group: e.g. a GTSDB sign of the right category, whatever its glyph.
        ``nan`` when no such pixel exists.
        """
        fg = self._foreground(background)
        found = self.mat[fg][:, fg]
        total = found.sum()
        if total == 0:
            return float("nan")
        if class_groups is None:
            return float(found.diagonal().sum().item() / total.item())
        if len(class_groups) != self.num_classes:
            raise ValueError(f"class_groups has {len(class_groups)} entries for {self.num_classes} classes")
        group = torch.as_tensor(class_groups, device=found.device)[fg]
        return float(found[group[:, None] == group[None, :]].sum().item() / total.item())

    def pixel_accuracy(self) -> float:
        """Correct valid pixels / all valid pixels."""
        total = self.mat.sum()
        return float(self.mat.diagonal().sum().item() / total.item()) if total > 0 else float("nan")

    def gt_pixels(self) -> torch.Tensor:
        """Valid ground-truth pixels of each class (row sums)."""
        return self.mat.sum(dim=1)

    def normalized(self) -> torch.Tensor:
        """Row-normalised matrix (float64, ``n x (n + 1)``): the share of each class's pixels per prediction.

        The last column is the share predicted outside the class set; rows of classes absent from the
        ground truth are ``nan`` (nothing to normalise).
        """
        mat = self.mat.double()
        rows = mat.sum(dim=1, keepdim=True)
        return torch.where(rows > 0, mat / rows.clamp(min=1), torch.full_like(mat, float("nan")))


def sign_scores(cm: ConfusionMatrix) -> dict[str, float]:
    """A GTSDB head's matrix (against true masks or box targets), split where a low sign mIoU comes from.

    * ``sign_iou``: "any sign" against background: were the signs found?
    * ``sign_category_accuracy``: of the sign pixels found, the share given a sign of the right category
      (prohibitory, mandatory, danger, other: the shape and colours the GTSDB detection benchmark scores);
    * ``sign_accuracy``: the share given the right one of the 43 classes (the glyph inside too).
    """
    categories = [*gtsdb_class_categories().tolist(), len(GTSDB_CATEGORIES)]  # background: a group alone
    return {
        "sign_iou": cm.foreground_iou(GTSDB_BACKGROUND),
        "sign_category_accuracy": cm.foreground_accuracy(GTSDB_BACKGROUND, categories),
        "sign_accuracy": cm.foreground_accuracy(GTSDB_BACKGROUND),
    }
