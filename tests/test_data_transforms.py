"""Transforms: the resize rule, crops with ignore padding, mirrored flips, and boxes that follow exactly."""

from __future__ import annotations

import numpy as np
import pytest

from multiseg.data.boxes import pixel_span, rasterise_boxes
from multiseg.data.sample import Mirror, Sample, swap_lut
from multiseg.data.transforms import (
    EvalTransform,
    TrainTransform,
    TransformConfig,
    box_crop,
    clip_boxes,
    crop,
    fit_scale,
    hflip,
    resize,
)
from multiseg.labels import GTSDB_MIRROR_PAIRS, GTSDB_NUM_CLASSES, gtsdb_class_shapes, gtsdb_mirror_map

BG = GTSDB_NUM_CLASSES


def _scene(
    rng: np.random.Generator, w: int = 340, h: int = 200, n: int = 5, classes: list[int] | None = None
) -> Sample:
    """A frame with ``n`` boxes and, as label, their true per-pixel mask (box policy, class per box)."""
    boxes, drawn = [], []
    for _ in range(n):
        x1, y1 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        bw, bh = int(rng.integers(17, 40)), int(rng.integers(17, 40))
        boxes.append((x1, y1, x1 + bw, y1 + bh))
        drawn.append(int(rng.choice([12, 13, 15, 17, 19, 20, 33, 34, 38, 39])))
    boxes_arr = np.array(boxes, np.float64)
    classes_arr = np.array(classes if classes is not None else drawn, np.int64)
    valid = np.zeros((h, w), np.uint8)
    mask = rasterise_boxes(valid, boxes_arr, classes_arr, policy="box", background=BG)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Sample(image=image, label=mask, boxes=boxes_arr, box_classes=classes_arr)


def test_fit_scale_is_the_paper_rule() -> None:
    assert fit_scale(2048, 1024, 1024, 512, True) == 0.5
    assert fit_scale(1360, 800, 1024, 512, True) == pytest.approx(0.64)
    assert fit_scale(3984, 2988, 1024, 512, True) == pytest.approx(512 / 2988)
    assert fit_scale(512, 256, 1024, 512, True) == 2.0
    assert fit_scale(512, 256, 1024, 512, False) == 1.0
    assert fit_scale(512, 256, None, None, True) == 1.0


def test_original_gtsdb_box_covers_its_inclusive_pixels() -> None:
    valid = np.zeros((800, 1360), np.uint8)
    label = rasterise_boxes(
        valid, np.array([[774, 411, 816, 447]], np.float32), np.array([11]), background=BG
    )
    ys, xs = np.nonzero(label == 11)
    assert (xs.min(), ys.min(), xs.max(), ys.max(), xs.size) == (774, 411, 815, 446, 42 * 36)
    assert pixel_span(774, 816, 1360) == (774, 816)


@pytest.mark.parametrize("seed", range(24))
def test_boxes_follow_scale_crop_and_flip_exactly(seed: int) -> None:
    """Rasterising the transformed boxes gives exactly the true mask transformed as a label."""
    rng = np.random.default_rng(seed)
    sample = _scene(rng)
    cfg = TransformConfig(
        fit_width=1024, fit_height=512, scale_range=(0.5, 2.0), crop_height=160, crop_width=300
    )
    mirror = Mirror(label_lut=swap_lut(GTSDB_MIRROR_PAIRS), box_class_map=gtsdb_mirror_map())
    out = TrainTransform(cfg)(sample, mirror, np.random.default_rng(seed + 100))
    assert out.image.shape == (160, 300, 3) and out.label.shape == (160, 300)
    valid = np.where(out.label == 255, 255, 0).astype(np.uint8)
    redrawn = rasterise_boxes(valid, out.boxes, out.box_classes, policy="box", background=BG)
    np.testing.assert_array_equal(redrawn, out.label)


@pytest.mark.parametrize("seed", range(12))
def test_box_crop_contains_a_whole_box_and_stays_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sample = _scene(rng, n=2)
    out = box_crop(sample, 64, 96, np.random.default_rng(seed))
    assert out.image.shape == (64, 96, 3)
    inside = (out.boxes[:, :2] >= 0).all(1) & (out.boxes[:, 2] <= 96) & (out.boxes[:, 3] <= 64)
    assert inside.any()
    valid = np.where(out.label == 255, 255, 0).astype(np.uint8)
    redrawn = rasterise_boxes(valid, out.boxes, out.box_classes, policy="box", background=BG)
    np.testing.assert_array_equal(redrawn, out.label)


