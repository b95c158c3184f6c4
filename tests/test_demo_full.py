"""The full-size demo world (``demo-data --size full``): real frame sizes, modes and formats, and a paper
cell that steps, validates and evaluates at full resolution on it."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import build_once
from PIL import Image

import multiseg.demo.world as demo
from multiseg.cli import main
from multiseg.labels import CITYSCAPES_LABELS

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"
GT_LINE = re.compile(r"^(\d{5}\.ppm);(\d+);(\d+);(\d+);(\d+);(\d+)$")
FRAMES = 3  # per dataset: Cityscapes 2 + 1, GTSDB 2 + 1, Vistas 2 + 1 (4000x3000, portrait; 4000x3000)


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "multiseg", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def full_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-frame full-size world, written through the CLI (about 30 s on 2 busy cores), once."""

    def write(folder: Path) -> None:
        root = folder / "world"
        res = _cli("demo-data", "--size", "full", "--frames", str(FRAMES), "--root", str(root))
        assert res.returncode == 0, res.stderr[-2000:]
        head = res.stdout.splitlines()[0]
        assert re.fullmatch(
            rf"demo world \(seed 0, size full\): {3 * FRAMES} frames in [\d.]+ s -> {root}", head
        )

    return build_once(tmp_path_factory, "full_world", write) / "world"


def _ihdr(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) straight from a PNG's IHDR chunk."""
    head = path.read_bytes()[:26]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24], head[25]


def test_full_resolution_table_covers_the_real_sizes() -> None:
    sizes = demo.FULL_VISTAS_SIZES
    assert (4000, 3000) in sizes and (1920, 1080) in sizes
    assert any(h > w for w, h in sizes)  # a portrait photo
    assert demo.FULL.cityscapes == (2048, 1024) and demo.FULL.gtsdb == (1360, 800)
    assert demo.resolution("small") is demo.resolution("medium") is demo.DEMO
    counts = demo.frame_counts("full", None)
    assert counts.vistas_train >= 3 and counts.vistas_val >= 2 and counts.total <= 40


def test_vistas_sizes_are_taken_in_turn_and_keys_match_the_small_world() -> None:
    for slot in (2, 3):  # the cheap ones: 1920x1080 and 800x600
        key, frame, _ = demo.vistas_frame(5, 7, demo.FULL, slot)
        w, h = demo.FULL_VISTAS_SIZES[slot]
        assert frame.rgb.shape == (h, w, 3) and frame.world.shape == (h, w)
        assert key == demo.vistas_frame(5, 7)[0]  # the same frame of the same world, at another size


def test_too_few_frames_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-data", "--size", "full", "--frames", "2", "--root", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "multiseg demo-data: error: frames per dataset (--frames, n_frames) must be at least 3, got 2"
    )
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_cityscapes_at_2048x1024_in_the_real_encodings(full_world: Path) -> None:
    cs = full_world / "cityscapes"
    images = sorted((cs / "leftImg8bit").rglob("*_leftImg8bit.png"))
    assert len(images) == FRAMES
    for img in images:
        stem = str(img).replace("leftImg8bit", "gtFine").removesuffix("_gtFine.png")
        assert _ihdr(img) == (2048, 1024, 8, 2)  # 8-bit RGB
        assert _ihdr(Path(f"{stem}_gtFine_labelIds.png")) == (2048, 1024, 8, 0)  # 8-bit grey, mode L
        assert _ihdr(Path(f"{stem}_gtFine_instanceIds.png")) == (2048, 1024, 16, 0)
        assert _ihdr(Path(f"{stem}_gtFine_color.png")) == (2048, 1024, 8, 6)  # RGBA


