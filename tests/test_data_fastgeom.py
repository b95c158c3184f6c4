"""The fused flip + resize + crop (multiseg.data.fastgeom) against the step-by-step transforms.

Contract: labels and boxes identical to ``hflip -> resize -> crop``, images equal without a flip
and within 1 grey level with one (mirror symmetry of bilinear resampling, up to float rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

from multiseg.data.boxes import rasterise_boxes
from multiseg.data.fastgeom import (
    CropGeometry,
    apply_geometry,
    crop_boxes,
    crop_image,
    crop_label,
    flip_resize_boxes,
    nearest_indices,
    uniform_window,
)
from multiseg.data.sample import Mirror, Sample, swap_lut
from multiseg.data.transforms import (
    TrainTransform,
    TransformConfig,
    box_crop,
    crop,
    fit_scale,
    hflip,
    random_crop,
    resize,
)
from multiseg.data.transforms import nearest_indices as transforms_nearest_indices
from multiseg.demo.synthetic import street_like_image
from multiseg.labels import GTSDB_MIRROR_PAIRS, GTSDB_NUM_CLASSES, gtsdb_mirror_map

BG = GTSDB_NUM_CLASSES
MIRROR = Mirror(label_lut=swap_lut(GTSDB_MIRROR_PAIRS), box_class_map=gtsdb_mirror_map())


def _sample(rng: np.random.Generator, h: int, w: int, photo: bool = False) -> Sample:
    """Random image (noise, or photo-like with hard-edged rectangles), label with mirror pairs, boxes."""
    image = street_like_image(h, w, rng) if photo else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    label = rng.choice(np.array([0, 5, 19, 20, 33, 34, 255], np.uint8), (h, w))
    x = np.sort(rng.integers(0, w + 1, (4, 2)), axis=1)
    y = np.sort(rng.integers(0, h + 1, (4, 2)), axis=1)
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], axis=1).astype(np.float64)
    classes = rng.choice(np.array([12, 19, 33, 38]), 4)
    return Sample(image=image, label=label, boxes=boxes, box_classes=classes)


def _stepwise(sample: Sample, geom: CropGeometry, scale: float, mirror: Mirror, crop_it: bool) -> Sample:
    """What transforms.py does step by step for the same flip, scale and window."""
    if geom.flip:
        sample = hflip(sample, mirror)
    sample = resize(sample, scale)
    assert sample.image.shape[:2] == (geom.resized_height, geom.resized_width)
    if crop_it:
        sample = crop(sample, geom.top, geom.left, geom.out_height, geom.out_width)
    return sample


def _assert_same(fused: Sample, reference: Sample, flipped: bool) -> None:
    assert fused.image.shape == reference.image.shape and fused.image.dtype == np.uint8
    diff = np.abs(fused.image.astype(np.int16) - reference.image.astype(np.int16))
    assert diff.max(initial=0) <= (1 if flipped else 0)
    np.testing.assert_array_equal(fused.label, reference.label)
    np.testing.assert_array_equal(fused.boxes, reference.boxes)  # bit for bit
    np.testing.assert_array_equal(fused.box_classes, reference.box_classes)
    assert fused.flipped == reference.flipped
    assert fused.image.flags.c_contiguous and fused.label.flags.c_contiguous


def _geometry(
    rng: np.random.Generator, w: int, h: int, scale: float, crop_h: int, crop_w: int
) -> CropGeometry:
    """A flip/scale geometry with a window anywhere the random or box crops could put it."""
    whole = CropGeometry.whole(w, h, scale, bool(rng.random() < 0.5))
    top = int(rng.integers(0, max(whole.resized_height - crop_h, 0) + 1))
    left = int(rng.integers(0, max(whole.resized_width - crop_w, 0) + 1))
    return whole.with_window(top, left, crop_h, crop_w)


@pytest.mark.parametrize("seed", range(40))
def test_fused_matches_flip_resize_crop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 160)), int(rng.integers(1, 240))
    sample = _sample(rng, h, w, photo=seed % 2 == 0 and min(h, w) >= 64)
    scale = float(rng.choice([0.25, 0.5, 1.0, 2.0, rng.uniform(0.2, 3.0), rng.uniform(0.2, 3.0)]))
    geom = _geometry(rng, w, h, scale, int(rng.integers(1, 200)), int(rng.integers(1, 260)))
    _assert_same(
        apply_geometry(sample, MIRROR, geom), _stepwise(sample, geom, scale, MIRROR, True), geom.flip
    )


@pytest.mark.parametrize("seed", range(4))
def test_fused_matches_at_cityscapes_size_with_the_paper_scales(seed: int) -> None:
    """2048x1024 frames, fit 1024x512, scale [0.5, 2], 512x1024 crops: most pixels never resampled."""
    rng = np.random.default_rng(seed)
    sample = _sample(rng, 1024, 2048, photo=True)
    for scale in (0.25, 0.5, 1.0, 0.5 * float(rng.uniform(0.5, 2.0))):
        geom = _geometry(rng, 2048, 1024, scale, 512, 1024)
        _assert_same(
            apply_geometry(sample, MIRROR, geom), _stepwise(sample, geom, scale, MIRROR, True), geom.flip
        )


@pytest.mark.parametrize("flip", [False, True])
def test_no_crop_gives_the_whole_resized_frame(flip: bool) -> None:
    sample = _sample(np.random.default_rng(3), 90, 130)
    geom = CropGeometry.whole(130, 90, 0.77, flip)
    fused = apply_geometry(sample, MIRROR, geom)
    assert fused.image.shape == (69, 100, 3)
    _assert_same(fused, _stepwise(sample, geom, 0.77, MIRROR, False), flip)


def test_padding_is_zero_image_and_ignore_label() -> None:
    sample = _sample(np.random.default_rng(4), 40, 60)
    geom = CropGeometry.whole(60, 40, 0.5, True).with_window(0, 0, 32, 48)
    image = crop_image(sample.image, geom)
    label = crop_label(sample.label, geom)
    assert image.shape == (32, 48, 3) and label.shape == (32, 48)
    assert (image[20:] == 0).all() and (image[:, 30:] == 0).all()
    assert (label[20:] == 255).all() and (label[:, 30:] == 255).all()


def test_flipped_label_ties_fall_as_in_flip_then_resize() -> None:
    """6 -> 3 columns samples source positions 1, 3, 5 exactly (ties): the flip order matters there."""
    label = np.arange(6, dtype=np.uint8)[None].repeat(2, 0)
    sample = Sample(np.zeros((2, 6, 3), np.uint8), label, np.zeros((0, 4)), np.zeros(0, np.int64))
    flip_then_resize = resize(hflip(sample, Mirror()), 0.5).label
    resize_then_flip = resize(sample, 0.5).label[:, ::-1]
    assert flip_then_resize.tolist() == [[4, 2, 0]] and resize_then_flip.tolist() == [[5, 3, 1]]
    np.testing.assert_array_equal(crop_label(label, CropGeometry.whole(6, 2, 0.5, True)), flip_then_resize)


def test_single_channel_images_and_the_label_lut_only_when_flipped() -> None:
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (50, 70), dtype=np.uint8)
    label = np.full((50, 70), 33, np.uint8)
    for flip in (False, True):
        geom = CropGeometry.whole(70, 50, 1.3, flip).with_window(5, 7, 40, 60)
        out = crop_image(gray, geom)
        ref = _stepwise(Sample(gray, label, np.zeros((0, 4)), np.zeros(0, np.int64)), geom, 1.3, MIRROR, True)
        assert out.shape == (40, 60) and np.abs(out.astype(int) - ref.image).max() <= 1
        assert set(np.unique(crop_label(label, geom, MIRROR.label_lut))) == {34 if flip else 33}


@pytest.mark.parametrize("seed", range(12))
def test_rasterised_boxes_match_the_fused_mask(seed: int) -> None:
    """The exact box/label agreement of transforms.py holds through the fused path, flips included."""
    rng = np.random.default_rng(seed)
    sample = _sample(rng, 200, 340)
    sample.box_classes[:] = rng.choice(np.array([12, 19, 33, 38]), len(sample.boxes))
    valid = np.zeros((200, 340), np.uint8)
    sample.label = rasterise_boxes(valid, sample.boxes, sample.box_classes, policy="box", background=BG)
    geom = _geometry(rng, 340, 200, float(rng.uniform(0.3, 2.5)), 160, 300)
    out = apply_geometry(sample, MIRROR, geom)
    padding = np.where(out.label == 255, 255, 0).astype(np.uint8)
    redrawn = rasterise_boxes(padding, out.boxes, out.box_classes, policy="box", background=BG)
    np.testing.assert_array_equal(redrawn, out.label)


def test_boxes_before_the_crop_are_what_box_crop_sees() -> None:
    rng = np.random.default_rng(6)
    sample = _sample(rng, 120, 200)
    geom = CropGeometry.whole(200, 120, 1.7, True)
    stepwise = resize(hflip(sample, MIRROR), 1.7)
    np.testing.assert_array_equal(flip_resize_boxes(sample.boxes, geom), stepwise.boxes)
    window = geom.with_window(9, 11, 64, 96)
    np.testing.assert_array_equal(crop_boxes(sample.boxes, window), stepwise.boxes - [11, 9, 11, 9])


def test_uniform_window_draws_like_random_crop() -> None:
    sample = _sample(np.random.default_rng(7), 300, 500)
    geom = CropGeometry.whole(500, 300, 1.0, False)
    for seed in range(20):
        top, left = uniform_window(geom, 128, 256, np.random.default_rng(seed))
        ref = random_crop(sample, 128, 256, np.random.default_rng(seed))
        np.testing.assert_array_equal(ref.boxes, sample.boxes - [left, top, left, top])


def test_nearest_indices_is_the_transforms_rule() -> None:
    for n_src, n_dst in [(2048, 1311), (1024, 512), (7, 19), (19, 7), (1, 5), (5, 1)]:
        np.testing.assert_array_equal(nearest_indices(n_src, n_dst), transforms_nearest_indices(n_src, n_dst))


def _stepwise_train(cfg: TransformConfig, sample: Sample, mirror: Mirror, rng: np.random.Generator) -> Sample:
    """TrainTransform.__call__ written with the step-by-step primitives (its definition before fastgeom)."""
    if rng.random() < cfg.flip_prob and mirror.can_flip(sample.box_classes):
        sample = hflip(sample, mirror)
    h, w = sample.image.shape[:2]
    scale = fit_scale(w, h, cfg.fit_width, cfg.fit_height, cfg.allow_upscale)
    sample = resize(sample, scale * float(rng.uniform(*cfg.scale_range)))
    if cfg.crop_height is not None and cfg.crop_width is not None:
        if len(sample.boxes) and rng.random() < cfg.box_crop_prob:
            return box_crop(sample, cfg.crop_height, cfg.crop_width, rng)
        return random_crop(sample, cfg.crop_height, cfg.crop_width, rng)
    return sample


@pytest.mark.parametrize("seed", range(16))
def test_train_transform_matches_the_step_by_step_recipe(seed: int) -> None:
    """Guards the wiring of fastgeom into TrainTransform: same draws, same output (images +-1)."""
    rng = np.random.default_rng(seed)
    sample = _sample(rng, int(rng.integers(40, 200)), int(rng.integers(40, 300)))
    cfg = TransformConfig(
        fit_width=int(rng.integers(32, 256)), fit_height=int(rng.integers(32, 256)),
        scale_range=(0.5, 2.0), crop_height=[None, 48, 96][seed // 3 % 3], crop_width=80,
        box_crop_prob=[0.0, 0.5, 1.0][seed % 3],
    )  # fmt: skip
    fused = TrainTransform(cfg)(sample, MIRROR, np.random.default_rng(seed + 1))
    reference = _stepwise_train(cfg, sample, MIRROR, np.random.default_rng(seed + 1))
    _assert_same(fused, reference, flipped=True)