def test_box_crop_positions_are_uniform_over_the_windows_holding_the_box() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    sample = Sample(image, np.zeros((100, 200), np.uint8), np.array([[90.0, 40, 110, 60]]), np.array([1]))
    lefts = {int(-box_crop(sample, 100, 50, np.random.default_rng(s)).boxes[0, 0]) + 90 for s in range(400)}
    assert lefts == set(range(60, 91))  # every left edge from 110 - 50 to 90, and nothing else
    wide = Sample(image, np.zeros((100, 200), np.uint8), np.array([[20.0, 0, 180, 100]]), np.array([1]))
    assert box_crop(wide, 100, 50, np.random.default_rng(0)).boxes[0, 0] == 20 - 75  # centred


def test_train_transform_box_crop_prob_only_affects_samples_with_boxes() -> None:
    cfg = TransformConfig(fit_width=None, fit_height=None, scale_range=(1, 1), crop_height=20, crop_width=20,
                          flip_prob=0.0, box_crop_prob=1.0)  # fmt: skip
    image = np.zeros((200, 400, 3), np.uint8)
    box = Sample(image, np.zeros((200, 400), np.uint8), np.array([[300.0, 150, 310, 160]]), np.array([1]))
    for s in range(20):
        out = TrainTransform(cfg)(box, Mirror(), np.random.default_rng(s))
        assert (out.boxes[0, :2] >= 0).all() and (out.boxes[0, 2:] <= 20).all()
    plain = Sample(image, np.zeros((200, 400), np.uint8), np.zeros((0, 4)), np.zeros(0, np.int64))
    assert TrainTransform(cfg)(plain, Mirror(), np.random.default_rng(0)).image.shape == (20, 20, 3)


def test_flip_mirrors_boxes_and_classes() -> None:
    rng = np.random.default_rng(0)
    sample = _scene(rng, n=3, classes=[19, 33, 38])
    flipped = hflip(sample, Mirror(label_lut=swap_lut(GTSDB_MIRROR_PAIRS), box_class_map=gtsdb_mirror_map()))
    assert flipped.box_classes.tolist() == [20, 34, 39]
    w = sample.image.shape[1]
    np.testing.assert_array_equal(flipped.boxes[:, 0], w - sample.boxes[:, 2])
    np.testing.assert_array_equal(flipped.image, sample.image[:, ::-1])
    # label classes swapped through the LUT as well
    assert set(np.unique(flipped.label).tolist()) - {BG} <= {20, 34, 39}
    twice = hflip(flipped, Mirror(label_lut=swap_lut(GTSDB_MIRROR_PAIRS), box_class_map=gtsdb_mirror_map()))
    np.testing.assert_array_equal(twice.label, sample.label)
    np.testing.assert_array_equal(twice.box_classes, sample.box_classes)


def test_gtsdb_mirror_map_is_an_involution_with_the_issue_pairs() -> None:
    m = gtsdb_mirror_map()
    for a, b in [(33, 34), (36, 37), (38, 39), (19, 20)]:
        assert (m[a], m[b]) == (b, a)
    twins = m >= 0
    np.testing.assert_array_equal(m[m[twins]], np.flatnonzero(twins))
    assert m[24] == -1 and m[40] == -1


def test_class_without_twin_vetoes_the_flip() -> None:
    rng = np.random.default_rng(1)
    sample = _scene(rng, n=2)
    sample.box_classes[:] = [38, 24]
    mirror = Mirror(box_class_map=gtsdb_mirror_map())
    assert not mirror.can_flip(sample.box_classes)
    cfg = TransformConfig(
        fit_width=None, fit_height=None, scale_range=(1, 1), crop_height=None, flip_prob=1.0
    )
    out = TrainTransform(cfg)(sample, mirror, rng)
    assert not out.flipped
    np.testing.assert_array_equal(out.image, sample.image)
    sample.box_classes[:] = [38, 38]
    assert TrainTransform(cfg)(sample, mirror, rng).flipped


def test_crop_pads_with_zero_image_and_ignore_label() -> None:
    s = Sample(
        image=np.full((10, 20, 3), 7, np.uint8),
        label=np.ones((10, 20), np.uint8),
        boxes=np.array([[15, 2, 25, 8]], np.float32),
        box_classes=np.array([3]),
    )
    out = crop(s, 0, 10, 16, 16)
    assert out.image.shape == (16, 16, 3)
    assert (out.image[10:] == 0).all() and (out.image[:, 10:] == 0).all() and (out.image[:10, :10] == 7).all()
    assert (out.label[10:] == 255).all() and (out.label[:10, :10] == 1).all()
    np.testing.assert_array_equal(out.boxes, [[5, 2, 15, 8]])
    boxes, classes = clip_boxes(out.boxes, out.box_classes, 10, 10)
    np.testing.assert_array_equal(boxes, [[5, 2, 10, 8]])
    boxes, classes = clip_boxes(np.array([[12, 0, 14, 3]], np.float32), np.array([1]), 10, 10)
    assert boxes.shape == (0, 4) and classes.shape == (0,)


