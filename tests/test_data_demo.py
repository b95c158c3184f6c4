"""The loaders on a small demo world, read as real data (its formats are the real ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multiseg.data.boxes import pixel_span, rasterise_boxes
from multiseg.data.cityscapes import CityscapesDataset
from multiseg.data.gtsdb import GtsdbDataset
from multiseg.data.pipeline import build_train_loader
from multiseg.data.transforms import TrainTransform, TransformConfig
from multiseg.data.vistas import VistasDataset

demo = pytest.importorskip("multiseg.demo.world")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9-frames-per-dataset demo world (about 3 s to write)."""
    if not hasattr(demo, "write_demo_world"):
        pytest.skip("multiseg.demo.write_demo_world is not available yet")
    root = tmp_path_factory.mktemp("demo") / "world"
    demo.write_demo_world(root, seed=0, n_frames=9)
    return root


def test_every_demo_dataset_loads(demo_root: Path) -> None:
    for split in ("train", "val"):
        ds = CityscapesDataset(demo_root / "cityscapes", split)
        item = ds[0]
        assert item["image"].shape == (3, 256, 512) and item["label"].shape == (256, 512)
        assert set(item["label"].unique().tolist()) <= set(range(19)) | {255}
    train, test = GtsdbDataset(demo_root / "gtsdb", "train"), GtsdbDataset(demo_root / "gtsdb", "test")
    assert train.n_train == len(train) and len(train) + len(test) == 9
    item = train[0]
    assert item["image"].shape == (3, 400, 680) and item["boxes"].shape[1] == 4
    assert set(item["label"].unique().tolist()) <= set(range(44))
    for split in ("training", "validation"):
        for setting in ("full", "lanes"):
            ds = VistasDataset(demo_root / "vistas", split, setting=setting)
            lab = ds[0]["label"]
            assert set(lab.unique().tolist()) <= set(range(ds.num_classes)) | {255}


def test_gtsdb_box_targets_match_the_true_masks(demo_root: Path) -> None:
    """Untransformed, the box-policy target covers exactly the true sign pixels' boxes."""
    masks = GtsdbDataset(
        demo_root / "gtsdb",
        "train",
        label_source="pixel_masks",
        pixel_masks_dir=demo_root / "gtsdb/true_masks/gtFine",
    )
    boxes = GtsdbDataset(demo_root / "gtsdb", "train", policy="box")
    for i in range(len(boxes)):
        truth, target = masks[i]["label"].numpy(), boxes[i]["label"].numpy()
        signs = truth < 43
        assert signs.any()
        np.testing.assert_array_equal(target[signs], truth[signs])
        for (x1, y1, x2, y2), c in zip(
            boxes[i]["boxes"].int().tolist(), boxes[i]["box_classes"].tolist(), strict=True
        ):
            ys, xs = np.nonzero(truth[y1:y2, x1:x2] == c)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (0, 0, x2 - x1, y2 - y1)


@pytest.mark.parametrize("seed", range(6))
def test_gtsdb_boxes_follow_flips_scales_and_crops(demo_root: Path, seed: int) -> None:
    """The same random transform applied to the true mask (as a label) and to the boxes agree exactly."""
    cfg = TransformConfig(
        fit_width=680, fit_height=400, scale_range=(1.0, 2.0), crop_height=256, crop_width=384
    )
    masks = GtsdbDataset(
        demo_root / "gtsdb",
        "train",
        label_source="pixel_masks",
        pixel_masks_dir=demo_root / "gtsdb/true_masks/gtFine",
        transform=TrainTransform(cfg),
    )
    for i in range(len(masks)):
        item = masks[(i, 1000 * seed + i)]
        truth = item["label"].numpy()
        valid = np.where(truth == 255, 255, 0).astype(np.uint8)
        target = rasterise_boxes(
            valid, item["boxes"].double().numpy(), item["box_classes"].numpy(), background=43
        )
        signs = truth < 43
        np.testing.assert_array_equal(target[signs], truth[signs])
        h, w = truth.shape
        for box, c in zip(item["boxes"].tolist(), item["box_classes"].tolist(), strict=True):
            (x1, x2), (y1, y2) = pixel_span(box[0], box[2], w), pixel_span(box[1], box[3], h)
            ys, xs = np.nonzero(truth[y1:y2, x1:x2] == c)
            if xs.size and x1 > 0 and x2 < w and y1 > 0 and y2 < h:  # box not cut by the crop: still tight
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (0, 0, x2 - x1, y2 - y1)


def test_mixed_loader_over_the_demo_world(demo_root: Path) -> None:
    cfg = TransformConfig(crop_height=128, crop_width=256)
    datasets = [
        CityscapesDataset(demo_root / "cityscapes", "train", transform=TrainTransform(cfg)),
        GtsdbDataset(demo_root / "gtsdb", "train", policy="shape", ring=1, transform=TrainTransform(cfg)),
        VistasDataset(demo_root / "vistas", "training", transform=TrainTransform(cfg)),
    ]
    loader, sampler, multi = build_train_loader(datasets, batch_size=4, num_workers=0, seed=3)
    counts = np.zeros(3, int)
    for batch in loader:
        assert batch["image"].shape == (4, 3, 128, 256) and batch["label"].shape == (4, 128, 256)
        counts += np.bincount(batch["dataset_index"].numpy(), minlength=3)
        for d, lab in zip(batch["dataset_index"].tolist(), batch["label"], strict=True):
            assert int(lab[lab != 255].max()) < datasets[d].num_classes
    assert counts.tolist() == [8, 8, 8]  # replicated to the largest (8 each), 24 = 6 full batches
