"""Every loader on small generated datasets, and every bad input of issue 3 as a one-line MultisegError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from multiseg.data.cityscapes import CityscapesDataset
from multiseg.data.folder import FolderDataset
from multiseg.data.gtsdb import GtsdbDataset, parse_gt_txt, read_meletis_mask, split_frames
from multiseg.data.io import read_image, read_label
from multiseg.data.transforms import TrainTransform, TransformConfig
from multiseg.data.vistas import VistasDataset
from multiseg.demo.synthetic import (
    write_cityscapes,
    write_folder_dataset,
    write_gray,
    write_gtsdb,
    write_palette_png,
    write_rgb,
    write_vistas,
)
from multiseg.errors import MultisegError
from multiseg.labels import vistas_v12_config


def _one_line(exc: pytest.ExceptionInfo[MultisegError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# --- datasets load ------------------------------------------------------------------------------


def test_cityscapes_generated(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "train", {"aachen": 2, "bremen": 1})
    ds = CityscapesDataset(tmp_path, "train")
    assert len(ds) == 3 and ds.num_classes == 19 and ds.eval_classes == tuple(range(19))
    item = ds[0]
    raw = read_label(ds.records[0].label)
    from multiseg.labels import cityscapes_id_to_train_id_lut

    np.testing.assert_array_equal(item["label"].numpy(), cityscapes_id_to_train_id_lut()[raw])
    assert (
        item["dataset"] == "cityscapes"
        and item["boxes"].shape == (0, 4)
        and item["box_classes"].dtype.is_signed
    )
    # labelTrainIds used when present and asked for
    train_ids = ds.records[0].label.with_name(ds.records[0].label.name.replace("labelIds", "labelTrainIds"))
    write_gray(train_ids, np.full(raw.shape, 5, np.uint8))
    assert (CityscapesDataset(tmp_path, "train", label_type="labelTrainIds")[0]["label"] == 5).all()
    assert (CityscapesDataset(tmp_path, "train")[0]["label"] != 5).any()


def test_gtsdb_generated_boxes_and_policies(tmp_path: Path) -> None:
    write_gtsdb(tmp_path, n_frames=6)
    ds = GtsdbDataset(tmp_path, "all")
    assert len(ds) == 6 and ds.num_classes == 44 and ds.classes[43] == "background"
    item = ds[0]
    np.testing.assert_array_equal(item["boxes"].numpy(), [[10, 12, 30, 32]])
    assert item["box_classes"].tolist() == [14] and item["box_shapes"].tolist() == [3]  # stop: octagon
    assert item["box_categories"].tolist() == [3]  # "other"
    lab = item["label"].numpy()
    assert (lab[12:32, 10:30] == 14).all() and (lab == 14).sum() == 400 and set(np.unique(lab)) == {14, 43}
    shape = GtsdbDataset(tmp_path, "all", policy="shape", ring=1)[0]["label"].numpy()
    assert (shape == 14).sum() < 400 and (shape == 255).any() and shape[22, 20] == 14
    train, test = GtsdbDataset(tmp_path, "train"), GtsdbDataset(tmp_path, "test")
    assert [r.key for r in train.records] == ["00000", "00001", "00002", "00003"]
    assert [r.key for r in test.records] == ["00004", "00005"] and test[0]["boxes"].shape == (0, 4)
    assert len(GtsdbDataset(tmp_path, "train", train_count=5)) == 5


def test_gtsdb_converted_png_and_jpg_frames(tmp_path: Path) -> None:
    folder = write_gtsdb(tmp_path, n_frames=6, ext=".png")
    write_rgb(folder / "00001.jpg", read_image(folder / "00001.png"))
    (folder / "00001.png").unlink()
    ds = GtsdbDataset(tmp_path, "all")
    assert [r.image.suffix for r in ds.records[:2]] == [".png", ".jpg"]
    assert ds[1]["box_classes"].tolist() == [33, 13] and ds[1]["image"].shape == (3, 80, 136)


def test_gtsdb_official_split() -> None:
    frames = list(range(900))
    assert split_frames(frames, "train", "auto", None, 2 / 3) == (list(range(600)), 600)
    assert split_frames(frames, "test", "official", None, 2 / 3)[0] == list(range(600, 900))
    assert split_frames(list(range(90)), "train", "auto", None, 2 / 3) == (list(range(60)), 60)
    with pytest.raises(MultisegError, match="unknown split"):
        split_frames(frames, "val", "auto", None, 2 / 3)


def test_gtsdb_flip_swaps_twins_and_skips_classes_without_one(tmp_path: Path) -> None:
    write_gtsdb(tmp_path, n_frames=4, boxes={0: [(10, 10, 29, 29, 33)], 1: [(10, 10, 29, 29, 24)]})
    cfg = TransformConfig(
        fit_width=None, fit_height=None, scale_range=(1, 1), crop_height=None, flip_prob=1.0
    )
    ds = GtsdbDataset(tmp_path, "all", transform=TrainTransform(cfg))
    flipped = ds[(0, 0)]
    assert flipped["box_classes"].tolist() == [34]
    np.testing.assert_array_equal(flipped["boxes"].numpy(), [[136 - 30, 10, 136 - 10, 30]])
    assert (flipped["label"].numpy()[10:30, 106:126] == 34).all()
    kept = ds[(1, 0)]
    assert kept["box_classes"].tolist() == [24] and kept["boxes"][0, 0] == 10  # no twin: not flipped
    np.testing.assert_array_equal(kept["image"].numpy().transpose(1, 2, 0), read_image(ds.records[1].image))


def test_vistas_generated_full_lanes_and_v20_mirror(tmp_path: Path) -> None:
    write_vistas(tmp_path, "training", n=2)
    ds = VistasDataset(tmp_path, "train")
    assert ds.name == "vistas" and ds.num_classes == 65 and len(ds.eval_classes) == 65
    raw = read_label(ds.records[0].label)
    np.testing.assert_array_equal(ds[0]["label"].numpy(), np.where(raw == 65, 255, raw))
    assert ds.to_cityscapes is not None and ds.to_cityscapes[13] == 0
    lanes = VistasDataset(tmp_path, "training", setting="lanes", lanes_other="ignore")
    assert lanes.num_classes == 4 and set(lanes[0]["label"].unique().tolist()) <= {0, 1, 2, 3, 255}
    # a v2.0-like config in the combined layout: arrows swap under a flip
    names = [f"x--{i}" for i in range(10)] + [
        "marking--discrete--arrow--left",
        "marking--discrete--arrow--right",
    ]
    cfg = {"labels": [{"name": n, "color": [i, i, i], "evaluate": True} for i, n in enumerate(names)]}
    cfg["labels"].append({"name": "void--unlabeled", "color": [0, 0, 0], "evaluate": False})
    root = tmp_path / "v20"
    write_vistas(
        root, "validation", n=1, config=cfg, labels_subdir="v2.0/labels", config_name="config_v2.0.json"
    )
    label = np.full((40, 60), 10, np.uint8)
    label[:, :30] = 11
    label[0, 0] = 12
    write_palette_png(root / "validation/v2.0/labels" / (ds.records[0].key + ".png"), label, [(0, 0, 0)] * 13)
    v20 = VistasDataset(root, "val", version="2.0")
    assert v20.num_classes == 12 and v20.eval_classes == tuple(range(12))
    flip = TransformConfig(
        fit_width=None, fit_height=None, scale_range=(1, 1), crop_height=None, flip_prob=1.0
    )
    v20.transform = TrainTransform(flip)
    out = v20[(0, 0)]["label"].numpy()
    assert (out[1:, 30:] == 10).all() and (out[:, :30] == 11).all() and out[0, 59] == 255


def test_folder_dataset(tmp_path: Path) -> None:
    write_folder_dataset(tmp_path, ["road", "pothole", "crack"])
    ds = FolderDataset(tmp_path, "train")
    assert ds.name == "mine" and ds.classes == ("road", "pothole", "crack") and len(ds.palette) == 3
    assert set(ds[0]["label"].unique().tolist()) <= {0, 1, 2}
    (tmp_path / "classes.yaml").write_text("classes: [a, b, c]\nignore_index: 2\neval_classes: [1]\n")
    ds = FolderDataset(tmp_path, "train")
    assert ds.name == tmp_path.name and ds.eval_classes == (1,)
    assert set(ds[0]["label"].unique().tolist()) <= {0, 1, 255}


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "layout_hint"),
    [
        (lambda p: CityscapesDataset(p, "train"), "leftImg8bit"),
        (lambda p: GtsdbDataset(p, "train"), "gt.txt"),
        (lambda p: VistasDataset(p, "training"), "config.json"),
        (lambda p: FolderDataset(p, "train"), "classes.yaml"),
    ],
)
def test_missing_root_prints_the_expected_layout(tmp_path: Path, make, layout_hint: str) -> None:
    with pytest.raises(MultisegError) as exc:
        make(tmp_path / "nowhere")
    assert "nowhere" in _one_line(exc) and layout_hint in str(exc.value)


def test_unpaired_files_are_listed(tmp_path: Path) -> None:
    images = write_cityscapes(tmp_path, "train", {"aachen": 5})
    for img in images[:4]:
        label = (
            img.parent.parent.parent.parent
            / "gtFine/train/aachen"
            / img.name.replace("leftImg8bit.png", "gtFine_labelIds.png")
        )
        label.unlink()
    with pytest.raises(
        MultisegError, match=r"4 images .* without a labelIds file: aachen/.*\(\+1 more\)"
    ) as exc:
        CityscapesDataset(tmp_path, "train")
    _one_line(exc)
    for img in images:
        img.unlink()
    with pytest.raises(MultisegError, match="labels in .* without an image: aachen/aachen_000004_000076"):
        CityscapesDataset(tmp_path, "train")
    keys = write_vistas(tmp_path / "v", n=2)
    (tmp_path / "v/training/labels" / f"{keys[1]}.png").unlink()
    with pytest.raises(MultisegError, match=f"without a label: {keys[1]}"):
        VistasDataset(tmp_path / "v", "training")
    (tmp_path / "v/training/images" / f"{keys[0]}.jpg").unlink()
    (tmp_path / "v/training/images" / f"{keys[1]}.jpg").unlink()
    with pytest.raises(MultisegError, match=f"without an image: {keys[0]}"):
        VistasDataset(tmp_path / "v", "training")
    write_gtsdb(tmp_path / "g", n_frames=3)  # gt.txt names frame 00005, which is missing
    with pytest.raises(MultisegError, match="frames named in .*gt.txt without an image: 00003, 00005"):
        GtsdbDataset(tmp_path / "g", "all")
    write_folder_dataset(tmp_path / "f", ["a", "b"])
    (tmp_path / "f/labels/train/img1.png").unlink()
    with pytest.raises(MultisegError, match="without a label: img1"):
        FolderDataset(tmp_path / "f", "train")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_or_truncated_image(tmp_path: Path, damage: str) -> None:
    images = write_cityscapes(tmp_path, "train", {"aachen": 3}, size=(96, 48))
    bad = images[1]
    data = bad.read_bytes()
    bad.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"not a png at all" * 20, "empty": b""}[damage]
    )
    ds = CityscapesDataset(tmp_path, "train")
    with pytest.raises(MultisegError) as exc:
        ds[1]
    assert bad.name in _one_line(exc)
    skipping = CityscapesDataset(tmp_path, "train", skip_bad=True)
    with pytest.warns(UserWarning, match="skipping bad sample"):
        item = skipping[1]
    assert item["path"] == str(images[2]) and item["skipped"] == [str(bad)]
    assert skipping.bad_paths == [str(bad)] and skipping[0]["skipped"] == []


def test_truncated_jpeg_and_ppm(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    for ext in (".jpg", ".ppm"):
        path = tmp_path / f"x{ext}"
        write_rgb(path, img)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(MultisegError, match=f"x{ext}"):
            read_image(path)
    with pytest.raises(MultisegError, match="file not found"):
        read_image(tmp_path / "missing.png")


def test_label_values_outside_the_known_ids(tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "c", "train", {"aachen": 1})
    ds = CityscapesDataset(tmp_path / "c", "train")
    label = read_label(ds.records[0].label)
    label[3, 4] = 34
    write_gray(ds.records[0].label, label)
    with pytest.raises(MultisegError, match="label value 34 is not a known Cityscapes label id") as exc:
        ds[0]
    assert ds.records[0].label.name in _one_line(exc)
    train_ids = ds.records[0].label.with_name(ds.records[0].label.name.replace("labelIds", "labelTrainIds"))
    write_gray(train_ids, np.full((32, 64), 19, np.uint8))
    with pytest.raises(MultisegError, match="label value 19 is not a known Cityscapes train id"):
        CityscapesDataset(tmp_path / "c", "train", label_type="labelTrainIds")[0]
    keys = write_vistas(tmp_path / "v", n=1)
    write_palette_png(tmp_path / f"v/training/labels/{keys[0]}.png", np.full((40, 60), 66), [(0, 0, 0)] * 67)
    with pytest.raises(MultisegError, match="label value 66 is not a known Vistas v1.2 label index"):
        VistasDataset(tmp_path / "v", "training")[0]
    write_folder_dataset(tmp_path / "f", ["a", "b"])
    write_gray(tmp_path / "f/labels/train/img0.png", np.full((30, 40), 2, np.uint8))
    with pytest.raises(MultisegError, match="label value 2 is not a known class index of mine"):
        FolderDataset(tmp_path / "f", "train")[0]
    meletis = np.zeros((8, 8), np.uint16)
    meletis[2, 2] = 1999
    write_gray(tmp_path / "m.png", meletis)
    with pytest.raises(MultisegError, match="label value 1999 is not a known GTSDB per-pixel value"):
        read_meletis_mask(tmp_path / "m.png")


def test_rgb_label_is_rejected(tmp_path: Path) -> None:
    write_rgb(tmp_path / "l.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(MultisegError, match="3 channels; expected a single-channel"):
        read_label(tmp_path / "l.png")


def test_image_label_size_mismatch(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, "train", {"aachen": 1})
    ds = CityscapesDataset(tmp_path, "train")
    write_gray(ds.records[0].label, np.zeros((30, 64), np.uint8))
    with pytest.raises(
        MultisegError, match=r"label is 64x30 but its image .*leftImg8bit.png is 64x32"
    ) as exc:
        ds[0]
    _one_line(exc)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("00001.ppm;1;2;3;4", "expected 6 ';'-separated fields, got 5"),
        ("00001.ppm;1;2;x;4;5", "non-integer coordinate or class"),
        ("00001.ppm;1;2;3;4;43", "class 43 outside 0..42"),
        ("00001.ppm;10;2;3;4;5", "box has right < left"),
        ("00001.ppm;1;20;3;4;5", "box has bottom < top"),
    ],
)
def test_malformed_gt_txt_line_names_its_number(tmp_path: Path, line: str, message: str) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text(
        f"#ImgNo#.ppm;#leftCol#;##topRow#;#rightCol#;#bottomRow#;#ClassID#\n00000.ppm;1;2;3;4;5\n\n{line}\n"
    )
    with pytest.raises(MultisegError, match=f"gt.txt:4: {message}") as exc:
        parse_gt_txt(gt)
    _one_line(exc)
    gt.write_text("00000.ppm;1;2;3;4;5\n")
    assert len(parse_gt_txt(gt)) == 1


def test_box_outside_the_image_is_clipped_with_a_count_or_an_error(tmp_path: Path) -> None:
    write_gtsdb(tmp_path, n_frames=3, boxes={0: [(120, 70, 150, 90, 1)], 1: [(10, 10, 20, 20, 2)]})
    ds = GtsdbDataset(tmp_path, "all")
    with pytest.warns(
        UserWarning, match=r"gt.txt:1: box extends past the 136x80 image, clipped \(1 so far\)"
    ):
        item = ds[0]
    np.testing.assert_array_equal(item["boxes"].numpy(), [[120, 70, 136, 80]])
    assert ds.clipped_boxes == 1
    write_gtsdb(tmp_path, n_frames=3, boxes={0: [(200, 10, 220, 20, 1)]})
    with pytest.raises(MultisegError, match="gt.txt:1: box lies outside the 136x80 image 00000.ppm"):
        GtsdbDataset(tmp_path, "all")[0]


def test_vistas_config_without_labels(tmp_path: Path) -> None:
    write_vistas(tmp_path, n=1)
    (tmp_path / "config.json").write_text(json.dumps({"version": "1.2"}))
    with pytest.raises(MultisegError, match="config.json: Vistas config has no 'labels' list") as exc:
        VistasDataset(tmp_path, "training")
    _one_line(exc)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(MultisegError, match="not valid JSON"):
        VistasDataset(tmp_path, "training")
    cfg = vistas_v12_config()
    del cfg["labels"][3]["name"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(MultisegError, match=r"labels\[3\] lacks 'name'"):
        VistasDataset(tmp_path, "training")


def test_empty_split(tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "c", "train", {"aachen": 1})
    (tmp_path / "c/leftImg8bit/val").mkdir()
    (tmp_path / "c/gtFine/val").mkdir()
    with pytest.raises(MultisegError, match="cityscapes: split 'val' is empty"):
        CityscapesDataset(tmp_path / "c", "val")
    write_gtsdb(tmp_path / "g", n_frames=6)
    with pytest.raises(MultisegError, match="gtsdb: split 'test' is empty"):
        GtsdbDataset(tmp_path / "g", "test", train_count=6)
    write_vistas(tmp_path / "v", "training", n=1)
    shutil.copytree(tmp_path / "v/training", tmp_path / "v/validation")
    for p in (tmp_path / "v/validation").rglob("*.*"):
        p.unlink()
    with pytest.raises(MultisegError, match="vistas: split 'validation' is empty"):
        VistasDataset(tmp_path / "v", "val")
