"""Collate, device normalisation, the dataset factory and the mixed DataLoader end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from multiseg.data.pipeline import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiDataset,
    build_dataset,
    build_train_loader,
    collate,
    normalize_on_device,
)
from multiseg.data.transforms import TrainTransform, TransformConfig
from multiseg.demo.synthetic import write_cityscapes, write_gtsdb, write_vistas
from multiseg.errors import MultisegError

CFG = TransformConfig(fit_width=128, fit_height=64, crop_height=48, crop_width=96)


@pytest.fixture
def three(tmp_path: Path) -> list:
    write_cityscapes(tmp_path / "cs", "train", {"aachen": 4, "ulm": 1})
    write_gtsdb(tmp_path / "gtsdb", n_frames=6)
    write_vistas(tmp_path / "vistas", "training", n=2)
    t = TrainTransform(CFG)
    return [
        build_dataset("cityscapes", tmp_path / "cs", "train", transform=t),
        build_dataset("gtsdb", tmp_path / "gtsdb", "all", transform=t, policy="shape"),
        build_dataset("lanes", tmp_path / "vistas", "training", transform=t),
    ]


def test_collate_stacks_uint8_and_keeps_boxes_as_lists(three: list) -> None:
    multi = MultiDataset(three)
    assert multi.names == ["cityscapes", "gtsdb", "lanes"] and multi.sizes == [5, 6, 2]
    batch = collate([multi[(1, 1, 7)], multi[(0, 2, 8)], multi[(2, 0, 9)]])
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (3, 3, 48, 96)
    assert batch["label"].shape == (3, 48, 96) and batch["dataset_index"].tolist() == [1, 0, 2]
    assert batch["dataset"] == ["gtsdb", "cityscapes", "lanes"]
    assert isinstance(batch["boxes"], list) and batch["boxes"][1].shape == (0, 4)
    assert batch["box_shapes"][0].shape == batch["box_classes"][0].shape
    with pytest.raises(MultisegError, match="differ in size"):
        collate([three[0][0], three[0][(0, 1)] | {"image": torch.zeros(3, 10, 10, dtype=torch.uint8)}])


def test_normalize_on_device() -> None:
    images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = normalize_on_device(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 4)
    for c, v in enumerate((0, 128, 255)):
        assert out[0, c, 0, 0].item() == pytest.approx(
            (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-5
        )


def test_augmentation_is_a_function_of_the_key(three: list) -> None:
    a, b = three[1][(3, 42)], three[1][(3, 42)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert torch.equal(a["boxes"], b["boxes"])


def test_loader_is_identical_with_0_and_2_workers(three: list) -> None:
    def run(workers: int) -> list[dict]:
        loader, sampler, _ = build_train_loader(three, batch_size=4, num_workers=workers, seed=11)
        sampler.set_epoch(1)
        return list(loader)

    serial, parallel = run(0), run(2)
    assert len(serial) == len(parallel) == 18 // 4
    for x, y in zip(serial, parallel, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        assert torch.equal(x["dataset_index"], y["dataset_index"]) and x["path"] == y["path"]


def test_unknown_kind_and_duplicate_heads(three: list, tmp_path: Path) -> None:
    with pytest.raises(MultisegError, match="unknown dataset kind 'kitti'"):
        build_dataset("kitti", tmp_path, "train")
    with pytest.raises(MultisegError, match="share a head name"):
        MultiDataset([three[0], three[0]])


def test_skipped_images_reach_the_batch(tmp_path: Path) -> None:
    images = write_cityscapes(tmp_path, "train", {"aachen": 4})
    images[2].write_bytes(b"broken")
    ds = build_dataset("cityscapes", tmp_path, "train", transform=TrainTransform(CFG), skip_bad=True)
    loader, _, _ = build_train_loader([ds], batch_size=2, num_workers=0, policy="none")
    with pytest.warns(UserWarning):
        skipped = [p for batch in loader for p in batch["skipped"]]
    assert skipped == [str(images[2])]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_hwc_to_chw_equals_the_transpose(channels: int) -> None:
    from multiseg.data.base import hwc_to_chw

    image = np.random.default_rng(0).integers(0, 256, (37, 53, channels), dtype=np.uint8)
    chw = hwc_to_chw(image)
    assert chw.flags.c_contiguous and chw.shape == (channels, 37, 53)
    np.testing.assert_array_equal(chw, image.transpose(2, 0, 1))
    flipped = image[:, ::-1]  # a non-contiguous view and a float image take numpy's copy
    np.testing.assert_array_equal(hwc_to_chw(flipped), flipped.transpose(2, 0, 1))
    np.testing.assert_array_equal(hwc_to_chw(image.astype(np.float32)), image.transpose(2, 0, 1))
