"""Training building blocks: loss-weight algebra, LR schedule, early stopping, box targets, checkpoints."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from multiseg.errors import MultisegError
from multiseg.train.box_targets import BoxTargetOptions, merge_batch, merge_sample
from multiseg.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from multiseg.train.early_stopping import EarlyStopping
from multiseg.train.loss_weights import FixedWeighting, UncertaintyWeighting
from multiseg.train.progress import RunClock, format_duration, validation_line
from multiseg.train.schedule import poly_factor
from multiseg.train.summary import TrainSummary, head_sentences

# ---- learned loss weights -------------------------------------------------------------------------


def test_uncertainty_total_is_the_kendall_formula() -> None:
    w = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        w.log_vars["a"].fill_(0.5)
        w.log_vars["b"].fill_(-1.0)
    la, lb = torch.tensor(2.0), torch.tensor(0.3)
    expected = math.exp(-0.5) * 2.0 + 0.25 + math.exp(1.0) * 0.3 - 0.5
    assert math.isclose(w({"a": la, "b": lb}).item(), expected, rel_tol=1e-6)
    assert w.weights() == pytest.approx({"a": math.exp(-0.5), "b": math.exp(1.0)})


def test_uncertainty_stationary_point_is_one_over_two_l() -> None:
    w = UncertaintyWeighting(["a"], clamp_min=-10, clamp_max=10)
    opt = torch.optim.SGD(w.parameters(), lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        w({"a": torch.tensor(0.8)}).backward()
        opt.step()
    assert w.weights()["a"] == pytest.approx(1 / (2 * 0.8), rel=1e-3)


def test_absent_head_contributes_nothing_and_keeps_its_weight() -> None:
    w = UncertaintyWeighting(["cityscapes", "gtsdb"])
    opt = torch.optim.Adam(w.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        w({"cityscapes": torch.tensor(1.3)}).backward()
        opt.step()
    assert w.log_vars["gtsdb"].item() == 0.0
    assert w.log_vars["gtsdb"].grad is None or w.log_vars["gtsdb"].grad.abs().sum() == 0
    assert w.log_vars["cityscapes"].item() != 0.0


def test_uncertainty_clamp_bounds_the_weight() -> None:
    w = UncertaintyWeighting(["a"], clamp_min=-2.0)
    with torch.no_grad():
        w.log_vars["a"].fill_(-50.0)
    assert w.weights()["a"] == pytest.approx(math.exp(2.0))
    assert torch.isfinite(w({"a": torch.tensor(1e-6)}))


def test_fixed_weighting() -> None:
    w = FixedWeighting(["a", "b"], {"b": 0.5})
    assert w({"a": torch.tensor(2.0), "b": torch.tensor(4.0)}).item() == 4.0
    with pytest.raises(ValueError, match="unknown heads"):
        FixedWeighting(["a"], {"c": 1.0})


# ---- schedule and early stopping -----------------------------------------------------------------


def test_poly_schedule_values() -> None:
    assert poly_factor(0, 150) == 1.0
    assert poly_factor(75, 150) == pytest.approx(0.5**0.9)
    assert poly_factor(75, 150, form="paper") == pytest.approx(1 - 0.5**0.9)
    assert poly_factor(150, 150) == 0.0 and poly_factor(150, 150, form="paper") == 0.0
    values = [poly_factor(e, 10) for e in range(11)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_early_stopping_patience_and_state() -> None:
    es = EarlyStopping(patience=2)
    assert es.step(0.3, 0) and es.step(0.4, 1)
    assert not es.step(0.35, 2) and not es.should_stop
    assert not es.step(float("nan"), 3) and es.should_stop
    again = EarlyStopping(patience=2)
    again.load_state_dict(es.state_dict())
    assert again.best == 0.4 and again.best_epoch == 1 and again.should_stop
    assert not EarlyStopping(patience=0).should_stop


# ---- online box targets --------------------------------------------------------------------------

BG, IGN = 43, 255


def _sign_mask() -> torch.Tensor:
    m = torch.zeros(10, 12, dtype=torch.bool)
    m[2:5, 2:5] = True  # a sign inside box 0, covering 9 of its 16 pixels
    m[7:9, 9:11] = True  # an unannotated sign outside every box
    return m


def test_merge_rule_on_hand_made_maps() -> None:
    boxes = torch.tensor([[1.0, 1.0, 5.0, 5.0], [6.0, 1.0, 9.0, 4.0]])  # box 1 has no predicted sign
    classes = torch.tensor([14, 38])
    fallback = torch.full((10, 12), BG)
    fallback[1:4, 6:9] = 38
    fallback[1, 6] = IGN
    target, n_fb = merge_sample(_sign_mask(), boxes, classes, fallback, BoxTargetOptions(min_coverage=0.2))
    expected = torch.full((10, 12), BG)
    expected[2:5, 2:5] = 14  # predicted sign pixels inside box 0 get its class
    expected[7:9, 9:11] = IGN  # a predicted sign outside every box is ignored
    expected[1:4, 6:9] = fallback[1:4, 6:9]  # box 1 falls back to the data pipeline's raster
    assert torch.equal(target, expected)
    assert n_fb == 1


def test_merge_inbox_nonsign_ignore_and_overlap_order() -> None:
    sign = torch.zeros(8, 8, dtype=torch.bool)
    sign[1:7, 1:7] = True
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 4.0, 4.0]])  # big box first, small inside
    opts = BoxTargetOptions(inbox_nonsign="ignore", min_coverage=0.1)
    target, _ = merge_sample(sign, boxes, torch.tensor([1, 2]), torch.full((8, 8), BG), opts)
    assert target[0, 0] == IGN  # in the big box but not predicted sign
    assert target[1, 1] == 1 and target[2, 2] == 2 and target[3, 3] == 2  # smaller box pasted last


def test_box_and_shape_policies_use_the_raster_unchanged() -> None:
    fallback = torch.randint(0, 44, (6, 6))
    for policy in ("box", "shape"):
        target, n = merge_sample(
            torch.ones(6, 6, dtype=torch.bool),
            torch.tensor([[0.0, 0, 6, 6]]),
            torch.tensor([3]),
            fallback,
            BoxTargetOptions(policy=policy),
        )
        assert torch.equal(target, fallback) and n == 0


def test_merge_batch_counts() -> None:
    masks = torch.stack([_sign_mask(), torch.zeros(10, 12, dtype=torch.bool)])
    boxes = [torch.tensor([[1.0, 1.0, 5.0, 5.0]]), torch.tensor([[1.0, 1.0, 5.0, 5.0]])]
    classes = [torch.tensor([3]), torch.tensor([4])]
    targets, merged, fell_back = merge_batch(
        masks, boxes, classes, torch.full((2, 10, 12), BG), BoxTargetOptions()
    )
    assert targets.shape == (2, 10, 12) and (merged, fell_back) == (1, 1)


# ---- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_roundtrip_and_rng(tmp_path: Path) -> None:
    state = {"model": torch.nn.Linear(3, 2).state_dict(), "epoch": 3, "rng": rng_state()}
    first = (random.random(), float(np.random.rand()), torch.rand(2))  # noqa: NPY002
    save_checkpoint(state, tmp_path / "last.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    loaded = load_checkpoint(tmp_path / "last.pt")
    set_rng_state(loaded["rng"])
    again = (random.random(), float(np.random.rand()), torch.rand(2))  # noqa: NPY002
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])
    assert loaded["epoch"] == 3


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(MultisegError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MultisegError, match=r"cannot load checkpoint .*bad.pt"):
        load_checkpoint(bad)


def test_enet_class_weights_bound_rare_classes() -> None:
    from multiseg.train.step import enet_class_weights

    w = enet_class_weights(torch.tensor([990.0, 10.0, 0.0]))
    assert w[0] == pytest.approx(1 / math.log(1.02 + 0.99))
    assert w[1] == pytest.approx(1 / math.log(1.02 + 0.01))
    assert w[2] == pytest.approx(1 / math.log(1.02))  # an absent class gets the bounded maximum, not inf
    assert w[0] < w[1] < w[2]


# ---- the final summary ----------------------------------------------------------------------------


def test_summary_table_lists_every_head_metric(tmp_path: Path) -> None:
    final = {
        "miou/cityscapes": 0.5,
        "miou/gtsdb": 0.25,
        "miou_true/gtsdb": 0.125,
        "pseudo_iou/gtsdb": 0.9,
        "sign_iou/gtsdb": 0.6,
        "sign_category_accuracy/gtsdb": 0.4,
        "sign_accuracy/gtsdb": 0.2,
        "weight/gtsdb": 0.75,
        "loss/total": 3.0,
    }
    table = TrainSummary(tmp_path, 2, 2, 0.375, final, False, 1.0).table()
    for key in final.keys() - {"loss/total"}:
        assert any(line.split()[0] == key for line in table.splitlines()), key
    assert "loss/total" not in table


def test_summary_says_in_plain_words_what_each_head_reached(tmp_path: Path) -> None:
    final = {
        "miou/cityscapes": 0.372,
        "miou/gtsdb": 0.0,
        "miou_true/gtsdb": 0.004,
        "sign_iou/gtsdb": 0.61,
        "sign_category_accuracy/gtsdb": 0.98,
        "sign_accuracy/gtsdb": 0.015,
        "miou/vistas": math.nan,
        "miou/mean": 0.19,
    }
    cs, gtsdb, vistas = head_sentences(final, {"cityscapes": 19, "gtsdb": 43, "vistas": 65})
    assert cs.startswith("cityscapes head: mIoU 37 % ") and "over its 19 classes" in cs
    assert "finds the signs with 61 % overlap" in gtsdb and "98 % the right category (chance 25 %)" in gtsdb
    assert "names 1.5 % right (chance 2.3 %)" in gtsdb and "mIoU over the 43 signs 0.4 %" in gtsdb
    assert vistas.startswith("vistas head: no score")
    blind = {"miou/gtsdb": 0.0, "sign_iou/gtsdb": 0.0, "sign_category_accuracy/gtsdb": math.nan}
    assert head_sentences(blind | {"sign_accuracy/gtsdb": math.nan}, {}) == [
        "gtsdb head: finds no sign yet (sign IoU 0.0 %: none of its sign pixels is on a true sign); "
        "mIoU over the 43 signs 0.0 %"
    ]
    table = TrainSummary(tmp_path, 72, 72, 0.19, final, False, 1.0, classes={"cityscapes": 19}).table()
    assert table.splitlines()[-4:] == [
        "what each head reached at the last validation (epoch 72):",
        f"  {head_sentences(final, {'cityscapes': 19})[0]}",
        f"  {gtsdb}",
        f"  {vistas}",
    ]


def test_validation_line_holds_every_head_the_sign_iou_the_weights_and_the_best() -> None:
    row = {"lr": 1e-3, "miou/cityscapes": 0.2141, "miou/gtsdb": 0.003, "sign_iou/gtsdb": 0.4123}
    row |= {"miou/vistas": math.nan, "miou/mean": 0.1085, "weight/cityscapes": 0.93, "weight/gtsdb": 1.414}
    line = validation_line(8, 72, row, (0.1085, 8), "7m05s")
    assert line == (
        "epoch 8/72 val mIoU: cityscapes 0.214, gtsdb 0.003 (sign_iou 0.412), vistas -; mean 0.108 | "
        "loss weights: cityscapes 0.93, gtsdb 1.41 | best 0.108 (epoch 8) | 7m05s left"
    )
    assert validation_line(1, 1, {"miou/a": 0.5, "miou/mean": 0.5}, (-math.inf, -1)).endswith("| best -")


def test_run_clock_extrapolates_steps_and_validations_to_the_whole_run() -> None:
    now = [0.0]
    clock = RunClock(epochs=4, steps_per_epoch=10, val_every=2, clock=lambda: now[0])
    assert clock.seconds_left(0, 0) is None and clock.left_text(0, 0) == "?"
    for _ in range(10):  # epoch 1: 10 steps of 2 s
        now[0] += 2.0
        clock.step_done()
    assert clock.seconds_left(0, 10) == 3 * 10 * 2.0  # validations not timed yet: steps only
    now[0] += 100.0  # between epochs: not a step
    clock.start_epoch()
    for _ in range(10):
        now[0] += 2.0
        clock.step_done()
    clock.validation_done(30.0)  # epoch 2 validates (val_every 2); epoch 4, the last, will too
    assert clock.seconds_left(2, 0) == 2 * 10 * 2.0 + 1 * 30.0
    assert clock.seconds_left(2, 5) == 15 * 2.0 + 30.0
    assert [format_duration(s) for s in (42.4, 312, 7500)] == ["42s", "5m12s", "2h05m"]


def test_demo_config_weights_every_trained_head_and_turns_erfnet_dropout_off() -> None:
    from multiseg.models import create_model
    from multiseg.train.config import demo_config

    cfg = demo_config()
    assert cfg.model == "erfnet" and cfg.class_weighted_heads == ["cityscapes", "gtsdb", "vistas"]
    net = create_model(cfg.model, heads={"cityscapes": 19}, **cfg.model_kwargs)
    assert not [m for m in net.modules() if isinstance(m, torch.nn.Dropout2d) and m.p > 0]


def test_demo_config_follows_the_users_datasets_and_model() -> None:
    from multiseg.train.config import demo_config

    cfg = demo_config(["datasets=[cityscapes, lanes]", "model=enet"])
    assert cfg.class_weighted_heads == ["cityscapes", "lanes"]
    assert cfg.model_kwargs == {}
    chosen = demo_config(
        ["datasets=[cityscapes]", "class_weighted_heads=[gtsdb]", "model_kwargs={dropout_64: 0.1}"]
    )
    assert chosen.class_weighted_heads == ["gtsdb"] and chosen.model_kwargs == {"dropout_64": 0.1}


def test_the_long_demo_config_is_the_default_run_with_more_frames_epochs_and_sign_pixels() -> None:
    from multiseg.config import config_differences, load_config
    from multiseg.train.config import TrainConfig, demo_config

    long = load_config(TrainConfig, Path(__file__).resolve().parents[1] / "configs/demo/long.yaml")
    changed = {line.split(":")[0] for line in config_differences(demo_config(), long)}
    assert changed == {"demo_size", "dataset_resize", "epochs", "val_every", "out_dir"}


def test_describe_progress_names_the_checkpoint_kind_and_epoch() -> None:
    from multiseg.train.checkpoint import describe_progress

    def blob(epoch: int, step: int, best_epoch: int) -> dict:
        early = {"best": 0.25, "best_epoch": best_epoch, "bad_epochs": 0}
        return {
            "state": {"epoch": epoch, "step_in_epoch": step},
            "early_stopping": early,
            "config": {"epochs": 8},
        }

    best = "best mean validation mIoU, 0.2500"
    assert describe_progress(blob(3, 0, 3), "best.pt") == (
        f"the best checkpoint ({best}), after epoch 3 of 8",
        3,
    )
    assert describe_progress(blob(2, 40, 3), "best.pt")[1] == 3  # the older layout: before the counter moved
    assert (
        describe_progress(blob(3, 0, 3), "last.pt")[0]
        == f"the last checkpoint, after epoch 3 of 8, also the best ({best})"
    )
    assert describe_progress(blob(4, 0, 3), "last.pt") == (
        "the last checkpoint, after epoch 4 of 8; the best validation was epoch 3",
        4,
    )
    assert describe_progress(blob(4, 7, 3), "last.pt")[0].startswith(
        "the last checkpoint, in epoch 5 of 8 after 7 of"
    )
    assert describe_progress({"model": {}}, "enet.pt") == ("no training state in it: epoch unknown", None)
