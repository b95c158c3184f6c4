"""``multiseg eval --tta``: multi-scale and mirrored views, softmax averaged, mirror twins renamed.

A tiny ENet checkpoint on a 5-frame demo world for the evaluation itself; hand-made "networks" whose
answer depends on which way the image runs for the mirror rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from multiseg.cli import main
from multiseg.data.pipeline import normalize_on_device
from multiseg.data.sample import Mirror, swap_lut
from multiseg.evaluate.evaluator import EvalOptions, evaluate, load_run
from multiseg.evaluate.tta import TtaSpec, flip_channels, tta_predict
from multiseg.labels import GTSDB_BACKGROUND, GTSDB_FLIP_INVARIANT, GTSDB_MIRROR_PAIRS, gtsdb_mirror_map

GTSDB_FLIPS = flip_channels(Mirror(box_class_map=gtsdb_mirror_map()), 44)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, save_tiny_checkpoint: Callable[..., Path]) -> Path:
    from multiseg.demo.world import write_demo_world

    root = tmp_path_factory.mktemp("demo") / "world"
    write_demo_world(root, seed=0, n_frames=5)
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "enet.pt", root)


@pytest.mark.parametrize("full_res", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_one_scale_without_mirror_equals_plain_eval(checkpoint: Path, full_res: bool) -> None:
    model, cfg, _, _ = load_run(checkpoint)
    opts = EvalOptions(workers=0, full_res=full_res)
    plain = evaluate(model, cfg, opts, torch.device("cpu"))
    tta = evaluate(model, cfg, replace(opts, tta=TtaSpec(scales=(1.0,), flip=False)), torch.device("cpu"))
    assert [r.key for r in plain] == [r.key for r in tta] and len(plain) >= 4
    for a, b in zip(plain, tta, strict=True):
        assert a.confusion == b.confusion, a.key
        assert sum(map(sum, a.confusion)) > 0


def test_views_are_averaged_softmax_at_the_label_size(checkpoint: Path) -> None:
    """Two scales and the mirror, recomputed by hand with F.interpolate on a Cityscapes-only head."""
    model = load_run(checkpoint)[0].eval()
    image = torch.randint(0, 256, (1, 3, 32, 64), dtype=torch.uint8)
    size = (75, 130)
    spec = TtaSpec(scales=(0.5, 1.25), flip=True)
    got = tta_predict(model, image, ["cityscapes"], size, spec, {})["cityscapes"]
    x = normalize_on_device(image)
    probs = []
    with torch.inference_mode():
        for s in spec.scales:
            xs = F.interpolate(x, size=(round(32 * s), round(64 * s)), mode="bilinear", align_corners=False)
            for mirror in (False, True):
                logits = model(xs.flip(-1) if mirror else xs, heads=["cityscapes"])["cityscapes"]
                logits = logits.flip(-1) if mirror else logits
                up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
                probs.append(up.softmax(1))
    expected = torch.stack(probs).mean(0)[0].argmax(0)
    assert got.shape == size
    assert (got == expected).float().mean() > 0.999  # float32 here, float64 sums there: rare near-ties
    assert not (
        got == tta_predict(model, image, ["cityscapes"], size, TtaSpec((1.0,), False), {})["cityscapes"]
    ).all()


class Handed(nn.Module):
    """A GTSDB "network" that reads which way the image runs: its horizontal gradient ``d``.

    ``twins``: class 20 scores ``5 sign(d)``, its mirror twin 19 ``-5 sign(d)`` (a left-to-right ramp is "20",
    mirrored it is "19"). ``no_twin``: class 0 (a speed limit, no twin) scores 8 where ``d < 0``, i.e.
    in the mirrored view of a left-to-right ramp, and 0 elsewhere; background is a constant 1.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, heads: list[str]) -> dict[str, torch.Tensor]:
        d = F.pad(x[:, :1, :, 1:] - x[:, :1, :, :-1], (0, 1, 0, 0), mode="replicate")
        out = torch.full((x.shape[0], 44, *x.shape[-2:]), -10.0)
        out[:, GTSDB_BACKGROUND] = 1.0
        if self.mode == "twins":
            out[:, 20], out[:, 19] = 5 * d[:, 0].sign(), -5 * d[:, 0].sign()
        else:
            out[:, 0] = torch.where(d[:, 0] < 0, 8.0, 0.0)
        return {"gtsdb": out}


def _ramp() -> torch.Tensor:
    return torch.linspace(0, 255, 48).round().to(torch.uint8).expand(1, 3, 16, 48).contiguous()


def test_mirrored_views_rename_twin_classes() -> None:
    spec = TtaSpec(scales=(1.0,), flip=True)
    got = tta_predict(Handed("twins"), _ramp(), ["gtsdb"], (16, 48), spec, {"gtsdb": GTSDB_FLIPS})["gtsdb"]
    assert (got == 20).all()  # both views say "20" once the mirrored one's "19" is renamed
    # Without the renaming the mirrored view's "19" ties with "20" and wins the argmax (lower index).
    blind = {"gtsdb": torch.arange(44)}
    assert (tta_predict(Handed("twins"), _ramp(), ["gtsdb"], (16, 48), spec, blind)["gtsdb"] == 19).all()


def test_mirrored_views_do_not_vote_on_classes_without_a_twin() -> None:
    spec = TtaSpec(scales=(1.0,), flip=True)
    got = tta_predict(Handed("no_twin"), _ramp(), ["gtsdb"], (16, 48), spec, {"gtsdb": GTSDB_FLIPS})["gtsdb"]
    assert (got == GTSDB_BACKGROUND).all()
    # Counted as if symmetric, the mirrored view's "speed limit 20" would win everywhere.
    symmetric = {"gtsdb": torch.arange(44)}
    assert (tta_predict(Handed("no_twin"), _ramp(), ["gtsdb"], (16, 48), spec, symmetric)["gtsdb"] == 0).all()


def test_flip_channels_of_the_datasets() -> None:
    for a, b in GTSDB_MIRROR_PAIRS:
        assert GTSDB_FLIPS[a] == b and GTSDB_FLIPS[b] == a
    for c in GTSDB_FLIP_INVARIANT:
        assert GTSDB_FLIPS[c] == c
    assert GTSDB_FLIPS[GTSDB_BACKGROUND] == GTSDB_BACKGROUND
    assert GTSDB_FLIPS[0] == -1 and GTSDB_FLIPS[40] == -1  # speed limit 20, roundabout
    vistas = flip_channels(Mirror(label_lut=swap_lut([(5, 9)])), 12)
    assert vistas.tolist() == [0, 1, 2, 3, 4, 9, 6, 7, 8, 5, 10, 11]
    assert flip_channels(Mirror(), 19).tolist() == list(range(19))


@pytest.mark.slow
def test_eval_cli_tta_reports_views_and_time(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    args = ["eval", str(checkpoint), "--tta-scales", "0.75,1", "--heads", "cityscapes", "--workers", "0"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test-time augmentation: 4 views (scales 0.75, 1, each also mirrored)" in printed
    assert "evaluated in" in printed
    data = json.loads((out / "eval.json").read_text())
    assert data["tta"] == {"scales": [0.75, 1.0], "flip": True} and data["seconds"] > 0
    assert main([*args, "--tta-scales", "0.5,big"]) == 2
    assert "--tta-scales '0.5,big'" in capsys.readouterr().err
    assert main([*args, "--tta-scales", "0"]) == 2
    assert np.isfinite(data["results"][0]["miou"])
