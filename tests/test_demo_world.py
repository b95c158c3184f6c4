"""The demo world: on-disk formats of the three datasets, real-file encodings, signs, determinism, safety."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import build_once
from PIL import Image

import multiseg.demo.world as demo
from multiseg.cli import main
from multiseg.demo.builder import WC
from multiseg.demo.signs import canonical_sign
from multiseg.demo.writers import cityscapes_lut, vistas_lut
from multiseg.errors import MultisegError
from multiseg.labels import (
    CITYSCAPES_LABELS,
    GTSDB_CLASSES,
    GTSDB_FLIP_INVARIANT,
    GTSDB_MIRROR_PAIRS,
    GTSDB_NUM_CLASSES,
    VISTAS_V12_LABELS,
    vistas_v12_config,
)

N_FRAMES = 24  # per dataset: Cityscapes 20/4, GTSDB 16/8, Vistas 20/4
CS_STEM = re.compile(r"^(?P<city>[a-z]+)_(?P<seq>\d{6})_(?P<frame>\d{6})$")
GT_LINE = re.compile(r"^(?P<file>\d{5}\.ppm);(?P<l>\d+);(?P<t>\d+);(?P<r>\d+);(?P<b>\d+);(?P<cls>\d+)$")
PPM_HEADER = re.compile(rb"^P6\s+(\d+)\s+(\d+)\s+(\d+)\s")
VISTAS_KEY = re.compile(r"^[A-Za-z0-9_-]{22}$")
CS_INSTANCE_IDS = {lab.id for lab in CITYSCAPES_LABELS if lab.has_instances and lab.id >= 0}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def write(folder: Path) -> None:
        summary = demo.write_demo_world(folder / "world", seed=0, n_frames=N_FRAMES)
        assert summary.root == folder / "world" and summary.frames == 3 * N_FRAMES

    return build_once(tmp_path_factory, "demo_world", write) / "world"


def _png_ihdr(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) straight from a PNG's IHDR chunk."""
    head = path.read_bytes()[:26]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return head[24], head[25]


def _gt_lines(path: Path) -> list[re.Match[str]]:
    text = path.read_bytes().decode("ascii")
    assert "\r" not in text and text.endswith("\n")
    matches = [GT_LINE.match(line) for line in text.splitlines()]
    assert all(matches), [line for line, m in zip(text.splitlines(), matches, strict=True) if not m][:3]
    return matches  # type: ignore[return-value]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- world level ---------------------------------------------------------------------------------


