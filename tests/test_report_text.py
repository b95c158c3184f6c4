"""What pictures and tables show (issue 21, item 8): legend names never cut, a readable confusion matrix
for many classes, a dash with a note instead of ``nan`` / ``n/a %``, and "1 thread"."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from multiseg.deploy.bench import cpu_peak_gflops
from multiseg.evaluate.report import NO_VALUE_NOTE, EvalResult, confusion_figure, format_table, legend_image
from multiseg.evaluate.unified import UNIFIED_CLASSES, UNIFIED_PALETTE
from multiseg.experiments.runner import _mean_text
from multiseg.labels import CITYSCAPES_CLASSES, GTSDB_CLASSES
from multiseg.train.summary import TrainSummary


def _result(classes: tuple[str, ...], scores: dict[str, float] | None = None) -> EvalResult:
    n = len(classes)
    confusion = np.eye(n, n + 1, dtype=np.int64) * 5
    iou = [1.0] * (n - 1) + [math.nan]
    return EvalResult(
        "head", "data", "val", "gt", classes, {"miou": tuple(range(n))}, iou, confusion.tolist(),
        pixel_accuracy=1.0, images=2, means={"miou": math.nan}, scores=scores or {},
    )  # fmt: skip


def test_legend_keeps_whole_names_so_gtsdb_60_and_61_differ() -> None:
    """The two names agree on their first 34 characters, where labels used to be cut."""
    classes = UNIFIED_CLASSES[60:62]
    assert f"60 {classes[0]}"[:34] == f"61 {classes[1]}"[:34].replace("61", "60", 1)
    row_h = 18
    img = legend_image(classes, UNIFIED_PALETTE[60:62], columns=1, row_h=row_h)
    cut = cv2.getTextSize(f"61 {classes[1]}"[:34], cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
    second_row = img[row_h + 4 : 2 * row_h + 4, 4 + 30 + cut + 4 :]
    assert (second_row < 128).any(), "the end of '(overtaking (trucks))' is drawn"
    wide = legend_image(UNIFIED_CLASSES, UNIFIED_PALETTE, columns=3)
    assert wide.shape[1] >= 3 * max(
        cv2.getTextSize(f"{i} {c}", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
        for i, c in enumerate(UNIFIED_CLASSES)
    )


def test_confusion_matrix_of_44_classes_has_readable_numbered_ticks_and_a_key() -> None:
    import matplotlib.pyplot as plt

    gtsdb = (*(c.name for c in GTSDB_CLASSES), "background")
    fig = confusion_figure(_result(gtsdb), "64x32")
    matrix, key = fig.axes[0], fig.axes[1]
    ticks = matrix.get_xticklabels()
    assert [t.get_text() for t in ticks] == [*(str(i) for i in range(44)), "(outside)"]
    assert {t.get_fontsize() for t in [*ticks, *matrix.get_yticklabels()]} == {7}
    (text,) = key.texts
    assert text.get_fontsize() == 7 and "43  background" in text.get_text()
    assert all(f"{i:>2}  {name}" in text.get_text() for i, name in enumerate(gtsdb))
    plt.close(fig)

    fig = confusion_figure(_result(CITYSCAPES_CLASSES), "64x32")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(CITYSCAPES_CLASSES)
    plt.close(fig)


def test_tables_print_a_dash_and_say_why_instead_of_nan() -> None:
    table = format_table([_result(("a", "b"), {"sign_iou": math.nan, "sign_accuracy": 0.5})], "64x32")
    assert "nan" not in table and "n/a" not in table
    assert "head on data gt: sign_iou -, sign_accuracy 50.00 %" in table
    assert NO_VALUE_NOTE in table.splitlines()
    clean = replace(_result(("a", "b")), means={"miou": 0.5})
    assert NO_VALUE_NOTE not in format_table([clean], "64x32")

    summary = TrainSummary(Path("run"), 1, 1, 0.5, {"miou/x": 0.5, "sign_iou/gtsdb": math.nan}, False, 1.0)
    lines = summary.table().splitlines()
    assert "nan" not in summary.table()
    assert any(line.split() == ["sign_iou/gtsdb", "-"] for line in lines)
    assert lines[-1].startswith("-: no value")
    assert _mean_text(math.nan) == "- (no validation score)" and _mean_text(0.4134) == "41.3 %"


def test_one_thread_and_one_core_are_singular() -> None:
    intel = "vendor_id : GenuineIntel\ncpu MHz : 3000.0\nflags : avx512f avx2 fma\n"
    assert "= 1 core x 3.00 GHz" in cpu_peak_gflops(1, intel)[1]
    assert "= 2 cores x" in cpu_peak_gflops(2, intel)[1]
