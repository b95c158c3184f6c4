"""``multiseg prepare``: a training-size copy of a data root that every loader reads unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import multiseg.demo.world as demo
from multiseg.cli import main
from multiseg.data.cityscapes import CityscapesDataset
from multiseg.data.gtsdb import GtsdbDataset
from multiseg.data.io import is_palette_png, read_image, read_label
from multiseg.data.prepare import MARKER, prepare_data_root, shrunk_size
from multiseg.data.vistas import VistasDataset
from multiseg.errors import MultisegError

BOX = (256, 128)  # (width, height): half the demo world's 512x256 Cityscapes frames


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prep") / "world"
    demo.write_demo_world(root, seed=1, n_frames=6)
    return root


@pytest.fixture(scope="module")
def prepared(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prep_out") / "small"
    summary = prepare_data_root(world, out, BOX, workers=0)
    assert summary.resized > 0 and summary.bytes_after < summary.bytes_before
    return out


def _error_lines(stderr: str) -> list[str]:
    """What a failed command printed besides its progress bar (tqdm redraws with carriage returns)."""
    lines = [line for chunk in stderr.splitlines() for line in chunk.split("\r")]
    return [line for line in lines if line.strip() and not line.startswith("prepare:")]


def test_shrunk_size_fits_the_box_and_never_upscales() -> None:
    assert shrunk_size(2048, 1024, (1024, 512)) == (1024, 512)
    assert shrunk_size(4032, 3024, (1024, 512)) == (683, 512)  # Vistas: the height binds
    assert shrunk_size(1360, 800, (1024, 512)) == (870, 512)
    assert shrunk_size(1024, 512, (1024, 512)) is None
    assert shrunk_size(300, 200, (1024, 512)) is None


@pytest.mark.parametrize("split", ["train", "val"])
def test_cityscapes_copy_is_the_same_dataset_at_the_box_size(world: Path, prepared: Path, split: str) -> None:
    orig = CityscapesDataset(world / "cityscapes", split)
    small = CityscapesDataset(prepared / "cityscapes", split)
    assert [r.key for r in small.records] == [r.key for r in orig.records]
    for rec_o, rec_s in zip(orig.records, small.records, strict=True):
        image_o, image_s = read_image(rec_o.image), read_image(rec_s.image)
        assert image_s.shape == (128, 256, 3)
        expected = cv2.resize(image_o, BOX, interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(image_s, expected)  # PNG is lossless
        label_o, label_s = read_label(rec_o.label), read_label(rec_s.label)
        np.testing.assert_array_equal(label_s, cv2.resize(label_o, BOX, interpolation=cv2.INTER_NEAREST))
    assert small.load(0).label.shape == (128, 256)


def test_vistas_copy_keeps_palette_labels_and_pairs(world: Path, prepared: Path) -> None:
    for split in ("training", "validation"):
        orig = VistasDataset(world / "vistas", split)
        small = VistasDataset(prepared / "vistas", split)
        assert [r.key for r in small.records] == [r.key for r in orig.records]
        rec_o, rec_s = orig.records[0], small.records[0]
        assert is_palette_png(rec_s.label.read_bytes()) == is_palette_png(rec_o.label.read_bytes())
        with Image.open(rec_o.label) as im_o, Image.open(rec_s.label) as im_s:
            assert im_s.getpalette() == im_o.getpalette()
            w, h = shrunk_size(im_o.width, im_o.height, BOX) or im_o.size
            assert im_s.size == (w, h)
            expected = np.asarray(im_o.resize((w, h), Image.Resampling.NEAREST))
            np.testing.assert_array_equal(np.asarray(im_s), expected)
        sample_o, sample_s = orig.load(0), small.load(0)
        assert set(np.unique(sample_s.label)) <= set(np.unique(sample_o.label))
        image_s = read_image(rec_s.image)
        assert image_s.shape[:2] == (h, w)
        expected_image = cv2.resize(read_image(rec_o.image), (w, h), interpolation=cv2.INTER_AREA)
        mse = ((image_s.astype(float) - expected_image) ** 2).mean()
        assert 10 * np.log10(255**2 / mse) > 30  # PSNR of the quality-95 JPEG re-encoding


def test_gtsdb_is_linked_and_markers_written(world: Path, prepared: Path) -> None:
    assert (prepared / "gtsdb").is_symlink()
    assert (prepared / "gtsdb").resolve() == (world / "gtsdb").resolve()
    assert len(GtsdbDataset(prepared / "gtsdb", "train")) == len(GtsdbDataset(world / "gtsdb", "train"))
    assert (prepared / MARKER).is_file()
    assert not list(prepared.parent.glob(".*partial*"))


def test_cli_prepare_rerun_and_refusals(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "p"
    args = ["prepare", "--data", str(world), "--out", str(out), "--size", "64x128", "--workers", "2"]
    assert main(args) == 0
    assert "resized to fit 128x64" in capsys.readouterr().out
    assert read_image(next((out / "cityscapes" / "leftImg8bit").glob("*/*/*.png"))).shape == (64, 128, 3)
    assert main(args) == 0  # a prepared folder may be replaced

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main([*args[:3], "--out", str(foreign)]) == 2
    (err,) = _error_lines(capsys.readouterr().err)
    assert "is not empty" in err
    assert (foreign / "keep.txt").read_text() == "mine"

    assert main(["prepare", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "q")]) == 2
    assert "cityscapes" in capsys.readouterr().err and not (tmp_path / "q").exists()
    assert main([*args[:4], str(tmp_path / "r"), "--datasets", "kitti"]) == 2
    assert "unknown dataset 'kitti'" in capsys.readouterr().err


def test_corrupt_frame_fails_on_one_line_and_writes_nothing(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(world, broken, symlinks=True)
    victim = sorted((broken / "cityscapes" / "leftImg8bit" / "train").glob("*/*.png"))[1]
    victim.write_bytes(victim.read_bytes()[:500])
    out = tmp_path / "out"
    assert main(["prepare", "--data", str(broken), "--out", str(out), "--workers", "2"]) == 2
    (err,) = _error_lines(capsys.readouterr().err)
    assert victim.name in err and "truncated" in err
    assert not out.exists() and not list(tmp_path.glob(".out.partial*"))


def test_out_inside_the_data_root_is_refused(world: Path) -> None:
    with pytest.raises(MultisegError, match="must not be the data root"):
        prepare_data_root(world, world / "small", BOX)


@pytest.mark.fixtures
def test_real_full_resolution_cityscapes_frame(fixtures_dir: Path, tmp_path: Path) -> None:
    """The real 2048x1024 leftImg8bit frame and a real-format labelIds PNG, shrunk to 1024x512."""
    real = fixtures_dir / "cityscapes"
    image = real / "iv2018_sample_results_1" / "image_1.png"
    label = next((real / "hrnet_ocr_prediction_NOT_ground_truth").glob("*labelIds.png"))
    root = tmp_path / "data" / "cityscapes"
    stem = "frankfurt_000000_001016"
    (root / "leftImg8bit" / "val" / "frankfurt").mkdir(parents=True)
    (root / "gtFine" / "val" / "frankfurt").mkdir(parents=True)
    shutil.copyfile(image, root / "leftImg8bit" / "val" / "frankfurt" / f"{stem}_leftImg8bit.png")
    shutil.copyfile(label, root / "gtFine" / "val" / "frankfurt" / f"{stem}_gtFine_labelIds.png")
    out = tmp_path / "small"
    summary = prepare_data_root(tmp_path / "data", out, (1024, 512), datasets=("cityscapes",), workers=0)
    assert summary.resized == 2
    ds = CityscapesDataset(out / "cityscapes", "val")
    sample = ds.load(0)
    assert sample.image.shape == (512, 1024, 3) and sample.label.shape == (512, 1024)
    full = CityscapesDataset(root, "val").load(0)
    assert set(np.unique(sample.label)) <= set(np.unique(full.label))
    assert (sample.label == full.label[::2, ::2]).mean() > 0.97