def test_resize_labels_are_nearest_only() -> None:
    rng = np.random.default_rng(3)
    s = Sample(
        image=rng.integers(0, 255, (37, 53, 3), dtype=np.uint8),
        label=rng.choice(np.array([0, 5, 255], np.uint8), (37, 53)),
        boxes=np.zeros((0, 4), np.float32),
        box_classes=np.zeros(0, np.int64),
    )
    for scale in (0.37, 0.5, 1.3, 2.0):
        out = resize(s, scale)
        assert set(np.unique(out.label)) <= {0, 5, 255}
        h, w = out.label.shape
        src_y = np.floor((np.arange(h) + 0.5) * 37 / h).astype(int)
        src_x = np.floor((np.arange(w) + 0.5) * 53 / w).astype(int)
        np.testing.assert_array_equal(out.label, s.label[src_y][:, src_x])


def test_shape_policy_outlines_and_ignore_ring() -> None:
    valid = np.zeros((100, 100), np.uint8)
    shapes = gtsdb_class_shapes()
    box = np.array([[20, 20, 60, 60]], np.float32)
    areas = {}
    for cls in (1, 18, 13, 14, 12):  # disc, triangle, inverted triangle, octagon, diamond
        label = rasterise_boxes(
            valid, box, np.array([cls]), policy="shape", background=BG, class_shapes=shapes
        )
        area = int((label == cls).sum())
        assert set(np.unique(label)) == {cls, BG}
        ys, xs = np.nonzero(label == cls)
        assert xs.min() >= 20 and xs.max() < 60 and ys.min() >= 20 and ys.max() < 60
        areas[cls] = area / 1600
    assert areas[1] == pytest.approx(np.pi / 4, abs=0.03)
    assert areas[18] == pytest.approx(0.5, abs=0.03) and areas[13] == pytest.approx(0.5, abs=0.03)
    assert areas[14] == pytest.approx(2 * np.sqrt(2) - 2, abs=0.03)  # regular octagon in a square
    assert areas[12] == pytest.approx(0.5, abs=0.03)
    tri = rasterise_boxes(valid, box, np.array([18]), policy="shape", background=BG, class_shapes=shapes)
    assert (tri[22, 39:41] == 18).any() and tri[21, 20] == BG and tri[58, 21] == 18  # apex up
    inv = rasterise_boxes(valid, box, np.array([13]), policy="shape", background=BG, class_shapes=shapes)
    np.testing.assert_array_equal(inv[20:60] == 13, (tri[20:60] == 18)[::-1])  # mirror image vertically
    ring = rasterise_boxes(valid, box, np.array([5]), policy="box", ring=2, background=BG)
    assert (ring[22:58, 22:58] == 5).all() and set(np.unique(ring[20:60, 20:60]).tolist()) == {5, 255}
    assert (ring[18:22, 21:59] == 255).all() and (ring[58:62, 21:59] == 255).all()
    assert (ring[21:59, 18:22] == 255).all() and (ring[17, :] == BG).all() and (ring[:, 62] == BG).all()
    assert ring[18, 18] == BG  # the ring is within 2 px of the outline (round corners)


def test_rasterise_keeps_padding_ignored_and_draws_boxes_cut_by_the_frame() -> None:
    valid = np.zeros((40, 40), np.uint8)
    valid[:, 30:] = 255
    shapes = gtsdb_class_shapes()
    label = rasterise_boxes(
        valid,
        np.array([[-20, 0, 20, 40]], np.float32),
        np.array([1]),
        policy="shape",
        background=BG,
        class_shapes=shapes,
    )
    assert (label[:, 30:] == 255).all()
    assert (
        label[20, 0] == 1 and label[20, 19] == 1 and label[0, 15] == BG
    )  # right half of a disc centred at x=0


def test_eval_transform_only_resizes() -> None:
    rng = np.random.default_rng(0)
    sample = _scene(rng)
    out = EvalTransform(1024, 512)(sample, Mirror(), rng)
    assert out.image.shape == (512, 870, 3)
    assert EvalTransform()(sample, Mirror(), rng) is sample
