"""Tests of multiseg.models: the six networks, the multi-head contract, GUM, BN folding, ONNX, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from multiseg.cli import main
from multiseg.errors import MultisegError
from multiseg.models import HEAD_MODES, create_model, inference_model, list_models, load_encoder_weights
from multiseg.models.complexity import REFERENCE_PARAMS, count_macs
from multiseg.models.enet import (
    _max_pool_slots,
    _max_unpool_slots,
    max_pool2x2_with_argmax,
    max_unpool2x2,
)
from multiseg.models.gum import GuidanceBranch, GuidedUpsampling, guided_upsample

MODELS = list_models()
HEAD_TABLES = {1: {"cityscapes": 19}, 3: {"cityscapes": 19, "gtsdb": 44, "vistas": 65}}


def small_input(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """The smallest comfortable input for the model's stride: 64x128, or 2x4 strides if that is bigger."""
    s = model.output_stride
    h, w = max(64, 2 * s), max(128, 4 * s)
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BN layers non-trivial statistics and GUM guidance non-zero offsets (both start trivial)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
        if isinstance(m, GuidanceBranch):
            last = m.layers[-2]
            last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.05)
            last.bias.copy_(torch.randn(last.bias.shape, generator=g))
    return model


# ---------------------------------------------------------------- registry


def test_registry_lists_the_six() -> None:
    assert MODELS == ["enet", "erfnet", "espnet", "edanet", "gunet", "igumnet"]


def test_unknown_model_names_it_and_suggests() -> None:
    with pytest.raises(MultisegError, match=r"unknown model 'erfnt'.*did you mean 'erfnet'"):
        create_model("erfnt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"head_mode": "shared"}, "head_mode 'shared'"),
        ({"heads": {}}, "at least one head"),
        ({"heads": {"cityscapes": 0}}, "'cityscapes' needs a positive class count"),
        ({"heads": {"city scapes": 19}}, "must be a Python identifier"),
        ({"not_an_option": 1}, "model 'edanet'.*not_an_option"),
    ],
)
def test_create_model_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(MultisegError, match=message):
        create_model("edanet", **kwargs)


# ---------------------------------------------------------------- the multi-head contract