@pytest.mark.slow
@pytest.mark.fixtures
def test_full_world_matches_the_real_frames(full_world: Path, fixtures_dir: Path) -> None:
    real_cs = fixtures_dir / "cityscapes" / "iv2018_sample_results_1"
    ours_cs = next((full_world / "cityscapes" / "leftImg8bit").rglob("*.png"))
    with Image.open(real_cs / "image_1.png") as a, Image.open(ours_cs) as b:
        assert (a.size, a.mode) == (b.size, b.mode)
    color = Path(str(ours_cs).replace("leftImg8bit", "gtFine").replace("_gtFine.png", "_gtFine_color.png"))
    with Image.open(real_cs / "ground_truth_1.png") as a, Image.open(color) as b:
        assert (a.size, a.mode) == (b.size, b.mode) == ((2048, 1024), "RGBA")
    real_gtsdb = fixtures_dir / "gtsdb" / "iv2018_sample_results_3" / "image_3.png"
    with Image.open(real_gtsdb) as a, Image.open(full_world / "gtsdb" / "FullIJCNN2013" / "00000.ppm") as b:
        assert a.size == b.size and b.format == "PPM"
    real_v = fixtures_dir / "vistas" / "iv2018_sample_results_2"
    with Image.open(real_v / "image_1.jpg") as a, Image.open(real_v / "ground_truth_1.png") as la:
        ours = sorted((full_world / "vistas" / "validation" / "images").glob("*.jpg"))[0]
        label = full_world / "vistas" / "validation" / "v1.2" / "labels" / f"{ours.stem}.png"
        with Image.open(ours) as b, Image.open(label) as lb:
            assert (b.format, b.mode, lb.mode) == (a.format, a.mode, la.mode) == ("JPEG", "RGB", "P")
            assert abs(b.size[0] / b.size[1] - a.size[0] / a.size[1]) < 0.01  # 4:3, about 4000x3000
            assert abs(b.size[0] - a.size[0]) < 100 and lb.size == b.size
    real = _heights(fixtures_dir / "gtsdb" / "FullIJCNN2013" / "gt.txt")
    ours = _heights(full_world / "gtsdb" / "FullIJCNN2013" / "gt.txt")
    assert max(ours) <= max(real) + 2 and np.median(ours) >= min(real)  # signs at the real pixel sizes


def _gt(path: Path) -> list[re.Match[str]]:
    lines = path.read_text().splitlines()
    matches = [GT_LINE.match(line) for line in lines if not line.startswith("#")]
    assert all(matches)
    return matches  # type: ignore[return-value]


def _heights(gt_txt: Path) -> list[int]:
    """Inclusive box heights of a gt.txt."""
    return [int(m[5]) - int(m[3]) + 1 for m in _gt(gt_txt)]


@pytest.mark.slow
def test_gtsdb_ppm_and_vistas_spread(full_world: Path) -> None:
    ppm = full_world / "gtsdb" / "FullIJCNN2013" / "00000.ppm"
    data = ppm.read_bytes()
    header = b"P6\n1360 800\n255\n"
    assert data.startswith(header) and len(data) == len(header) + 1360 * 800 * 3
    boxes = _gt(full_world / "gtsdb" / "FullIJCNN2013" / "gt.txt")
    heights = _heights(full_world / "gtsdb" / "FullIJCNN2013" / "gt.txt")
    assert heights and max(heights) <= 130 and max(heights) >= 40  # the real 16..128 px range
    for m in boxes:
        assert 0 <= int(m[2]) <= int(m[4]) < 1360 and 0 <= int(m[3]) <= int(m[5]) < 800
    sizes = {}
    for split in ("training", "validation"):
        for img in (full_world / "vistas" / split / "images").glob("*.jpg"):
            with Image.open(img) as im:
                sizes[img.stem] = im.size
            assert _ihdr(full_world / "vistas" / split / "v1.2" / "labels" / f"{img.stem}.png")[:2] == im.size
    assert sorted(sizes.values()) == [(3024, 4032), (4000, 3000), (4000, 3000)]


@pytest.mark.slow
def test_a_paper_cell_steps_validates_and_evaluates_at_full_size(full_world: Path, tmp_path: Path) -> None:
    """ENet on Cityscapes (the paper's 1024x512 crops, scales 0.5-2): two steps of batch 1, validation at
    1024x512, then ``eval --full-res`` at 2048x1024, through ``multiseg experiments --smoke``."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"study: smoke\nbench: {{size: 64x128, device: cpu}}\nevaluate: {{full_res: true}}\n"
        f"cells:\n  - {{config: {PAPER / 'enet' / 'cs.yaml'}, name: enet-cs}}\n"
    )
    out = tmp_path / "out"
    res = _cli(
        "experiments", str(grid), "--out", str(out), "--data", str(full_world), "--smoke",
        "--set", "batch_size=1", "--set", "workers=0", "--no-published",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    cell = out / "cells" / "enet-cs"
    assert "1 epochs of 2 steps" in res.stdout
    result = json.loads((cell / "result.json").read_text())
    assert 0.0 <= result["miou/cityscapes"] <= 1.0 and 0.0 <= result["fullres_miou/cityscapes"] <= 1.0
    report = json.loads((cell / "eval-val-fullres" / "eval.json").read_text())
    assert report["full_res"] is True
    (entry,) = report["results"]
    assert entry["images"] == 1
    confusion = np.array(entry["confusion"])
    with Image.open(next((full_world / "cityscapes" / "gtFine" / "val").rglob("*_labelIds.png"))) as im:
        valid = np.isin(np.array(im), [lab.id for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 19])
    assert confusion.sum() == valid.sum()  # scored at 2048x1024, every valid label pixel once
    with (out / "results.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["cell"] == "enet-cs" and row["fullres_miou/cityscapes"] != ""
