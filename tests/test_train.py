"""The training engine end to end through the real CLI: resume after kill -9, Ctrl-C, NaN, config checks,
and a 2-process torchrun (gloo) run against a 1-process run with the same global batch."""

from __future__ import annotations

import collections
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    TINY_RUN,
    build_once,
    metrics_rows,
    multiseg_cmd,
    only_run_dir,
    signal_once_shown,
    write_tiny_cityscapes,
)
from PIL import Image

from multiseg.demo import synthetic
from multiseg.errors import MultisegError

#: The tiny runs of the mechanics tests: ENet at 64x32 (learning is tested at 128x64 on the demo world).
TINY = [*TINY_RUN, "model=enet", "resize_width=64", "resize_height=32", "crop_width=64", "crop_height=32"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random-pixel datasets in the three real layouts (fast; learning is tested on the demo world)."""
    return build_once(tmp_path_factory, "tiny_root", _write_tiny_datasets)


def _write_tiny_datasets(root: Path) -> None:
    write_tiny_cityscapes(root)
    boxes = {
        0: [(10, 10, 30, 30, 14)],
        3: [(40, 20, 60, 44, 33)],
        7: [(5, 5, 25, 25, 1)],
        8: [(9, 9, 20, 20, 2)],
    }
    synthetic.write_gtsdb(root / "gtsdb", n_frames=9, size=(136, 80), boxes=boxes)
    synthetic.write_vistas(root / "vistas", "training", n=4, size=(96, 64))
    synthetic.write_vistas(root / "vistas", "validation", n=2, size=(96, 64), seed=3)


def _config(path: Path, root: Path, out: Path, *extra: str) -> Path:
    """A flat YAML config file: the tiny defaults, then ``extra`` key=value pairs (later ones win)."""
    values = dict(item.split("=", 1) for item in [f"data_root={root}", f"out_dir={out}", *TINY, *extra])
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return path


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*multiseg_cmd(), *args], capture_output=True, text=True, env=env, **kw)


@pytest.mark.slow
def test_kill9_then_resume_ends_like_an_uninterrupted_run(
    printed_run: tuple[str, Path], tiny_root: Path, tmp_path: Path
) -> None:
    reference_dir = printed_run[1]  # the uninterrupted run: the same arguments but out_dir
    reference = metrics_rows(reference_dir)
    assert [r["epoch"] for r in reference] == ["1", "2"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*multiseg_cmd(), *_printed_run_args(tiny_root, tmp_path / "b")], env=env, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    signal_once_shown(proc, r"epoch 2/2: +[1-9][0-9]?%", lambda: proc.send_signal(signal.SIGKILL))
    assert proc.returncode == -signal.SIGKILL
    run_dir = only_run_dir(tmp_path / "b")
    resumed = _run(["train", "--resume", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr
    assert metrics_rows(run_dir) == reference
    a = torch.load(reference_dir / "last.pt", weights_only=True)["model"]
    b = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ctrl_c_writes_a_resumable_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "run.yaml", tiny_root, tmp_path / "out", "epochs=40")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*multiseg_cmd(), "train", str(cfg)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "out").glob("*/last.pt")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "resumable checkpoint written" in err and "Traceback" not in err
    run_dir = only_run_dir(tmp_path / "out")
    state = torch.load(run_dir / "last.pt", weights_only=True)["state"]
    assert state["epoch"] >= 1
    resumed = _run(["train", "--resume", str(run_dir), "--force", "--set", "epochs=2"])
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in metrics_rows(run_dir)][-1] == "2"
    where = f"multiseg: resumed from epoch {state['epoch'] + 1}, step {state['step_in_epoch']} of "
    assert where in resumed.stdout


@pytest.fixture(scope="module")
def one_epoch_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 1-epoch Cityscapes run through the CLI; tests resume copies of its folder."""

    def train(out: Path) -> None:
        cfg = _config(out / "run.yaml", tiny_root, out / "out", "epochs=1", "datasets=[cityscapes]")
        res = _run(["train", str(cfg)])
        assert res.returncode == 0, res.stderr

    return only_run_dir(build_once(tmp_path_factory, "one_epoch_run", train) / "out")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(one_epoch_run: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(one_epoch_run, tmp_path / "run")
    before = (run_dir / "last.pt").read_bytes()
    bad = _run(["train", "--resume", str(run_dir), "--force", "--set", "epochs=3", "--set", "lr=1e30"])
    assert bad.returncode == 2
    last_line = bad.stderr.strip().splitlines()[-1]
    assert "loss became" in last_line and "the last good checkpoint is" in last_line
    assert "Traceback" not in bad.stderr
    assert (run_dir / "last.pt").read_bytes() == before


def test_resume_with_a_different_config_lists_the_differences(
    one_epoch_run: Path, tiny_root: Path, tmp_path: Path
) -> None:
    run_dir = shutil.copytree(one_epoch_run, tmp_path / "run")
    saved = (run_dir / "config.yaml").read_text()
    assert f"data_root: {tiny_root}" in saved and "epochs: 1" in saved
    res = _run(["train", "--resume", str(run_dir), "--set", "lr=0.1", "--set", "batch_size=4"])
    assert res.returncode == 2
    assert (
        "lr: 0.0005 -> 0.1" in res.stderr and "batch_size: 6 -> 4" in res.stderr and "--force" in res.stderr
    )


def _printed_run_args(root: Path, out: Path) -> list[str]:
    """``train --data ROOT`` (the demo defaults) for 2 tiny epochs, validating after each, into ``out``."""
    keys = [*TINY, "epochs=2", "val_every=1", "class_weighted_heads=[]", "amp=none", f"out_dir={out}"]
    return ["train", "--data", str(root), *[f"--set={k}" for k in keys]]


@pytest.fixture(scope="module")
def printed_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One real 2-epoch run of ``multiseg train --data ROOT`` validating after each epoch: its stdout and
    folder, shared by the tests of what a run prints and by the kill -9 test as its uninterrupted run."""

    def train(out: Path) -> None:
        res = _run(_printed_run_args(tiny_root, out / "out"))
        assert res.returncode == 0, res.stderr
        assert "run_left=" in res.stderr  # the progress bar shows the time left for the whole run
        (out / "stdout.txt").write_text(res.stdout)

    out = build_once(tmp_path_factory, "printed_run", train)
    return (out / "stdout.txt").read_text(), only_run_dir(out / "out")


def test_train_takes_data_like_eval(printed_run: tuple[str, Path], tiny_root: Path) -> None:
    """``--data ROOT`` is ``--set data_root=ROOT``; ``--data NAME=PATH`` sets one dataset's root."""
    from multiseg.config import load_config
    from multiseg.train.config import TrainConfig
    from multiseg.train.run import data_overrides

    assert f"data_root: {tiny_root}" in (printed_run[1] / "config.yaml").read_text()
    items = data_overrides(["lanes=/v: 2", "/data", "cityscapes=/c"])  # a ROOT first, whatever the order
    cfg = load_config(TrainConfig, None, items)
    assert (cfg.data_root, cfg.cityscapes_root, cfg.vistas_root) == (Path("/data"), Path("/c"), Path("/v: 2"))
    bad = _run(["train", "--data", "cityscape=x"])
    assert bad.returncode == 2 and "--data cityscape=x" in bad.stderr and "Traceback" not in bad.stderr


def test_each_validation_prints_one_line_with_the_time_left(printed_run: tuple[str, Path]) -> None:
    stdout, run_dir = printed_run
    lines = [line for line in stdout.splitlines() if " val mIoU: " in line]
    rows = metrics_rows(run_dir)
    assert len(lines) == len(rows) == 2
    for line, row, left in zip(lines, rows, (r" \| (\d+m)?\d+s left", ""), strict=True):
        miou = ", ".join(f"{h} {float(row[f'miou/{h}']):.3f}" for h in ("cityscapes", "gtsdb", "vistas"))
        weights = ", ".join(f"{h} {float(row[f'weight/{h}']):.2f}" for h in ("cityscapes", "gtsdb", "vistas"))
        best = max(float(r["miou/mean"]) for r in rows[: int(row["epoch"])])
        expected = (
            f"epoch {row['epoch']}/2 val mIoU: {miou}; mean {float(row['miou/mean']):.3f} | "
            f"loss weights: {weights} | best {best:.3f} (epoch "
        )
        assert line.startswith(expected), (line, expected)
        assert re.fullmatch(r".* \| best [0-9.]+ \(epoch [12]\)" + left, line), line


def test_summary_says_what_each_head_reached(printed_run: tuple[str, Path]) -> None:
    stdout, run_dir = printed_run
    words = stdout[stdout.index("what each head reached at the last validation (epoch 2):") :].splitlines()
    last = metrics_rows(run_dir)[-1]
    for line, head, classes in zip(words[1:], ("cityscapes", "gtsdb", "vistas"), (19, 43, 65), strict=True):
        pct = 100 * float(last[f"miou/{head}"])
        assert line.startswith(
            f"  {head} head: mIoU {pct:.1f} %" if pct < 10 else f"  {head} head: mIoU {pct:.0f} %"
        )
        assert f"over its {classes} classes" in line


def test_eval_says_which_checkpoint_and_epoch_it_scored(
    printed_run: tuple[str, Path], tmp_path: Path
) -> None:
    run_dir = printed_run[1]
    best = torch.load(run_dir / "best.pt", weights_only=True)["early_stopping"]
    quick = ["--max-samples", "1", "--workers", "0", "--heads", "cityscapes"]
    res = _run(["eval", str(run_dir), *quick, "--out", str(tmp_path / "a")])
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == (
        f"scored {run_dir / 'best.pt'}: the best checkpoint (best mean validation mIoU, {best['best']:.4f}), "
        f"after epoch {best['best_epoch']} of 2"
    )
    res = _run(["eval", str(run_dir / "last.pt"), *quick, "--out", str(tmp_path / "b")])
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    last = f"scored {run_dir / 'last.pt'}: the last checkpoint, after epoch 2 of 2"
    also = f", also the best (best mean validation mIoU, {best['best']:.4f})"
    assert first == last + (also if best["best_epoch"] == 2 else "; the best validation was epoch 1")
    assert json.loads((tmp_path / "b" / "eval.json").read_text())["checkpoint_epoch"] == 2


def test_resumed_run_says_where_it_resumed(printed_run: tuple[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(printed_run[1], run_dir)
    res = _run(["train", "--resume", str(run_dir), "--force", "--set", "epochs=3"])
    assert res.returncode == 0, res.stderr
    steps = torch.load(printed_run[1] / "last.pt", weights_only=True)["state"]["global_step"]
    line = next(line for line in res.stdout.splitlines() if line.startswith("multiseg: resumed"))
    assert line.startswith(
        f"multiseg: resumed from epoch 3, step 0 of {steps // 2} ({steps} steps done; best "
    )
    assert "epoch 3/3 val mIoU" in res.stdout


def test_missing_dataset_fails_before_training(tmp_path: Path) -> None:
    res = _run(
        ["train", "--set", f"data_root={tmp_path / 'nowhere'}", "--set", f"out_dir={tmp_path / 'out'}"]
    )
    assert res.returncode == 2
    assert "dataset 'cityscapes'" in res.stderr and "does not exist" in res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pt"))


def test_corrupt_validation_file_fails_before_any_training(tmp_path: Path) -> None:
    """Every validation file is decoded before the class-frequency pass and the first step (item 13)."""
    synthetic.write_cityscapes(tmp_path / "cityscapes", "train", {"aachen": 4}, size=(128, 64))
    val = synthetic.write_cityscapes(tmp_path / "cityscapes", "val", {"bonn": 3}, size=(128, 64), seed=1)
    synthetic.corrupt_png(val[2])
    cfg = _config(
        tmp_path / "run.yaml", tmp_path, tmp_path / "out", "datasets=[cityscapes]", "workers=1",
        "class_weighted_heads=[cityscapes]", "val_every=5", "epochs=5",
    )  # fmt: skip
    res = _run(["train", str(cfg)], timeout=300)
    assert res.returncode == 2
    (line,) = [line for line in res.stderr.splitlines() if "error" in line]
    assert line.startswith(f"multiseg train: error: {val[2]}: corrupt or unsupported image file")
    assert "class frequencies" not in res.stderr and "epoch 1/5" not in res.stderr
    assert not any((tmp_path / "out").rglob("*.pt")) and not any((tmp_path / "out").rglob("metrics.csv"))


def _without_void(root: Path, dest: Path) -> Path:
    """A copy of the tiny Cityscapes whose labels have no ignored pixel (void ids become road)."""
    from multiseg.labels import cityscapes_id_to_train_id_lut

    shutil.copytree(root / "cityscapes", dest / "cityscapes")
    lut = cityscapes_id_to_train_id_lut()
    for path in dest.rglob("*_gtFine_labelIds.png"):
        ids = np.array(Image.open(path))
        Image.fromarray(np.where(lut[ids] == 255, 7, ids).astype(np.uint8)).save(path)
    return dest


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tiny_root: Path, tmp_path: Path) -> None:
    # Each rank averages its loss over its own pixels and DDP averages the ranks, which equals the global
    # mean only when every sample has as many valid pixels: no void labels, no padding (scale fixed at 1).
    # BatchNorm frozen and dropout off: per-rank batch statistics and dropout masks would differ too.
    root = _without_void(tiny_root, tmp_path / "novoid")
    extra = ["epochs=2", "datasets=[cityscapes]", "freeze_bn=true", "flip=false", "batch_size=4"]
    extra += ["scale_min=1.0", "scale_max=1.0", "model_kwargs={dropout_early: 0.0, dropout_late: 0.0}"]
    cfg_one = _config(tmp_path / "one.yaml", root, tmp_path / "one", *extra)
    cfg_two = _config(tmp_path / "two.yaml", root, tmp_path / "two", *extra)
    assert (r := _run(["train", str(cfg_one)])).returncode == 0, r.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun
    from multiseg.train.distributed import find_free_port

    cmd = [torchrun, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={find_free_port()}"]
    cmd += ["-m", "multiseg.cli", "train", str(cfg_two)]
    two = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(only_run_dir(tmp_path / "one") / "last.pt", weights_only=True)
    b = torch.load(only_run_dir(tmp_path / "two") / "last.pt", weights_only=True)
    # Adam divides each gradient element by its own running scale, so an element whose gradient is about 0
    # can step differently when the two ranks' float sums round differently: seen here as 4 of 12,288
    # weights 1.7e-5 apart after 2 epochs. A tenth of one step (lr 5e-4) still catches a rank that would train
    # on its own gradients or samples: that moves weights by up to whole steps.
    for key, value in a["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(b["model"][key], value, rtol=1e-4, atol=5e-5)
    ra, rb = metrics_rows(only_run_dir(tmp_path / "one")), metrics_rows(only_run_dir(tmp_path / "two"))
    assert len(ra) == len(rb) == 2
    assert float(rb[1]["loss/cityscapes"]) == pytest.approx(float(ra[1]["loss/cityscapes"]), rel=1e-4)
    assert float(rb[1]["miou/cityscapes"]) == pytest.approx(float(ra[1]["miou/cityscapes"]), abs=1e-4)


@pytest.mark.slow
def test_torchrun_three_heads_with_absent_heads_on_a_rank(tiny_root: Path, tmp_path: Path) -> None:
    # Per-rank batch 1: most steps leave two of the three heads without a sample on each rank.
    cfg = _config(tmp_path / "run.yaml", tiny_root, tmp_path / "out", "epochs=1", "batch_size=2")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    from multiseg.train.distributed import find_free_port

    cmd = [torchrun, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={find_free_port()}"]
    cmd += ["-m", "multiseg.cli", "train", str(cfg)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "out")
    assert {"miou/cityscapes", "miou/gtsdb", "miou/vistas"} <= set(metrics_rows(run_dir)[0])
    # rank 0 alone prints: the start line, the validation line and the summary, once each
    for text in ("multiseg: training", "epoch 1/1 val mIoU: ", "run folder: ", "what each head reached"):
        assert res.stdout.count(text) == 1, (text, res.stdout)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from multiseg.demo.world import write_demo_world

    root = tmp_path_factory.mktemp("demo") / "world"
    write_demo_world(root, seed=0, n_frames=24)
    return root


@pytest.mark.slow
def test_short_demo_training_beats_an_untrained_model(demo_root: Path, tmp_path: Path) -> None:
    from multiseg.config import load_config
    from multiseg.train.config import TrainConfig
    from multiseg.train.data import build_val_sets
    from multiseg.train.distributed import DistInfo
    from multiseg.train.engine import Trainer
    from multiseg.train.validate import validate

    overrides = [
        *TINY_RUN,
        f"data_root={demo_root}",
        "datasets=[cityscapes]",
        "epochs=10",
        "lr=0.005",
        "model=enet",
    ]
    cfg = load_config(TrainConfig, None, overrides)
    trainer = Trainer(cfg, tmp_path / "run")
    untrained = validate(trainer.module.net, build_val_sets(cfg), cfg, torch.device("cpu"), DistInfo())
    summary = trainer.fit()
    trained = summary.final["miou/cityscapes"]
    # 40 ENet steps at 64x128 pixels: road, sky, building and vegetation are learned (0.005 -> 0.063 here;
    # ERFNet needs 60 steps and twice the time for as much).
    assert trained > 3 * untrained["miou/cityscapes"] and trained > untrained["miou/cityscapes"] + 0.04, (
        untrained,
        summary.final,
    )


def test_class_weighted_heads_must_be_trained_heads(tiny_root: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "run.yaml", tiny_root, tmp_path / "out", "datasets=[cityscapes]")
    res = _run(["train", str(cfg), "--set", "class_weighted_heads=[gtsdb]"])
    assert res.returncode == 2
    assert "class_weighted_heads" in res.stderr and "gtsdb" in res.stderr


def test_weighted_balance_draws_each_dataset_by_its_weight(tiny_root: Path, tmp_path: Path) -> None:
    from multiseg.config import load_config
    from multiseg.train.config import TrainConfig
    from multiseg.train.engine import Trainer

    weights = "balance_weights={cityscapes: 1, gtsdb: 2, vistas: 1}"
    overrides = [*TINY, f"data_root={tiny_root}", f"out_dir={tmp_path}", "balance=weighted", weights]
    trainer = Trainer(load_config(TrainConfig, None, overrides), tmp_path / "run")
    drawn = collections.Counter(trainer.names[d] for d in trainer.sampler.rank_rows()[:, 0])
    total = sum(len(ds) for ds in trainer.train_sets)  # the sampler's default epoch length
    assert sum(drawn.values()) == total
    assert abs(drawn["gtsdb"] - total / 2) <= 1 and abs(drawn["cityscapes"] - total / 4) <= 1
    # an epoch still draws every Cityscapes frame once: 12 frames are a quarter of the samples
    assert trainer.steps_per_epoch == math.ceil(total * 12 / drawn["cityscapes"] / 6)


def test_weighted_balance_without_a_weight_per_dataset_is_a_one_line_error(
    tiny_root: Path, tmp_path: Path
) -> None:
    cfg = _config(tmp_path / "run.yaml", tiny_root, tmp_path / "out", "balance=weighted")
    res = _run(["train", str(cfg), "--set", "balance_weights={cityscapes: 1, vistas: 1}"])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "balance_weights" in res.stderr and "['gtsdb']" in res.stderr
    assert not (tmp_path / "out").exists()
    res = _run(["train", str(cfg), "--set", "balance=replicate", "--set", "balance_weights={gtsdb: 2}"])
    assert res.returncode == 2 and "only read with balance: weighted" in res.stderr


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("{cityscapes: 1, gtsbd: 1}", "unknown dataset 'gtsbd'"),
        ("{cityscapes: 1, gtsdb: -1, vistas: 1}", "gtsdb must be >= 0"),
        ("{cityscapes: 0, gtsdb: 1, vistas: 1}", "cityscapes must be > 0"),
    ],
)
def test_balance_weights_are_checked(weights: str, message: str) -> None:
    from multiseg.config import load_config
    from multiseg.train.config import TrainConfig

    with pytest.raises(MultisegError, match=f"balance_weights: {message}"):
        load_config(TrainConfig, None, ["balance=weighted", f"balance_weights={weights}"])


def test_dataset_resize_sets_one_dataset_fit_size_for_training_and_validation(tiny_root: Path) -> None:
    from multiseg.config import load_config
    from multiseg.train.config import TrainConfig
    from multiseg.train.data import build_train_datasets, build_val_sets

    resize = "dataset_resize={gtsdb: [272, 160]}"
    cfg = load_config(TrainConfig, None, [*TINY, f"data_root={tiny_root}", resize])
    train = {ds.name: ds.transform.config for ds in build_train_datasets(cfg)}
    assert (train["gtsdb"].fit_width, train["gtsdb"].fit_height) == (272, 160)
    assert (train["cityscapes"].fit_width, train["cityscapes"].fit_height) == (64, 32)
    val = {vs.name: vs for vs in build_val_sets(cfg)}
    assert tuple(val["gtsdb"].dataset[0]["image"].shape[1:]) == (160, 272)  # 136x80 frames, scale 2
    assert tuple(val["cityscapes"].dataset[0]["image"].shape[1:]) == (32, 64)
    with pytest.raises(MultisegError, match="dataset_resize: unknown dataset 'gtsbd'"):
        load_config(TrainConfig, None, ["dataset_resize={gtsbd: [1, 1]}"])
    assert load_config(TrainConfig, None, ["datasets=[cityscapes]", resize]).datasets == ["cityscapes"]


@pytest.mark.parametrize(("model", "layout"), [("erfnet", "channels_last,"), ("espnet", "channels_last off")])
def test_bf16_autocast_on_cpu_with_channels_last_where_the_model_allows_it(
    tiny_root: Path, tmp_path: Path, model: str, layout: str
) -> None:
    """ESPNet's 25-channel dilated convs break bf16 channels_last gradients: it must train in NCHW."""
    cfg = _config(
        tmp_path / "run.yaml", tiny_root, tmp_path / "out", "epochs=1", "amp=bf16", "channels_last=true",
        f"model={model}", "max_steps=2",  # 2 steps: bf16 is emulated on CPUs without AVX512-BF16
    )  # fmt: skip
    res = _run(["train", str(cfg)])
    assert res.returncode == 0, res.stderr
    assert f"bfloat16 autocast, {layout}" in res.stdout
    (row,) = metrics_rows(only_run_dir(tmp_path / "out"))
    assert all(np.isfinite(float(row[f"loss/{h}"])) for h in ("cityscapes", "gtsdb", "vistas"))


def test_amp_auto_is_bf16_exactly_where_the_device_has_it() -> None:
    from multiseg.train.device import autocast_dtype, native_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("none", cpu) is None and autocast_dtype("fp16", cpu) == torch.float16
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else None)


@pytest.mark.slow
def test_compiled_training_runs_and_validates(tiny_root: Path, tmp_path: Path) -> None:
    """Dynamo captures the training step (network and losses) and validation, AOT autograd derives the
    backward. aot_eager stops before code generation: inductor's C++ build takes 2-3 minutes of CPU per
    model here, and the GPU check (benchmarks/gpu_check.py) compiles ERFNet and ENet with inductor."""
    extra = ("epochs=1", "datasets=[cityscapes]", "compile=true", "compile_backend=aot_eager", "model=erfnet")
    cfg = _config(tmp_path / "run.yaml", tiny_root, tmp_path / "out", *extra)
    res = _run(["train", str(cfg)])
    assert res.returncode == 0, res.stderr[-2000:]
    (row,) = metrics_rows(only_run_dir(tmp_path / "out"))
    assert np.isfinite(float(row["loss/cityscapes"])) and 0 <= float(row["miou/cityscapes"]) <= 1