@pytest.mark.parametrize("n_heads", [1, 3])
@pytest.mark.parametrize("head_mode", HEAD_MODES)
@pytest.mark.parametrize("name", MODELS)
def test_multihead_contract(name: str, head_mode: str, n_heads: int) -> None:
    torch.manual_seed(0)
    heads = HEAD_TABLES[n_heads]
    model = create_model(name, heads=heads, head_mode=head_mode)
    assert model.head_names == list(heads) and model.num_classes == heads
    # universal: one decoder over the universal classes, every dataset head read out of it
    modules = {"universal": None} if head_mode == "universal" else heads
    assert set(model.heads) == set(modules)
    x = small_input(model)
    n, _, h, w = x.shape

    # Training forward: every head at input resolution; gradients reach every head and the encoder.
    model.train()
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (n, c, h, w) for k, c in heads.items()}
    sum((v**2).mean() for v in out.values()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
    assert sum(p.grad.abs().sum() for p in model.encoder.parameters()) > 0
    for head in modules:
        assert sum(p.grad.abs().sum() for p in model.heads[head].parameters()) > 0, head

    # Eval is deterministic; sample selection gives the rows of the full-batch logits.
    model.eval()
    randomize_(model)
    with torch.no_grad():
        full = model(x)
        again = model(x)
        for head in heads:
            torch.testing.assert_close(full[head], again[head], rtol=0, atol=0)
        names = list(heads)
        selection = {names[0]: torch.tensor([1])}
        if n_heads == 3:
            selection = {
                names[0]: torch.tensor([0, 1]),
                names[1]: torch.tensor([1]),
                names[2]: torch.tensor([0]),
            }
        picked = model(x, heads=selection)
        assert set(picked) == set(selection)
        for head, idx in selection.items():
            assert picked[head].shape == (len(idx), heads[head], h, w)
            torch.testing.assert_close(picked[head], full[head][idx], rtol=1e-4, atol=1e-5)
        only = model(x, heads=[names[-1]])
        assert list(only) == [names[-1]]
        torch.testing.assert_close(only[names[-1]], full[names[-1]], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_gradients_on_cpu_are_finite_in_the_training_layout(name: str) -> None:
    """Under CPU bf16, training uses channels_last only where ``cpu_bf16_channels_last`` allows it.

    128x256 puts ESPNet's and EDANet's dilated convs at sizes where channels_last bf16 gives
    non-finite weight gradients (torch 2.13), so flipping their flag makes this test fail.
    """
    torch.manual_seed(0)
    model = create_model(name, heads=HEAD_TABLES[3]).train()
    x = torch.randn(2, 3, 128, 256, generator=torch.Generator().manual_seed(0))
    if model.cpu_bf16_channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    sum((v.float() ** 2).mean() for v in out.values()).backward()
    for pname, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), f"{pname}: non-finite bf16 gradient"


def test_heads_with_no_samples_return_empty_logits_and_stay_unused() -> None:
    model = create_model("erfnet", heads={"cityscapes": 19, "gtsdb": 44}, head_mode="last_conv")
    x = small_input(model)
    out = model(x, heads={"cityscapes": torch.tensor([0, 1]), "gtsdb": torch.tensor([], dtype=torch.long)})
    assert out["gtsdb"].shape == (0, 44, 64, 128)
    out["cityscapes"].mean().backward()
    assert all(p.grad is None for p in model.heads["gtsdb"].parameters())


def test_unknown_head_is_a_user_error() -> None:
    model = create_model("edanet")
    with pytest.raises(MultisegError, match="unknown head 'mapillary'"):
        model(torch.zeros(1, 3, 64, 64), heads=["mapillary"])


def test_size_not_multiple_of_stride_raises_or_pads() -> None:
    strict = create_model("gunet", heads={"cityscapes": 19}).eval()
    with pytest.raises(MultisegError, match="70x100 is not a multiple of gunet's output stride 32"):
        strict(torch.zeros(1, 3, 70, 100))
    padded = create_model("enet", heads={"cityscapes": 19}, pad_to_stride=True).eval()
    x = torch.randn(1, 3, 70, 100)
    with torch.no_grad():
        out = padded(x)["cityscapes"]
        reference = padded(F.pad(x, (0, 4, 0, 2)))["cityscapes"][..., :70, :100]
    assert out.shape == (1, 19, 70, 100)
    torch.testing.assert_close(out, reference)


def test_igumnet_last_conv_cannot_share_logit_guidance() -> None:
    with pytest.raises(MultisegError, match="cannot read logits"):
        create_model("igumnet", head_mode="last_conv", guidance_input="logits")


def test_igumnet_with_several_hypotheses_runs() -> None:
    model = create_model("igumnet", heads={"cityscapes": 19}, hypotheses=2).eval()
    randomize_(model)
    with torch.no_grad():
        out = model(small_input(model, batch=1))["cityscapes"]
    assert out.shape == (1, 19, 64, 128) and torch.isfinite(out).all()


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_counts_match_the_references(name: str) -> None:
    total = create_model(name, heads={"cityscapes": 19}).num_parameters()["total"]
    assert abs(total - REFERENCE_PARAMS[name]) / REFERENCE_PARAMS[name] < 0.01


def test_encoder_decoder_split_of_the_referenced_models() -> None:
    # specs/models.md 10: encoder counts of the references, and 4.3: ERFNet's decoder.
    expected = {"enet": 338_156, "erfnet": 1_874_044, "espnet": 344_329, "edanet": 680_916}
    for name, encoder in expected.items():
        assert create_model(name, heads={"cityscapes": 19}).num_parameters()["encoder"] == encoder
    assert create_model("erfnet", heads={"cityscapes": 19}).num_parameters()["decoder"] == 190_147


def test_last_conv_mode_duplicates_only_the_last_layer() -> None:
    one = create_model("erfnet", heads={"cityscapes": 19}, head_mode="last_conv").num_parameters()["total"]
    two = create_model("erfnet", heads={"cityscapes": 19, "gtsdb": 44}, head_mode="last_conv")
    assert two.num_parameters()["total"] - one == 16 * 44 * 4 + 44
    assert two.shared_decoder is not None


def test_macs_of_erfnet_match_the_spec() -> None:
    model = create_model("erfnet", heads={"cityscapes": 19})
    assert count_macs(model, torch.zeros(1, 3, 512, 1024)) / 1e9 == pytest.approx(26.60, abs=0.01)


# ---------------------------------------------------------------- ENet pooling


def test_enet_unpooling_matches_torch_max_unpool() -> None:
    x = torch.randn(2, 5, 8, 12)
    values, slots = max_pool2x2_with_argmax(x)
    ref_values, ref_indices = F.max_pool2d(x, 2, 2, return_indices=True)
    torch.testing.assert_close(values, ref_values, rtol=0, atol=0)
    y = torch.randn_like(values)
    torch.testing.assert_close(max_unpool2x2(y, slots), F.max_unpool2d(y, ref_indices, 2, 2), rtol=0, atol=0)
    # The slot formulation the TorchScript exporter traces gives the same results.
    slot_values, window_slots = _max_pool_slots(x)
    torch.testing.assert_close(slot_values, ref_values, rtol=0, atol=0)
    torch.testing.assert_close(_max_unpool_slots(y, window_slots), max_unpool2x2(y, slots), rtol=0, atol=0)


def test_edanet_inference_buffer_equals_the_concatenations() -> None:
    torch.manual_seed(0)
    model = randomize_(create_model("edanet", heads=HEAD_TABLES[1])).eval()
    x = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        concatenated = model.encoder.layers(x)
        buffered = model.encoder(x)["features"]  # no autograd: the one-buffer path
    torch.testing.assert_close(buffered, concatenated, rtol=1e-5, atol=1e-5)
    with torch.enable_grad():
        assert model.encoder(x)["features"].grad_fn is not None  # training keeps torch.cat


# ---------------------------------------------------------------- GUM (gum_networks.md 1.4)


def _coarse(channels: int = 19) -> torch.Tensor:
    return torch.randn(2, channels, 8, 16, generator=torch.Generator().manual_seed(1))


def test_gum_zero_offsets_is_plain_nearest_upsampling() -> None:
    u = _coarse()
    zero = torch.zeros(2, 2, 64, 128)
    torch.testing.assert_close(
        guided_upsample(u, zero, "nearest"), F.interpolate(u, (64, 128), mode="nearest"), rtol=0, atol=0
    )


def test_gum_zero_offsets_is_plain_bilinear_upsampling() -> None:
    u = _coarse()
    expected = F.interpolate(u, (64, 128), mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        guided_upsample(u, torch.zeros(2, 2, 64, 128), "bilinear"), expected, rtol=0, atol=1e-5
    )


def test_gum_unit_offset_shifts_by_one_coarse_cell() -> None:
    u = _coarse()
    offsets = torch.zeros(2, 2, 64, 128)
    offsets[:, 0] = 1.0  # +1 coarse pixel along x
    shifted = guided_upsample(u, offsets, "nearest")
    plain = F.interpolate(u, (64, 128), mode="nearest")
    torch.testing.assert_close(shifted[..., :-8], plain[..., 8:], rtol=0, atol=0)
    torch.testing.assert_close(shifted[..., -8:], plain[..., -8:], rtol=0, atol=0)  # border padding


def test_gum_offsets_learn_through_bilinear_only() -> None:
    u = _coarse()
    grads = {}
    for mode in ("nearest", "bilinear"):
        offsets = (torch.rand(2, 2, 64, 128) - 0.5).requires_grad_()
        (guided_upsample(u, offsets, mode) * torch.randn(2, 19, 64, 128)).sum().backward()
        grads[mode] = offsets.grad.abs().sum().item()
    assert grads["nearest"] == 0.0 and grads["bilinear"] > 0.0


def test_gum_module_switches_kernel_between_train_and_eval() -> None:
    gum = GuidedUpsampling(train_mode="bilinear", eval_mode="nearest")
    u, zero = _coarse(), torch.zeros(2, 2, 64, 128)
    torch.testing.assert_close(
        gum.train()(u, zero), F.interpolate(u, (64, 128), mode="bilinear"), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        gum.eval()(u, zero), F.interpolate(u, (64, 128), mode="nearest"), atol=0, rtol=0
    )


def test_fresh_gum_networks_start_as_plain_upsampling() -> None:
    model = create_model("igumnet", heads={"cityscapes": 19}).eval()
    x = small_input(model, batch=1)
    with torch.no_grad():
        out = model(x)["cityscapes"]
        coarse = model.heads["cityscapes"].classifier(model.encoder(x)["features"])
    torch.testing.assert_close(out, F.interpolate(coarse, (64, 128), mode="bilinear"), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- encoder weights


def test_encoder_weights_round_trip(tmp_path: Path) -> None:
    source = create_model("espnet", heads={"cityscapes": 19})
    torch.save(source.encoder.state_dict(), tmp_path / "plain.pt")
    torch.save({"encoder": source.encoder.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    for file in ("plain.pt", "wrapped.pt"):
        target = create_model("espnet", heads={"vistas": 65}, encoder_weights=tmp_path / file)
        for key, value in source.encoder.state_dict().items():
            assert torch.equal(target.encoder.state_dict()[key], value), key


def test_encoder_weights_mismatch_lists_keys(tmp_path: Path) -> None:
    torch.save(create_model("erfnet").encoder.state_dict(), tmp_path / "erfnet.pt")
    with pytest.raises(MultisegError, match=r"missing keys \[.*\], unexpected keys \[down1\.bn\.bias"):
        create_model("enet", encoder_weights=tmp_path / "erfnet.pt")
    with pytest.raises(MultisegError, match="does not exist"):
        load_encoder_weights(create_model("enet"), tmp_path / "absent.pt")


def test_encoder_weights_shape_mismatch(tmp_path: Path) -> None:
    state = create_model("edanet").encoder.state_dict()
    state["layers.0.conv.bias"] = torch.zeros(5)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(MultisegError, match=r"shape mismatch for layers\.0\.conv\.bias"):
        create_model("edanet", encoder_weights=tmp_path / "bad.pt")


# ---------------------------------------------------------------- BN folding, inference form


@pytest.mark.parametrize("head_mode", HEAD_MODES)
@pytest.mark.parametrize("name", MODELS)
def test_inference_model_equals_the_plain_model(name: str, head_mode: str) -> None:
    model = randomize_(create_model(name, heads={"cityscapes": 19, "gtsdb": 44}, head_mode=head_mode).eval())
    fast = inference_model(model)
    bn = lambda m: sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert bn(fast) < bn(model)
    first_conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last) == model.inference_channels_last
    x = small_input(model, batch=2)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert list(got) == list(expected)
    for head in expected:
        torch.testing.assert_close(got[head], expected[head], rtol=1e-4, atol=1e-5)
    assert inference_model(model, optimize=False) is model and not model.training


# ---------------------------------------------------------------- ONNX


def _export_cases() -> list:
    """Every model with the fast legacy exporter; the dynamo exporter (7-45 s each) is slow but for EDANet."""
    cases = [pytest.param(n, True, id=f"{n}-legacy") for n in MODELS]
    for n in MODELS:
        marks = () if n == "edanet" else (pytest.mark.slow,)
        cases.append(pytest.param(n, False, id=f"{n}-dynamo", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "legacy"), _export_cases())
def test_onnx_export_matches_torch(name: str, legacy: bool, tmp_path: Path) -> None:
    """Each model's graph, BN folded, matches torch at the export size and at another batch and size.

    The dynamo exporter's symbolic tracing costs time per node, so it exports one head (every op type of
    the model; the heads are copies of one decoder): 9-32 % fewer nodes. Graphs with several dynamo
    heads are checked by the tiny ENet graph of the onnxruntime eval and predict tests (three heads).
    """
    pytest.importorskip("onnxruntime")
    if not legacy:
        pytest.importorskip("onnxscript")
    from multiseg.deploy.export import check_parity, export_onnx

    heads = {"cityscapes": 19, "gtsdb": 44} if legacy else {"gtsdb": 44}
    model = randomize_(create_model(name, heads=heads).eval())
    s = model.output_stride
    path = export_onnx(model, tmp_path / f"{name}.onnx", sample_size=(64, 128), legacy=legacy)
    # Dynamic axes: another batch size and another spatial size than the export example.
    results = check_parity(model, path, [(1, 3, 64, 128), (2, 3, 2 * s, 3 * s)])
    assert [r.shape for r in results] == [(1, 3, 64, 128), (2, 3, 2 * s, 3 * s)]
    for result in results:
        assert set(result.max_abs_diff) == set(heads)
        assert result.worst < 1e-4, (result.shape, result.max_abs_diff)


@pytest.mark.parametrize("name", MODELS)
def test_universal_onnx_export_matches_torch(name: str, tmp_path: Path) -> None:
    """A universal model exports its dataset read-outs and its universal logits (legacy exporter)."""
    pytest.importorskip("onnxruntime")
    from multiseg.deploy.export import check_parity, export_onnx

    heads = {"cityscapes": 19, "gtsdb": 44}
    model = randomize_(create_model(name, heads=heads, head_mode="universal").eval())
    outputs = [*heads, "universal"]
    path = export_onnx(model, tmp_path / f"{name}.onnx", outputs, sample_size=(64, 128), legacy=True)
    s = model.output_stride
    for result in check_parity(model, path, [(1, 3, 64, 128), (2, 3, 2 * s, 3 * s)], outputs):
        assert set(result.max_abs_diff) == set(outputs)
        assert result.worst < 1e-4, (result.shape, result.max_abs_diff)


# ---------------------------------------------------------------- CLI


def test_cli_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--size", "64x128"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert f"\n{name} " in out
    assert "364,311" in out and "2,064,191" in out


def test_cli_bench_writes_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--model", "edanet", "--size", "64x128", "--min-time", "0.05", "--warmup", "1", "--json"]
    assert main([*argv, str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    assert "protocol: batch 1" in out and "edanet" in out and "BN folded, NCHW" in out  # EDANet: no gain
    payload = json.loads((tmp_path / "bench.json").read_text())
    (result,) = payload["results"]
    assert result["model"] == "edanet" and result["params"]["total"] == 689_485
    assert result["runs"] >= 3 and 0 < result["median_ms"] <= result["p90_ms"]


def test_cli_bench_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--model", "gunet", "--size", "64x100", "--min-time", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("multiseg bench: error:") and "stride 32" in err and err.count("\n") == 1


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    path = tmp_path / "edanet.onnx"
    heads = ["--heads", "cityscapes:19,gtsdb:44", "--size", "64x128"]
    # --legacy is fast; the default dynamo exporter is covered by test_onnx_export_matches_torch.
    assert main(["export", "--onnx", str(path), "--model", "edanet", *heads, "--legacy"]) == 0
    out = capsys.readouterr().out
    parity = re.findall(
        r"parity torch vs onnxruntime at (\S+): max \|diff\| cityscapes (\S+), gtsdb (\S+)", out
    )
    assert path.is_file() and [p[0] for p in parity] == ["1x3x64x128", "2x3x32x72"]
    assert max(float(d) for p in parity for d in p[1:]) < 1e-4
    assert "onnxruntime CPU run" in out


def test_cli_export_from_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = create_model("edanet", heads={"cityscapes": 19, "gtsdb": 44})
    torch.save({"model_config": model.config, "model": model.state_dict()}, tmp_path / "ckpt.pt")
    argv = ["export", "--onnx", str(tmp_path / "g.onnx"), "--checkpoint", str(tmp_path / "ckpt.pt")]
    assert main([*argv, "--heads", "gtsdb", "--size", "64x64", "--static"]) == 0
    out = capsys.readouterr().out
    assert "heads [gtsdb]" in out and "static shape" in out
