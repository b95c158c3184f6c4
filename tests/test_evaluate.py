"""multiseg eval / predict: reports, full-resolution protocol, unified map, submissions, bad input.

A tiny ENet checkpoint on a 12-frame demo world stands in for a trained run (its numbers must equal the
training loop's validation); real Cityscapes and GTSDB frames come from ../shared/fixtures.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multiseg.cli import main
from multiseg.config import config_to_dict
from multiseg.deploy.predict import PredictOptions, run_predict
from multiseg.errors import MultisegError
from multiseg.evaluate import unified as U
from multiseg.evaluate.evaluator import EvalOptions, evaluate, load_run, mean_of, probes_for
from multiseg.evaluate.submission import evaluate_results
from multiseg.evaluate.upsample import upsample_argmax
from multiseg.labels import CITYSCAPES_NAME_TO_ID, CITYSCAPES_TRAFFIC_SIGN, cityscapes_id_to_train_id_lut
from multiseg.models import create_model
from multiseg.train.config import TrainConfig

HEADS = {"cityscapes": 19, "gtsdb": 44, "vistas": 65}
CS_ROOT = "cityscapes/mmseg_pseudo_cityscapes_256x128"
CS_IMAGE = f"{CS_ROOT}/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"
CS_GT = f"{CS_ROOT}/gtFine"
GTSDB_IMAGE = "gtsdb/iv2018_sample_results_3/image_3.png"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from multiseg.demo.world import write_demo_world

    root = tmp_path_factory.mktemp("demo") / "world"
    write_demo_world(root, seed=0, n_frames=12)
    return root


def _save_checkpoint(path: Path, root: Path, heads: dict[str, int] = HEADS, **cfg_changes: object) -> Path:
    torch.manual_seed(0)
    model = create_model("enet", heads=heads, pad_to_stride=True)
    model.eval()
    cfg = TrainConfig(
        datasets=list(heads), data_root=root, model="enet", resize_width=64, resize_height=32,
        crop_width=64, crop_height=32, **cfg_changes,
    )  # fmt: skip
    torch.save(
        {"model": model.state_dict(), "model_config": model.config, "config": config_to_dict(cfg)}, path
    )
    return path


@pytest.fixture(scope="module")
def checkpoint(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_checkpoint(tmp_path_factory.mktemp("ckpt") / "enet.pt", demo_root)


# -- upsampling and the unified map -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 16, 32, 64, 128), (7, 17, 23, 100, 61), (3, 64, 128, 32, 64)])
def test_strip_upsampling_equals_interpolate_then_argmax(shape: tuple[int, ...]) -> None:
    c, h, w, out_h, out_w = shape
    logits = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(1))
    ref = F.interpolate(logits, (out_h, out_w), mode="bilinear", align_corners=False)[0].argmax(0)
    assert torch.equal(upsample_argmax(logits, (out_h, out_w), strip=13), ref)


def _one_hot_logits(labels: list[list[int]], classes: int) -> torch.Tensor:
    t = torch.tensor(labels)
    return F.one_hot(t, classes).permute(2, 0, 1)[None].float()


def test_unified_map_painting_rules() -> None:
    road, sidewalk, sign = 0, 1, CITYSCAPES_TRAFFIC_SIGN
    cs = [[sign, sign, sign, road, road, road, sidewalk]]
    gtsdb = [[14, 43, 14, 14, 43, 43, 43]]  # stop sign, background, stop sign on road ...
    lanes = [[4, 4, 4, 4, 1, 3, 1]]  # other, ..., lane marking on road, zebra on road, marking on sidewalk
    out = U.unified_from_logits(
        {
            "cityscapes": _one_hot_logits(cs, 19),
            "gtsdb": _one_hot_logits(gtsdb, 44),
            "lanes": _one_hot_logits(lanes, 5),
        }
    )[0, 0].tolist()
    assert out == [
        U.SIGN_OFFSET + 14,  # CS traffic sign AND GTSDB stop -> the stop sign
        sign,  # GTSDB background -> plain traffic sign
        U.SIGN_OFFSET + 14,
        road,  # a sign class on a road pixel paints nothing
        U.LANE_MARKING,  # marking on road
        U.CROSSWALK_ZEBRA,
        sidewalk,  # marking on sidewalk paints nothing
    ]
    assert U.UNIFIED_CLASSES[U.SIGN_OFFSET + 14] == "sign: stop"


def test_unified_map_from_vistas_and_lanes_precedence() -> None:
    vistas = [[13, 24, 23, 8, 50, 15]]  # road, marking--general, zebra, crosswalk plain, sign front, sidewalk
    out = U.unified_from_labels({"vistas": torch.tensor(vistas)})[0].tolist()
    assert out == [0, U.LANE_MARKING, U.CROSSWALK_ZEBRA, U.CROSSWALK_PLAIN, CITYSCAPES_TRAFFIC_SIGN, 1]
    cs = torch.zeros(1, 3, dtype=torch.long)  # all road
    both = U.unified_from_labels(
        {"cityscapes": cs, "vistas": torch.tensor([[24, 24, 13]]), "lanes": torch.tensor([[3, 4, 2]])}
    )[0].tolist()
    assert both == [U.CROSSWALK_ZEBRA, U.LANE_MARKING, U.CROSSWALK_PLAIN]  # the lanes head has the last word
    assert U.can_unify({"vistas": 65}) and not U.can_unify({"gtsdb": 44})


# -- eval ---------------------------------------------------------------------------------------


def test_eval_equals_training_validation(checkpoint: Path) -> None:
    from multiseg.train.data import build_val_sets
    from multiseg.train.distributed import DistInfo
    from multiseg.train.validate import validate

    model, cfg, _, _ = load_run(checkpoint)
    results = evaluate(model, cfg, EvalOptions(max_samples=3, workers=0), torch.device("cpu"))
    cfg3 = replace(cfg, val_max_samples=3, workers=0)
    ref = validate(model, build_val_sets(cfg3), cfg3, torch.device("cpu"), DistInfo())
    assert mean_of(results, "cityscapes", "cityscapes", "labels") == pytest.approx(ref["miou/cityscapes"])
    assert mean_of(results, "gtsdb", "gtsdb", "boxes") == pytest.approx(ref["miou/gtsdb"])
    assert mean_of(results, "gtsdb", "gtsdb", "pixel gt") == pytest.approx(ref["miou_true/gtsdb"])
    true_masks = next(r for r in results if r.key == "gtsdb_on_gtsdb_pixel-gt")
    assert 0 <= true_masks.scores["sign_iou"] <= 1  # never n/a: the true masks hold signs
    for score in ("sign_iou", "sign_category_accuracy", "sign_accuracy"):
        assert true_masks.scores[score] == pytest.approx(ref[f"{score}/gtsdb"], nan_ok=True)
    assert mean_of(results, "vistas", "vistas", "labels") == pytest.approx(ref["miou/vistas"])
    vistas = next(r for r in results if r.key == "vistas_on_vistas_labels")
    assert len(vistas.groups["miou"]) == 65 and len(vistas.groups["miou_not_in_cityscapes"]) == 40
    assert not math.isnan(mean_of(results, "cityscapes", "vistas", "strict cityscapes mapping"))


def test_heads_subset_scores_gtsdb_of_a_merge_run_alone(checkpoint: Path) -> None:
    """``--heads gtsdb`` on a run whose GTSDB targets merge with the cityscapes head it leaves out."""
    model, cfg, _, _ = load_run(checkpoint)
    assert cfg.gtsdb_target == "merge"
    opts = EvalOptions(max_samples=2, workers=0)
    alone = evaluate(model, cfg, replace(opts, heads=["gtsdb"]), torch.device("cpu"))
    everything = evaluate(model, cfg, opts, torch.device("cpu"))
    assert {r.key for r in alone} == {"gtsdb_on_gtsdb_boxes", "gtsdb_on_gtsdb_pixel-gt"}
    for r in alone:
        same = next(e for e in everything if e.key == r.key)
        assert r.confusion == same.confusion and r.scores == pytest.approx(same.scores, nan_ok=True)


def test_full_res_follows_the_official_protocol(checkpoint: Path) -> None:
    """Labels at their original size, logits bilinearly upsampled: recomputed here with plain numpy."""
    from multiseg.data.pipeline import build_dataset, normalize_on_device
    from multiseg.data.transforms import EvalTransform
    from multiseg.train.data import dataset_root

    model, cfg, _, _ = load_run(checkpoint)
    # plain: the recomputation below runs the plain model; the folded form's rounding moves near-ties
    opts = EvalOptions(max_samples=2, workers=0, full_res=True, heads=["cityscapes"], plain=True)
    (result,) = evaluate(model, cfg, opts, torch.device("cpu"))
    small = build_dataset(
        "cityscapes", dataset_root(cfg, "cityscapes"), "val", transform=EvalTransform(64, 32)
    )
    full = build_dataset("cityscapes", dataset_root(cfg, "cityscapes"), "val")
    conf = np.zeros((19, 19), np.int64)
    for i in range(2):
        label = full[i]["label"].numpy().astype(np.int64)
        with torch.inference_mode():
            logits = model(normalize_on_device(small[i]["image"][None]), heads=["cityscapes"])["cityscapes"]
        up = F.interpolate(logits, label.shape, mode="bilinear", align_corners=False)[0].argmax(0).numpy()
        valid = label != 255
        np.add.at(conf, (label[valid], up[valid]), 1)
    tp = np.diag(conf).astype(float)
    denom = conf.sum(0) + conf.sum(1) - tp
    iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    np.testing.assert_allclose(np.array(result.iou), iou, rtol=1e-12)
    assert result.means["miou"] == pytest.approx(np.nanmean(iou))
    assert sum(map(sum, result.confusion)) == sum(full[i]["label"].ne(255).sum().item() for i in range(2))


@pytest.mark.slow
def test_eval_cli_writes_table_json_csv_and_plots(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = main(
        ["eval", str(checkpoint), "--max-samples", "2", "--workers", "0", "--full-res", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "miou_not_in_cityscapes" in printed and "full resolution (official protocol)" in printed
    data = json.loads((out / "eval.json").read_text())
    assert data["full_res"] is True and "full resolution" in data["resolution"]
    keys = {(r["head"], r["dataset"], r["target"]) for r in data["results"]}
    assert keys == {
        ("cityscapes", "cityscapes", "labels"),
        ("gtsdb", "gtsdb", "boxes"),
        ("gtsdb", "gtsdb", "pixel gt"),
        ("vistas", "vistas", "labels"),
        ("cityscapes", "vistas", "strict cityscapes mapping"),
    }
    gtsdb = next(r for r in data["results"] if r["target"] == "boxes")
    assert len(gtsdb["groups"]["miou"]) == 43 and len(gtsdb["per_class_iou"]) == 44
    assert 0 <= gtsdb["sign_iou"] <= 1 and "gtsdb on gtsdb pixel gt: sign_iou " in printed
    rows = (out / "eval.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 19 + 44 + 44 + 65 + 19
    for r in data["results"]:
        key = f"{r['head']}_on_{r['dataset']}_{r['target']}".replace(" ", "-")
        for kind in ("iou", "confusion"):
            img = cv2.imread(str(out / f"{kind}_{key}.png"))
            assert img is not None and img.shape[0] > 100


def test_lanes_head_is_scored_over_its_four_classes(demo_root: Path) -> None:
    from multiseg.data.pipeline import build_dataset
    from multiseg.train.data import ValSet

    ds = build_dataset("lanes", demo_root / "vistas", "validation")
    (probe,) = probes_for(ValSet("lanes", ds), {"lanes": 5})
    assert probe.groups == {"miou": (0, 1, 2, 3)} and probe.classes[:2] == ("road", "lane marking")


def test_checkpoint_of_another_model_or_head_set_is_a_clear_error(
    demo_root: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "best.pt")
    (run / "config.yaml").write_text(
        f"datasets: [cityscapes, gtsdb]\nmodel: erfnet\ndata_root: {demo_root}\n"
    )
    assert main(["eval", str(run), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model 'enet' vs 'erfnet'" in err and "extra ['vistas']" in err
    wrong = _save_checkpoint(tmp_path / "v.pt", demo_root, {"cityscapes": 19, "vistas": 66})
    model, cfg, _, _ = load_run(wrong)
    with pytest.raises(
        MultisegError, match="head 'vistas' has 66 classes but vistas split 'validation' has 65"
    ):
        evaluate(model, cfg, EvalOptions(max_samples=1, workers=0), torch.device("cpu"))


def test_unwritable_output_folder_fails_before_any_work(checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(MultisegError, match=r"--out .*a_file/out: cannot write there"):
        run_predict(checkpoint, [tmp_path], blocker / "out", PredictOptions())
    assert main(["eval", str(checkpoint), "--out", str(blocker / "out")]) == 2


# -- predict ------------------------------------------------------------------------------------


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def test_predict_on_real_cityscapes_and_gtsdb_frames(
    checkpoint: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    cs, gt = fixtures_dir / CS_IMAGE, fixtures_dir / GTSDB_IMAGE
    out = tmp_path / "pred"
    summary = run_predict(checkpoint, [cs, gt], out, PredictOptions(workers=0, batch_size=2))
    assert "predicted 2 images" in summary
    valid_ids = set(np.flatnonzero(cityscapes_id_to_train_id_lut() != 255).tolist())
    for stem, (w, h) in ((cs.stem, (256, 128)), (gt.stem, (1360, 800))):
        for head, raw, top in (
            ("cityscapes", "trainIds", 18),
            ("gtsdb", "trainIds", 43),
            ("vistas", "indices", 64),
        ):
            label = _read(out / head / raw / f"{stem}.png")
            assert label.shape == (h, w) and label.dtype == np.uint8 and label.max() <= top
            assert _read(out / head / "color" / f"{stem}.png").shape == (h, w, 3)
            assert _read(out / head / "overlay" / f"{stem}.jpg").shape == (h, w, 3)
        ids = _read(out / "cityscapes" / "labelIds" / f"{stem}.png")
        assert set(np.unique(ids).tolist()) <= valid_ids
        train = _read(out / "cityscapes" / "trainIds" / f"{stem}.png")
        assert np.array_equal(cityscapes_id_to_train_id_lut()[ids], train)
        uni = _read(out / "unified" / "ids" / f"{stem}.png")
        assert uni.shape == (h, w) and uni.max() < len(U.UNIFIED_CLASSES)
    assert _read(out / "unified" / "legend.png").ndim == 3


def test_unreadable_image_is_skipped_with_a_count_or_stops_with_strict(
    checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), np.full((40, 70, 3), 120, np.uint8))
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    summary = run_predict(
        checkpoint, [folder], tmp_path / "out", PredictOptions(workers=0, heads=["cityscapes"])
    )
    assert "predicted 1 images" in summary and "skipped 1 unreadable images" in summary
    assert _read(tmp_path / "out" / "cityscapes" / "trainIds" / "good.png").shape == (40, 70)
    with pytest.raises(MultisegError, match="unreadable image.*bad.jpg"):
        run_predict(checkpoint, [folder], tmp_path / "out2", PredictOptions(workers=0, strict=True))


def test_submission_format_and_official_rules(checkpoint: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub"
    run_predict(checkpoint, [fixtures_dir / CS_IMAGE], out, PredictOptions(workers=0, submission=True))
    png = out / "cityscapes_submission" / "frankfurt_000000_000294_leftImg8bit.png"
    pred = _read(png)
    assert pred.shape == (128, 256) and pred.ndim == 2 and pred.max() <= 33
    assert (out / "cityscapes_submission.zip").is_file()
    scored = evaluate_results(out / "cityscapes_submission", fixtures_dir / CS_GT)
    assert 0 <= scored.means["miou"] <= 1 and scored.images == 1
    # The GT label ids as a "prediction" score 1 on every present class; void predicted on road is a miss.
    gt = _read(fixtures_dir / CS_GT / "val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png")
    perfect = tmp_path / "perfect"
    perfect.mkdir()
    cv2.imwrite(str(perfect / "frankfurt_000000_000294_x.png"), gt)
    result = evaluate_results(perfect, fixtures_dir / CS_GT)
    assert result.means["miou"] == 1.0
    road = gt == CITYSCAPES_NAME_TO_ID["road"]
    holed = gt.copy()
    holed[road] = np.where(np.arange(road.sum()) % 2 == 0, 0, gt[road])  # half the road predicted "unlabeled"
    cv2.imwrite(str(perfect / "frankfurt_000000_000294_x.png"), holed)
    result = evaluate_results(perfect, fixtures_dir / CS_GT)
    assert result.iou[0] == pytest.approx((road.sum() - (road.sum() + 1) // 2) / road.sum())
    with pytest.raises(MultisegError, match="not Cityscapes frames"):
        run_predict(
            checkpoint, [fixtures_dir / GTSDB_IMAGE], tmp_path / "s2", PredictOptions(submission=True)
        )


@pytest.mark.slow
def test_onnxruntime_predictions_equal_torch(
    tiny_enet_onnx: tuple[Path, Path], demo_root: Path, tmp_path: Path
) -> None:
    from multiseg.data.pipeline import normalize_on_device
    from multiseg.deploy.predict import OrtBackend, TorchBackend, load_for_predict

    frames = sorted((demo_root / "cityscapes" / "leftImg8bit" / "val").rglob("*.png"))[:3]
    checkpoint, onnx = tiny_enet_onnx  # the graph export_for_ort wrote for this checkpoint
    model, _ = load_for_predict(checkpoint)
    heads = model.head_names
    ort, ref = OrtBackend(onnx, heads, model.output_stride), TorchBackend(model, heads, torch.device("cpu"))
    x = normalize_on_device(torch.from_numpy(cv2.imread(str(frames[0]))[None]).permute(0, 3, 1, 2))
    x = F.interpolate(x, size=(30, 61), mode="bilinear")  # not a multiple of the stride: both pad alike
    got, want = ort(x), ref(x)
    for h in heads:
        assert (got[h] - want[h]).abs().max() < 1e-4
        # An untrained net has small logits: compare argmax wherever the top two are not a float tie.
        top2 = want[h].topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > 1e-5
        assert clear.float().mean() > 0.95
        assert torch.equal(got[h].argmax(1)[clear], want[h].argmax(1)[clear]), h
    for backend in ("torch", "onnxruntime"):
        opts = PredictOptions(backend=backend, onnx=onnx if backend == "onnxruntime" else None, workers=0)
        run_predict(checkpoint, frames, tmp_path / backend, opts)
    for frame in frames:
        for h in heads:
            folder = "indices" if h == "vistas" else "trainIds"
            a, b = (_read(tmp_path / k / h / folder / f"{frame.stem}.png") for k in ("torch", "onnxruntime"))
            assert (a == b).mean() > 0.999, (frame, h)
    with pytest.raises(MultisegError, match=r"lack the checkpoint's heads \['lanes'\]"):
        OrtBackend(onnx, [*heads, "lanes"], model.output_stride)
