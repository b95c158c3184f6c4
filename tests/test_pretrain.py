"""Encoder pretraining: the demo-world classification set, weights that load into every model's encoder,
optional flips, resume after Ctrl-C, the grid's on-demand pretraining, and one-line errors for bad image
folders."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from multiseg.cli import main
from multiseg.data.io import read_image
from multiseg.demo.crops import MARKER, write_classification_set
from multiseg.errors import MultisegError
from multiseg.models import create_model, list_models
from multiseg.train.pretrain import (
    ENCODER_FILE,
    ImageFolderSet,
    PretrainConfig,
    Pretrainer,
    ensure_pretrained,
    pretrain,
)

TINY = {"image_size": 32, "epochs": 1, "batch_size": 16, "workers": 0, "threads": 1}


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_classification_set(tmp_path_factory.mktemp("crops") / "set", n_frames=9, size=32).root


def test_demo_classification_set_has_labelled_crops_in_two_splits(crops: Path) -> None:
    classes = {p.name for p in (crops / "train").iterdir()}
    assert {"car", "person"} <= classes and any(c.startswith("sign_") for c in classes)
    images = sorted((crops / "train").rglob("*.png"))
    assert len(images) > 20 and any((crops / "val").rglob("*.png"))
    assert read_image(images[0]).shape == (32, 32, 3)
    stamp = (crops / MARKER).stat().st_mtime_ns
    write_classification_set(crops, n_frames=9, size=32)  # same settings: kept as it is
    assert (crops / MARKER).stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.parametrize("model", list_models())
def test_pretrained_weights_load_into_the_models_encoder(crops: Path, tmp_path: Path, model: str) -> None:
    cfg = PretrainConfig(data=crops, model=model, **TINY)
    summary = pretrain(cfg, tmp_path / model)
    assert summary.encoder_path == tmp_path / model / ENCODER_FILE and summary.epochs == 1
    saved = torch.load(summary.encoder_path, weights_only=True)["encoder"]
    for heads, mode in (({"cityscapes": 19}, "decoder"), ({"cityscapes": 19, "gtsdb": 44}, "last_conv")):
        net = create_model(model, heads=heads, head_mode=mode, encoder_weights=summary.encoder_path)
        for key, value in net.encoder.state_dict().items():
            assert torch.equal(value, saved[key]), key
    fresh = create_model(model)
    assert any(not torch.equal(v, saved[k]) for k, v in fresh.encoder.state_dict().items())


@pytest.mark.slow
def test_pretraining_resumes_after_ctrl_c_and_ends_like_an_uninterrupted_run(
    crops: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["pretrain", "--data", str(crops), "--model", "enet"]
    args += [f"--set={k}={v}" for k, v in {**TINY, "epochs": 2}.items()]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0

    real = Pretrainer._train_epoch

    def interrupted(self: Pretrainer) -> dict:
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Pretrainer, "_train_epoch", interrupted)
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 130
    assert not (tmp_path / "resumed" / ENCODER_FILE).exists()
    monkeypatch.setattr(Pretrainer, "_train_epoch", real)
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 0

    with (tmp_path / "resumed" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    a = torch.load(tmp_path / "straight" / ENCODER_FILE, weights_only=True)["encoder"]
    b = torch.load(tmp_path / "resumed" / ENCODER_FILE, weights_only=True)["encoder"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    # Another recipe in the same folder is refused rather than mixed in.
    assert main([*args, "--out", str(tmp_path / "resumed"), "--set", "lr=0.1"]) == 2


@pytest.mark.slow
def test_grid_pretraining_runs_once_on_demo_crops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = {**TINY, "data": None, "crop_frames": 6}
    weights = ensure_pretrained("enet", options, tmp_path)
    assert weights == tmp_path / "enet" / ENCODER_FILE and weights.is_file()
    assert (tmp_path / "data" / MARKER).is_file()
    monkeypatch.setattr(Pretrainer, "fit", lambda self: pytest.fail("pretrained twice"))
    assert ensure_pretrained("enet", options, tmp_path) == weights


def _image(path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8))


def test_bad_image_folders_are_one_line_errors(tmp_path: Path) -> None:
    _image(tmp_path / "one" / "cat" / "a.png")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "dog").mkdir(parents=True)
    _image(tmp_path / "empty" / "cat" / "a.png")
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "one": "at least two class subfolders",
        tmp_path / "empty": "'dog'.*no training image",
    }
    for data, message in cases.items():
        with pytest.raises(MultisegError, match=message):
            Pretrainer(PretrainConfig(data=data, model="enet", **TINY), tmp_path / "run")
    _image(tmp_path / "empty" / "dog" / "b.png")
    with pytest.raises(MultisegError, match="output stride 32"):
        Pretrainer(PretrainConfig(data=tmp_path / "empty", model="gunet", image_size=48), tmp_path / "run")


def test_pretrain_without_data_names_the_demo_option(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "multiseg", "pretrain", "--model", "enet", "--out", str(tmp_path / "run")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "--data DIR" in line and "--demo DIR" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flip", [True, False])
def test_training_crops_flip_only_when_asked(tmp_path: Path, flip: bool) -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :8] = 255  # white on the left: a flip puts it on the right
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    items = [(path, 0)] * 64
    ds = ImageFolderSet(items, size=32, train=True, seed=0, scale_min=1.0, flip=flip)
    flipped = [bool(ds[i][0][:, :, -1].float().mean() > 127) for i in range(len(items))]
    assert any(flipped) == flip
    assert not all(flipped)
