"""The universal taxonomy head: the taxonomy file and its checks, NLL+, the read-out, a tiny run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multiseg.data.taxonomy import DEFAULT_TAXONOMY, load_taxonomy, restrict
from multiseg.demo import synthetic
from multiseg.errors import MultisegError
from multiseg.labels import CITYSCAPES_CLASSES, GTSDB_NUM_CLASSES
from multiseg.models import create_model
from multiseg.models.universal import UNIVERSAL, union_probabilities
from multiseg.train.universal import nll_plus

HEADS = {"cityscapes": 19, "gtsdb": 44, "vistas": 65}


# ---------------------------------------------------------------- the taxonomy file


def test_shipped_taxonomy_covers_every_dataset_class_with_disjoint_sets() -> None:
    tax = load_taxonomy()
    assert tax.num_classes == 65 - 1 + GTSDB_NUM_CLASSES + 1  # Vistas' front sign split into 43 + other
    assert {h: len(u) for h, u in tax.unions.items()} == {
        "cityscapes": 19,
        "gtsdb": 44,
        "vistas": 65,
        "lanes": 5,
    }
    for head in tax.unions:
        matrix = tax.membership(head)
        assert (matrix.sum(axis=1) >= 1).all(), head  # every class covers something
        assert (matrix.sum(axis=0) <= 1).all(), head  # and no universal class twice within a dataset
    assert (tax.membership("gtsdb").sum(axis=0) == 1).all()  # GTSDB (with background) covers all
    index = {name: i for i, name in enumerate(tax.classes)}
    sign = set(tax.unions["cityscapes"][CITYSCAPES_CLASSES.index("traffic sign")])
    gtsdb_signs = {u for c in range(GTSDB_NUM_CLASSES) for u in tax.unions["gtsdb"][c]}
    assert gtsdb_signs < sign and len(sign - gtsdb_signs) == 1  # the 43 signs plus "other (front)"
    vistas_front = set(tax.unions["vistas"][tax.dataset_names["vistas"].index("object--traffic-sign--front")])
    assert vistas_front == sign
    road = set(tax.unions["cityscapes"][0])
    for marking in ("marking--general", "marking--crosswalk-zebra", "construction--flat--crosswalk-plain"):
        assert index[marking] in road  # Vistas lane markings lie inside Cityscapes road
    assert set(tax.unions["lanes"][0]) == {index["construction--flat--road"]}


def test_restricting_to_a_run_merges_what_its_datasets_do_not_tell_apart() -> None:
    tax = load_taxonomy()
    full = restrict(tax, HEADS)
    assert full.num_classes == tax.num_classes  # Vistas and GTSDB tell all 108 apart
    small = restrict(tax, {"cityscapes": 19, "gtsdb": 44})
    assert small.num_classes == 18 + 44 + 1  # 18 Cityscapes classes, 43 signs + other front, the uncovered
    assert "road" in small.classes and "sidewalk" in small.classes
    lanes = restrict(tax, {"cityscapes": 19, "gtsdb": 44, "lanes": 4})  # lanes_other: ignore
    assert len(lanes.unions["lanes"]) == 4


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_TAXONOMY.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


WALL = "    wall: [construction--barrier--wall]"
BROKEN = [  # (text in the shipped file, its replacement, the error expected)
    (
        "    sidewalk:\n",
        "    sidewalks:\n",
        r"datasets\.cityscapes: class 'sidewalk' of 'cityscapes' is not covered",
    ),
    (WALL, WALL.replace("wall]", "wal]"), r"datasets\.cityscapes\.wall: 'construction--barrier--wal' is no"),
    (
        WALL,
        WALL.replace("wall]", "wall, construction--barrier--fence]"),
        r"datasets\.cityscapes: 'wall' and 'fence' both cover 'construction--barrier--fence'",
    ),
    (
        "  - nature--snow\n",
        "  - nature--snow\n  - nature--ice\n",
        r"universal class 'nature--ice' is named by no",
    ),
    (
        "    road: [construction--flat--road]\n",
        "    road: []\n",
        r"datasets\.lanes\.road must be a non-empty",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_broken_taxonomy_is_a_one_line_error_naming_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(MultisegError, match=message) as err:
        load_taxonomy(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- NLL+ and the read-out


def _logits_and_target(classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 5, 7, generator=g) * 3
    target = torch.randint(0, classes, (2, 5, 7), generator=g)
    target[0, 0, :3] = 255
    return logits, target


def test_nll_plus_with_single_class_sets_is_cross_entropy() -> None:
    logits, target = _logits_and_target(6)
    eye = torch.eye(6)
    torch.testing.assert_close(
        nll_plus(logits, target, eye), F.cross_entropy(logits, target, ignore_index=255)
    )
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1, 1.5])
    torch.testing.assert_close(
        nll_plus(logits, target, eye, weight),
        F.cross_entropy(logits, target, weight=weight, ignore_index=255),
    )


def test_nll_plus_of_a_set_of_every_class_is_zero() -> None:
    logits, target = _logits_and_target(6)
    everything = torch.ones(1, 6)
    assert nll_plus(logits, torch.where(target == 255, 255, 0), everything).item() == 0.0
    assert nll_plus(logits, torch.full_like(target, 255), everything) is None  # every pixel ignored


def test_nll_plus_sums_the_set_and_stays_finite_where_probabilities_underflow() -> None:
    logits, target = _logits_and_target(6)
    sets = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.float32)
    target = target % 3
    probs = torch.softmax(logits, 1)
    summed = union_probabilities(probs, sets)
    expected = -torch.log(summed.gather(1, target[:, None]))[:, 0]
    torch.testing.assert_close(nll_plus(logits, target, sets), expected.mean())
    far = torch.zeros(1, 6, 1, 1)
    far[0, 0] = 200.0  # class 0 takes all the mass: the set {3, 4, 5} has probability e^-200 in fp32
    loss = nll_plus(far, torch.full((1, 1, 1), 2), sets)
    assert torch.isfinite(loss) and abs(loss.item() - (200.0 - np.log(3))) < 1e-3


def test_mapping_back_is_exact_on_one_hot_inputs() -> None:
    model = create_model("enet", heads=HEADS, head_mode="universal").eval()
    tax = model.readout.taxonomy
    u = torch.arange(tax.num_classes)
    one_hot = F.one_hot(u, tax.num_classes).float().T[None, :, :, None]  # (1, U, U, 1): pixel i is class i
    for head in HEADS:
        member = model.readout.membership(head)
        mapped = union_probabilities(one_hot, member)
        owner = member.argmax(0)  # the dataset class of each universal class
        covered = member.sum(0) > 0
        assert torch.equal(mapped[0, :, covered, 0], F.one_hot(owner[covered], len(member)).float().T)
        assert torch.equal(mapped[0, :, ~covered, 0], torch.zeros(len(member), int((~covered).sum())))
        # and through the model's read-out of (near) one-hot logits: argmax is the owning class
        pred = model.readout(one_hot * 50.0, head).argmax(1)[0, :, 0]
        assert torch.equal(pred[covered], owner[covered])


def test_universal_model_outputs_and_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("erfnet", heads={"cityscapes": 19, "gtsdb": 44}, head_mode="universal").eval()
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        out = model(x, heads=["cityscapes", "gtsdb", UNIVERSAL])
    assert {k: v.shape[1] for k, v in out.items()} == {"cityscapes": 19, "gtsdb": 44, UNIVERSAL: 63}
    torch.testing.assert_close(out["gtsdb"].exp().sum(1), torch.ones(2, 32, 64))  # GTSDB covers it all
    assert (out["cityscapes"].exp().sum(1) <= 1 + 1e-5).all()
    torch.save({"model": model.state_dict(), "model_config": model.config}, tmp_path / "m.pt")
    from multiseg.models import model_from_checkpoint

    again = model_from_checkpoint(tmp_path / "m.pt").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x)["cityscapes"], out["cityscapes"])
    with pytest.raises(MultisegError, match="taxonomy: 'gtsdb' has 44 classes, the head 43"):
        create_model("enet", heads={"cityscapes": 19, "gtsdb": 43}, head_mode="universal",
                     taxonomy=model.config["taxonomy"])  # fmt: skip


# ---------------------------------------------------------------- a tiny universal run, through the CLI


def _multiseg() -> list[str]:
    exe = shutil.which("multiseg", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "multiseg.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*_multiseg(), *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    synthetic.write_cityscapes(root / "cityscapes", "train", {"aachen": 6}, size=(128, 64))
    synthetic.write_cityscapes(root / "cityscapes", "val", {"frankfurt": 2}, size=(128, 64), seed=1)
    boxes = {0: [(10, 10, 30, 30, 14)], 3: [(40, 20, 60, 44, 33)], 7: [(5, 5, 25, 25, 1)]}
    synthetic.write_gtsdb(root / "gtsdb", n_frames=9, size=(136, 80), boxes=boxes)
    synthetic.write_vistas(root / "vistas", "training", n=4, size=(96, 64))
    synthetic.write_vistas(root / "vistas", "validation", n=2, size=(96, 64), seed=3)
    return root


def _config(path: Path, root: Path, out: Path, **extra: str) -> Path:
    values = {
        "data_root": str(root), "out_dir": str(out), "model": "enet", "head_mode": "universal",
        "datasets": "[cityscapes, gtsdb, vistas]", "resize_width": "64", "resize_height": "32",
        "crop_height": "32", "crop_width": "64", "workers": "0", "threads": "1", "epochs": "1",
        "class_weighted_heads": "[gtsdb]", **extra,
    }  # fmt: skip
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return path


@pytest.mark.slow
def test_tiny_universal_run_trains_evaluates_predicts_and_exports(tiny_root: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "cfg.yaml", tiny_root, tmp_path / "runs")
    res = _run("train", str(cfg))
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    for key in ("miou/cityscapes", "miou/gtsdb", "miou/vistas"):
        assert key in res.stdout
    blob = torch.load(run / "last.pt", weights_only=False)
    assert blob["model_config"]["head_mode"] == "universal"
    assert len(blob["model_config"]["taxonomy"]["classes"]) == 108

    res = _run("eval", str(run), "--max-samples", "2", "--workers", "0", "--out", str(tmp_path / "eval"))
    assert res.returncode == 0, res.stderr[-2000:]
    heads = {r["head"] for r in json.loads((tmp_path / "eval" / "eval.json").read_text())["results"]}
    assert heads == {"cityscapes", "gtsdb", "vistas"}

    images = sorted((tiny_root / "cityscapes" / "leftImg8bit" / "val").rglob("*.png"))
    res = _run("predict", str(run), str(images[0]), "--out", str(tmp_path / "pred"), "--workers", "0")
    assert res.returncode == 0, res.stderr[-2000:]
    uni = cv2.imread(str(next((tmp_path / "pred" / UNIVERSAL / "ids").rglob("*.png"))), cv2.IMREAD_UNCHANGED)
    assert uni.shape == (64, 128) and uni.max() < 108
    assert not (tmp_path / "pred" / "unified").exists()  # a universal model's unified map is universal/

    pytest.importorskip("onnxruntime")
    onnx = tmp_path / "model.onnx"
    res = _run("export", "--checkpoint", str(run / "last.pt"), "--onnx", str(onnx), "--size", "64x128",
               "--legacy", "--heads", "cityscapes,gtsdb,vistas,universal")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "max |diff| cityscapes" in res.stdout and onnx.is_file()


def test_training_with_a_broken_taxonomy_fails_in_one_line(tiny_root: Path, tmp_path: Path) -> None:
    broken = _broken(tmp_path, "    sidewalk:\n", "    sidewalks:\n")
    cfg = _config(tmp_path / "cfg.yaml", tiny_root, tmp_path / "runs", taxonomy=str(broken))
    res = _run("train", str(cfg))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and str(broken) in res.stderr and "sidewalk" in res.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_study_renders_the_head_mode_table_and_figure_only_with_a_universal_cell(tmp_path: Path) -> None:
    from multiseg.experiments.heads import FIGURE_FILE, TABLE_FILE, render_head_modes

    rows = [
        {"model": m, "setting": "CS+GTSDB+MV", "head_mode": mode, "pretrained": False, "epochs": 8,
         "miou/cityscapes": 0.3, "miou/gtsdb": 0.0, "miou/vistas": 0.2, "miou/mean": 0.17,
         "params": 2_000_000, "fps": 40.0}
        for m in ("erfnet", "enet") for mode in ("decoder", "universal")
    ]  # fmt: skip
    assert render_head_modes(rows[::2], tmp_path, "CPU") == []  # no universal cell: nothing
    assert [p.name for p in render_head_modes(rows, tmp_path, "CPU")] == [TABLE_FILE, FIGURE_FILE]
    table = (tmp_path / TABLE_FILE).read_text().splitlines()
    assert table[0] == "| Model | Training sets | Head | CS | GTSDB | MV | Mean | Params (M) | FPS |"
    assert table[2].startswith("| ENet | CS+GTSDB+MV | multi-head | 30.0 | 0.0 | 20.0 | 17.0 | 2.00 | 40.0 |")
    assert table[3].startswith("| ENet | CS+GTSDB+MV | universal |")
    assert cv2.imread(str(tmp_path / FIGURE_FILE)).shape[1] > 800