def test_marker_and_summary(world: Path) -> None:
    marker = json.loads((world / "multiseg_demo.json").read_text())
    assert marker == {"generator": "multiseg-demo-world", "format": 1, "seed": 0, "size": "small"}
    assert demo.is_demo_world(world)
    assert sorted(p.name for p in world.iterdir()) == ["cityscapes", "gtsdb", "multiseg_demo.json", "vistas"]
    assert not [p for p in world.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


# --- Cityscapes ----------------------------------------------------------------------------------


def _cs_images(world: Path, split: str) -> list[Path]:
    return sorted((world / "cityscapes" / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))


def test_cityscapes_layout_and_naming(world: Path) -> None:
    counts = {split: len(_cs_images(world, split)) for split in ("train", "val")}
    assert counts == {"train": N_FRAMES - N_FRAMES // 5, "val": N_FRAMES // 5}
    for split in ("train", "val"):
        for img in _cs_images(world, split):
            stem = img.name.removesuffix("_leftImg8bit.png")
            m = CS_STEM.match(stem)
            assert m and m["city"] == img.parent.name
            gt = world / "cityscapes" / "gtFine" / split / m["city"]
            for kind in ("labelIds", "instanceIds", "color"):
                assert (gt / f"{stem}_gtFine_{kind}.png").is_file()
            with Image.open(img) as im:
                assert (im.mode, im.size) == ("RGB", (512, 256))
    all_gt = list((world / "cityscapes" / "gtFine").rglob("*.png"))
    assert len(all_gt) == 3 * N_FRAMES


def test_cityscapes_label_values_instances_and_colours(world: Path) -> None:
    colors = np.zeros((256, 3), np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0:
            colors[lab.id] = lab.color
    seen: set[int] = set()
    for lab_path in sorted((world / "cityscapes" / "gtFine").rglob("*_gtFine_labelIds.png")):
        stem = str(lab_path).removesuffix("_labelIds.png")
        with Image.open(lab_path) as im:
            assert im.mode == "L"
            ids = np.array(im)
        with Image.open(f"{stem}_instanceIds.png") as im:
            assert im.mode == "I;16"
            inst = np.array(im).astype(np.int64)
        with Image.open(f"{stem}_color.png") as im:
            assert im.mode == "RGBA"
            color = np.array(im)
        assert ids.max() <= 33
        seen |= set(np.unique(ids).tolist())
        decoded = np.where(inst >= 1000, inst // 1000, inst)
        np.testing.assert_array_equal(decoded, ids)
        is_thing = np.isin(ids, list(CS_INSTANCE_IDS))
        assert (inst[is_thing] >= 1000).all() and (inst[~is_thing] < 1000).all()
        assert (color[..., 3] == 255).all()
        np.testing.assert_array_equal(color[..., :3], colors[ids])
    # every evaluated class but the rarest shows up somewhere in 24 frames; signs always
    assert {7, 8, 11, 17, 19, 20, 21, 23, 24, 25, 26} <= seen
    assert seen <= {lab.id for lab in CITYSCAPES_LABELS if lab.id >= 0}


def test_cityscapes_world_class_mapping() -> None:
    lut = cityscapes_lut()
    for wc in (WC.ROAD, WC.LANE_MARKING, WC.CROSSWALK_PLAIN, WC.CROSSWALK_ZEBRA, WC.MANHOLE):
        assert lut[wc] == 7
    assert (
        lut[WC.TRAFFIC_SIGN] == 20 and lut[WC.CURB] == 8 and lut[WC.BICYCLIST] == lut[WC.MOTORCYCLIST] == 25
    )


@pytest.mark.fixtures
def test_cityscapes_encodings_match_real_files(world: Path, fixtures_dir: Path) -> None:
    real = fixtures_dir / "cityscapes" / "mmseg_pseudo_cityscapes_256x128" / "gtFine" / "val" / "frankfurt"
    ours = next((world / "cityscapes" / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    ours_stem = str(ours).removesuffix("_labelIds.png")
    for kind in ("labelIds", "instanceIds"):
        real_path = real / f"frankfurt_000000_000294_gtFine_{kind}.png"
        our_path = Path(f"{ours_stem}_{kind}.png")
        with Image.open(real_path) as a, Image.open(our_path) as b:
            assert a.mode == b.mode
            assert np.array(a).dtype == np.array(b).dtype
        assert _png_ihdr(real_path) == _png_ihdr(our_path)
    with Image.open(real / "frankfurt_000000_000294_gtFine_instanceIds.png") as im:
        inst = np.array(im).astype(np.int64)
    with Image.open(real / "frankfurt_000000_000294_gtFine_labelIds.png") as im:
        ids = np.array(im)
    np.testing.assert_array_equal(np.where(inst >= 1000, inst // 1000, inst), ids)  # same value convention


# --- GTSDB ---------------------------------------------------------------------------------------


def _gtsdb(world: Path) -> Path:
    return world / "gtsdb" / "FullIJCNN2013"


def _true_mask(world: Path, index: int, n_train: int) -> np.ndarray:
    split, k = ("train", index) if index < n_train else ("test", index - n_train)
    with Image.open(world / "gtsdb" / "true_masks" / "gtFine" / split / f"{k:05d}_labelIds.png") as im:
        assert im.mode == "I;16"
        return np.array(im)


def test_gtsdb_frames_and_ppm_header(world: Path) -> None:
    ppms = sorted(_gtsdb(world).glob("*.ppm"))
    assert [p.name for p in ppms] == [f"{i:05d}.ppm" for i in range(N_FRAMES)]
    for p in ppms[:3]:
        data = p.read_bytes()
        m = PPM_HEADER.match(data)
        assert m and (int(m[1]), int(m[2]), int(m[3])) == (680, 400, 255)
        assert len(data) == m.end() + 680 * 400 * 3
        with Image.open(p) as im:
            assert (im.format, im.mode, im.size) == ("PPM", "RGB", (680, 400))


def test_gtsdb_gt_boxes_are_tight_true_mask_boxes(world: Path) -> None:
    n_train = N_FRAMES * 2 // 3
    lines = _gt_lines(_gtsdb(world) / "gt.txt")
    files = [m["file"] for m in lines]
    assert files == sorted(files)
    by_frame: dict[int, list[re.Match[str]]] = {}
    for m in lines:
        by_frame.setdefault(int(m["file"][:5]), []).append(m)
    for index in range(N_FRAMES):
        mask = _true_mask(world, index, n_train)
        assert mask.shape == (400, 680)
        values = set(np.unique(mask).tolist()) - {0}
        assert all(2000 <= v < 2000 + GTSDB_NUM_CLASSES for v in values)
        frame_lines = by_frame.get(index, [])
        assert (len(frame_lines) > 0) == bool(values)  # frames without a sign are absent from gt.txt
        assert {2000 + int(m["cls"]) for m in frame_lines} == values
        per_class = Counter(int(m["cls"]) for m in frame_lines)
        for m in frame_lines:
            left, top, right, bottom, cid = (int(m[k]) for k in ("l", "t", "r", "b", "cls"))
            assert 0 <= left <= right < 680 and 0 <= top <= bottom < 400
            box = mask[top : bottom + 1, left : right + 1] == 2000 + cid
            # inclusive edges: every edge row/column of the box holds sign pixels
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()
            if per_class[cid] == 1:
                ys, xs = np.nonzero(mask == 2000 + cid)
                assert (left, top, right, bottom) == (xs.min(), ys.min(), xs.max(), ys.max())


def test_gtsdb_split_class_coverage_and_sizes(world: Path) -> None:
    n_train = N_FRAMES * 2 // 3
    masks = world / "gtsdb" / "true_masks" / "gtFine"
    assert len(list((masks / "train").glob("*_labelIds.png"))) == n_train
    assert len(list((masks / "test").glob("*_labelIds.png"))) == N_FRAMES - n_train
    lines = _gt_lines(_gtsdb(world) / "gt.txt")
    train_classes = {int(m["cls"]) for m in lines if int(m["file"][:5]) < n_train}
    assert train_classes == set(range(GTSDB_NUM_CLASSES))
    per_frame = Counter(m["file"] for m in lines)
    assert max(per_frame.values()) <= 6
    heights = [int(m["b"]) - int(m["t"]) + 1 for m in lines]
    assert 10 <= np.median(heights) <= 60 and max(heights) <= 75


def test_gtsdb_readme(world: Path) -> None:
    text = (_gtsdb(world) / "ReadMe.txt").read_text()
    assert "#ImgNo#.ppm;#leftCol#;##topRow#;#rightCol#;#bottomRow#;#ClassID#" in text
    for c in GTSDB_CLASSES:
        assert f"{c.id} = {c.name} ({c.category})" in text


@pytest.mark.fixtures
def test_gtsdb_grammar_matches_real_files(world: Path, fixtures_dir: Path) -> None:
    real = _gt_lines(fixtures_dir / "gtsdb" / "FullIJCNN2013" / "gt.txt")
    assert len(real) == 1213
    assert len(_gt_lines(_gtsdb(world) / "gt.txt")) > 0
    for name in ("00000.ppm", "00013.ppm"):  # both real header layouts parse with the same pattern as ours
        data = (fixtures_dir / "gtsdb" / "ppm_samples" / name).read_bytes()
        m = PPM_HEADER.match(data)
        assert m and len(data) == m.end() + int(m[1]) * int(m[2]) * 3


# --- Vistas --------------------------------------------------------------------------------------


def test_vistas_config(world: Path) -> None:
    config = json.loads((world / "vistas" / "config.json").read_text())
    assert config == vistas_v12_config()
    assert len(config["labels"]) == 66
    for label in config["labels"]:
        assert set(label) == {"name", "readable", "color", "instances", "evaluate"}


@pytest.mark.fixtures
def test_vistas_config_schema_matches_real_file(world: Path, fixtures_dir: Path) -> None:
    real = json.loads((fixtures_dir / "vistas" / "v2.0" / "config_Full.json").read_text())
    ours = json.loads((world / "vistas" / "config.json").read_text())
    assert set(ours) == set(real)
    real_keys = {frozenset(label) for label in real["labels"]}
    assert real_keys == {frozenset(label) for label in ours["labels"]}
    for a, b in zip(ours["labels"][:2], real["labels"][:2], strict=True):  # same types per key
        assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}


def test_vistas_images_and_palette_labels(world: Path) -> None:
    palette = [v for lab in VISTAS_V12_LABELS for v in lab.color]
    aspects, seen = set(), set()
    for split, n in (("training", N_FRAMES - N_FRAMES // 5), ("validation", N_FRAMES // 5)):
        images = sorted((world / "vistas" / split / "images").glob("*"))
        assert len(images) == n
        for img in images:
            assert img.suffix == ".jpg" and VISTAS_KEY.match(img.stem)
            label_path = world / "vistas" / split / "v1.2" / "labels" / f"{img.stem}.png"
            with Image.open(img) as im, Image.open(label_path) as lab:
                assert im.format == "JPEG" and im.mode == "RGB"
                assert lab.mode == "P" and lab.size == im.size
                assert lab.getpalette()[: len(palette)] == palette
                values = np.array(lab)
                aspects.add(round(im.size[0] / im.size[1], 2))
            assert values.max() < 66
            seen |= set(np.unique(values).tolist())
    assert len(aspects) >= 2 and aspects <= {1.33, 1.78, 1.5}
    assert {
        13,
        24,
        8,
        23,
        50,
        45,
        19,
        55,
    } <= seen  # road, lane marking, both crosswalks, sign, pole, person, car


def test_vistas_world_class_mapping() -> None:
    lut = vistas_lut()
    expected = {
        WC.ROAD: 13, WC.LANE_MARKING: 24, WC.CROSSWALK_PLAIN: 8, WC.CROSSWALK_ZEBRA: 23, WC.SIDEWALK: 15,
        WC.CURB: 2, WC.BUILDING: 17, WC.WALL: 6, WC.FENCE: 3, WC.POLE: 45, WC.STREET_LIGHT: 44,
        WC.TRAFFIC_LIGHT: 48, WC.TRAFFIC_SIGN: 50, WC.VEGETATION: 30, WC.TERRAIN: 29, WC.SKY: 27,
        WC.PERSON: 19, WC.BICYCLIST: 20, WC.MOTORCYCLIST: 21, WC.CAR: 55, WC.TRUCK: 61, WC.BUS: 54,
        WC.ON_RAILS: 58, WC.BICYCLE: 52, WC.MOTORCYCLE: 57, WC.MANHOLE: 41, WC.UNLABELED: 65,
    }  # fmt: skip
    assert {wc: int(lut[wc]) for wc in expected} == expected


# --- traffic signs -------------------------------------------------------------------------------


def test_mirror_pairs_are_exact_mirrors() -> None:
    for a, b in GTSDB_MIRROR_PAIRS:
        rgb_a, mask_a = canonical_sign(a)
        rgb_b, mask_b = canonical_sign(b)
        np.testing.assert_array_equal(rgb_a[:, ::-1], rgb_b)
        np.testing.assert_array_equal(mask_a[:, ::-1], mask_b)
        assert _differing(rgb_a, rgb_b) > 0.01  # and the pair really differs


def _differing(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of canvas pixels whose colour differs clearly (max channel difference > 60)."""
    return float((np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 60).mean())


def test_sign_handedness_and_distinct_classes() -> None:
    sprites = [canonical_sign(c)[0] for c in range(GTSDB_NUM_CLASSES)]
    for c, rgb in enumerate(sprites):
        if c in GTSDB_FLIP_INVARIANT:
            np.testing.assert_array_equal(rgb, rgb[:, ::-1])
        else:
            assert _differing(rgb, rgb[:, ::-1]) > 0.01, c  # visibly handed
        closest = min((_differing(rgb, sprites[d]) for d in range(GTSDB_NUM_CLASSES) if d != c), default=1.0)
        assert closest > 0.005, c  # its own glyph (speed limits differ in one digit)


def test_sign_category_colours() -> None:
    for c in GTSDB_CLASSES:
        rgb, mask = canonical_sign(c.id)
        px = rgb[mask].astype(int)
        blue = ((px[:, 2] > 120) & (px[:, 0] < 80)).mean()
        red = ((px[:, 0] > 150) & (px[:, 1] < 80)).mean()
        assert (blue > 0.4) == (c.category == "mandatory"), c
        if c.category in ("prohibitory", "danger"):
            assert red > 0.15, c
        if c.id in (6, 32, 41, 42):  # grey/white "end of" discs
            assert red < 0.01, c


# --- determinism, refusal, atomicity -------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs_and_replace(tmp_path: Path) -> None:
    root = tmp_path / "w"
    demo.write_demo_world(root, seed=5, n_frames=3)
    first = _tree_digest(root)
    demo.write_demo_world(root, seed=5, n_frames=3)  # a previous demo world is replaced without force
    assert _tree_digest(root) == first
    demo.write_demo_world(root, seed=6, n_frames=3)
    other = _tree_digest(root)
    shared = [k for k in first if k in other and not k.endswith((".json", "ReadMe.txt"))]
    assert len(shared) >= 10  # Vistas keys differ per seed, the other names do not
    assert all(first[k] != other[k] for k in shared if k.endswith((".png", ".ppm")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_refuses_foreign_folder_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(MultisegError) as err:
        demo.write_demo_world(foreign, n_frames=3)
    assert str(foreign) in str(err.value) and "\n" not in str(err.value)
    assert main(["demo-data", "--root", str(foreign)]) == 2
    assert str(foreign) in capsys.readouterr().err
    assert (foreign / "thesis.txt").read_text() == "precious"
    (foreign / "multiseg_demo.json").write_text("{not json")  # an invalid marker is no marker
    with pytest.raises(MultisegError):
        demo.write_demo_world(foreign, n_frames=3)
    demo.write_demo_world(foreign, n_frames=3, force=True)
    assert not (foreign / "thesis.txt").exists() and demo.is_demo_world(foreign)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(MultisegError, match="size"):
        demo.write_demo_world(tmp_path / "w", size="huge")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MultisegError, match="not a folder"):
        demo.write_demo_world(tmp_path / "file", n_frames=3)
    with pytest.raises(MultisegError, match="seed"):
        demo.write_demo_world(tmp_path / "w", seed=-1, n_frames=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    root = tmp_path / "w"
    demo.write_demo_world(root, seed=1, n_frames=3)
    before = _tree_digest(root)

    def boom(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(demo, "write_vistas_frame", boom)
    with pytest.raises(type(error)):
        demo.write_demo_world(root, seed=2, n_frames=3)
    assert _tree_digest(root) == before  # the previous world is untouched
    with pytest.raises(type(error)):
        demo.write_demo_world(tmp_path / "fresh", n_frames=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # no temp folder, no half-written dataset


def test_disk_error_is_a_one_line_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "x.png"))

    monkeypatch.setattr(demo, "write_vistas_frame", full)
    with pytest.raises(
        MultisegError, match=r"cannot write the demo world to .*No space left on device"
    ) as err:
        demo.write_demo_world(tmp_path / "w", n_frames=3)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_demo_data_default_root_is_the_cache_folder_train_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from multiseg.demo.cache import demo_world_path

    monkeypatch.setenv("MULTISEG_CACHE", str(tmp_path))
    target = tmp_path / "demo_world_seed7_small"
    assert demo_world_path(7, "small") == target
    target.mkdir()
    (target / "notes.txt").write_text("not a demo world")
    assert main(["demo-data", "--seed", "7"]) == 2  # refuses the foreign folder: the default was used
    assert str(target) in capsys.readouterr().err


@pytest.mark.parametrize("size", ["small", "medium"])
def test_train_reads_the_demo_world_of_its_demo_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    from multiseg.demo.cache import demo_world_path
    from multiseg.train.config import TrainConfig
    from multiseg.train.data import dataset_root

    monkeypatch.setenv("MULTISEG_CACHE", str(tmp_path))
    for s in ("small", "medium"):  # both present (markers only): nothing is generated
        demo_world_path(0, s).mkdir()
        (demo_world_path(0, s) / demo.MARKER).write_text("{}")
    cfg = TrainConfig(demo_size=size)
    assert dataset_root(cfg, "gtsdb") == tmp_path / f"demo_world_seed0_{size}" / "gtsdb"
    assert dataset_root(TrainConfig(data_root=tmp_path / "real", demo_size=size), "vistas") == (
        tmp_path / "real" / "vistas"
    )
