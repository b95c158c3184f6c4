"""ONNX Runtime speed paths: session options, int8 static quantisation, bench/export --dtype int8."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_benchmark

from multiseg.cli import main
from multiseg.errors import MultisegError
from multiseg.models import create_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SIZE = (64, 128)


@pytest.fixture(scope="module")
def edanet_fp32(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """EDANet (two heads) and its fp32 graph, exported once (legacy exporter: fast)."""
    from multiseg.deploy.export import export_onnx

    torch.manual_seed(0)
    model = create_model("edanet", heads={"cityscapes": 19, "gtsdb": 44}).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "edanet.onnx", sample_size=SIZE, legacy=True)
    return model, path


def test_ort_session_options_are_applied(edanet_fp32: tuple[torch.nn.Module, Path]) -> None:
    from multiseg.deploy.runtime import ort_session

    _, path = edanet_fp32
    session = ort_session(path, threads=2, spinning=False)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert (
        ort_session(path, spinning=True)
        .get_session_options()
        .get_session_config_entry("session.intra_op.allow_spinning")
        == "1"
    )
    with pytest.raises(MultisegError, match="optimization 'fast'"):
        ort_session(path, optimization="fast")


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_int8_graph_runs_and_agrees_with_fp32(
    fmt: str, edanet_fp32: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    import onnx

    from multiseg.deploy.quantize import calibration_inputs, int8_accuracy, quantize_int8
    from multiseg.deploy.runtime import ort_session

    model, fp32 = edanet_fp32
    before = fp32.read_bytes()
    out = quantize_int8(fp32, tmp_path / "int8.onnx", calibration_inputs(SIZE, 2, seed=1), quant_format=fmt)
    assert fp32.read_bytes() == before  # the fp32 graph is untouched
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    if fmt == "qdq":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        assert "QLinearConv" in ops
    # int8 weights: the graph is much smaller than the fp32 one.
    assert out.stat().st_size < 0.5 * fp32.stat().st_size
    # Dynamic axes survive quantisation: another batch and size run.
    got = ort_session(out).run(None, {"input": np.zeros((2, 3, 32, 72), np.float32)})
    assert [g.shape for g in got] == [(2, 19, 32, 72), (2, 44, 32, 72)]
    acc = int8_accuracy(model, out, calibration_inputs(SIZE, 2, seed=2))
    assert set(acc.argmax_agreement) == {"cityscapes", "gtsdb"}
    for head in acc.argmax_agreement:
        assert acc.argmax_agreement[head] > 0.9, acc
        assert 0 < acc.max_abs_diff[head] < 0.5 * acc.logit_abs_max[head], acc  # int8 is close, not exact


def test_int8_refuses_to_overwrite_fp32(edanet_fp32: tuple[torch.nn.Module, Path]) -> None:
    from multiseg.deploy.quantize import calibration_inputs, quantize_int8

    _, fp32 = edanet_fp32
    with pytest.raises(MultisegError, match="must not overwrite the fp32"):
        quantize_int8(fp32, fp32, calibration_inputs(SIZE, 1))


def test_calibration_inputs_from_an_image_folder(tmp_path: Path) -> None:
    import cv2

    from multiseg.deploy.quantize import calibration_inputs

    (tmp_path / "city").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "city" / f"{i}.png"), np.full((20, 40, 3), 40 * i, np.uint8))
    first, second = calibration_inputs(SIZE, 2, tmp_path)
    assert first.shape == (1, 3, *SIZE) and first.dtype == np.float32
    # ImageNet normalisation of a black image: (0 - mean) / std, per channel.
    assert first[0, 0, 0, 0] == pytest.approx(-0.485 / 0.229, rel=1e-5)
    (held_out,) = calibration_inputs(SIZE, 1, tmp_path, skip=2)
    assert not np.allclose(held_out, second)
    with pytest.raises(MultisegError, match="has 1 images .* after the first 2, 2 needed"):
        calibration_inputs(SIZE, 2, tmp_path, skip=2)


def test_cli_bench_int8_prints_dtype_and_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxscript")
    argv = ["bench", "--model", "edanet", "--backend", "onnxruntime", "--dtype", "int8", "--size", "64x128"]
    argv += ["--min-time", "0.05", "--warmup", "1", "--calib-count", "2", "--json", str(tmp_path / "b.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dtype=int8" in out and "QDQ, per-channel" in out and "spinning off" in out
    match = re.search(
        r"edanet int8 vs fp32 torch: cityscapes max \|logit diff\| (\S+) .* agreement (\S+) %", out
    )
    assert match is not None, out
    assert float(match.group(1)) > 0 and float(match.group(2)) > 90
    (result,) = json.loads((tmp_path / "b.json").read_text())["results"]
    assert (
        result["settings"]["dtype"] == "int8" and result["accuracy"]["argmax_agreement"]["cityscapes"] > 0.9
    )
    assert result["runs"] >= 3 and result["median_ms"] > 0


def test_cli_bench_fp32_ort_has_no_int8_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxscript")
    argv = [
        "bench",
        "--model",
        "edanet",
        "--backend",
        "onnxruntime",
        "--size",
        "64x128",
        "--min-time",
        "0.05",
    ]
    assert main([*argv, "--warmup", "1", "--ort-spinning"]) == 0
    out = capsys.readouterr().out
    assert "dtype=fp32" in out and "spinning on" in out and "int8" not in out


def test_cli_bench_int8_needs_onnxruntime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--model", "edanet", "--dtype", "int8", "--size", "64x128", "--min-time", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("multiseg bench: error:") and "needs --backend onnxruntime" in err
    assert err.count("\n") == 1


def test_cli_export_int8_keeps_fp32_and_prints_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edanet.onnx"
    argv = ["export", "--onnx", str(path), "--model", "edanet", "--size", "64x128", "--legacy"]
    assert main([*argv, "--dtype", "int8", "--calib-count", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "edanet.fp32.onnx").is_file() and path.is_file()
    assert path.stat().st_size < (tmp_path / "edanet.fp32.onnx").stat().st_size
    parity = re.findall(r"parity torch vs onnxruntime at \S+: max \|diff\| cityscapes (\S+)", out)
    assert len(parity) == 2 and max(float(d) for d in parity) < 1e-4  # fp32 parity still checked
    agreement = re.search(r"int8 accuracy vs fp32 torch on 2 held-out inputs .* agreement (\S+) %", out)
    assert agreement is not None and float(agreement.group(1)) > 90
    assert re.search(r"median of 3: fp32 \S+ ms, int8 \S+ ms", out)


def test_bench_models_alternates_variants_call_by_call() -> None:
    bench_models = load_benchmark("bench_models")
    calls: list[str] = []
    runners = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = bench_models.alternate_times(runners, warmup=1, min_time=0.0)
    assert calls[:2] == ["a", "b"]  # warm-up
    assert calls[2:] == ["a", "b"] * len(times["a"]) and len(times["a"]) == len(times["b"]) >= 3


@pytest.mark.parametrize("high", [0.9, 1.5])
def test_decomposed_prelu_equals_prelu_in_both_forms(high: float) -> None:
    """``max(x, a x)`` where every slope is <= 1 (negative ones included), ``relu + a min`` otherwise."""
    from multiseg.deploy.export import DecomposedPReLU

    prelu = torch.nn.PReLU(8)
    with torch.no_grad():
        prelu.weight.copy_(torch.linspace(-0.5, high, 8))
    decomposed = DecomposedPReLU(prelu)
    assert decomposed.two_ops == (high <= 1)
    x = torch.randn(2, 8, 5, 7, generator=torch.Generator().manual_seed(0))
    x[0, :, 0, 0] = 0.0
    torch.testing.assert_close(decomposed(x), prelu(x), rtol=0, atol=0)


def test_cpu_peak_from_cpuinfo() -> None:
    from multiseg.deploy.bench import cpu_peak_gflops

    zen2 = "vendor_id\t: AuthenticAMD\ncpu MHz\t\t: 2245.780\nflags\t\t: fpu sse avx avx2 fma\n"
    peak, text = cpu_peak_gflops(2, zen2)
    assert peak == pytest.approx(2 * 2.24578 * 2 * 8 * 2) and "AVX2+FMA" in text
    intel = "vendor_id\t: GenuineIntel\ncpu MHz\t\t: 3000.0\nflags\t\t: avx2 fma avx512f\n"
    assert cpu_peak_gflops(1, intel)[0] == pytest.approx(3.0 * 2 * 16 * 2)
    zen4 = "vendor_id\t: AuthenticAMD\ncpu MHz\t\t: 3000.0\nflags\t\t: avx2 fma avx512f\n"
    assert cpu_peak_gflops(1, zen4)[0] == pytest.approx(3.0 * 2 * 8 * 2)


def test_exported_downsamplers_keep_erfnet_in_onnxruntimes_blocked_layout(tmp_path: Path) -> None:
    """The pool branch's folded BN exports as a depthwise conv, so ORT's NCHWc pass keeps the residual
    blocks blocked: 41 layout reorders per frame before (a Mul + Add pair there), 11 now."""
    import onnx
    import onnxruntime as ort

    from multiseg.deploy.export import export_onnx

    model = create_model("erfnet", heads={"cityscapes": 19})
    path = export_onnx(model, tmp_path / "erfnet.onnx", sample_size=(64, 128), dynamic=False)
    assert "Mul" not in {n.op_type for n in onnx.load(path).graph.node}
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert ops.count("ReorderInput") + ops.count("ReorderOutput") <= 12, ops


def test_measured_gemm_ceiling_is_a_rate() -> None:
    from multiseg.deploy.bench import measured_gemm_gflops

    rate = measured_gemm_gflops(1, n=128, repeats=2)
    assert math.isfinite(rate) and rate > 0.01


def test_traffic_counts_every_operators_inputs_and_outputs_once() -> None:
    """A conv reads its input, weight and bias and writes its output; a view moves nothing; an in-place
    ReLU reads and writes its tensor: the counted bytes are exactly those."""
    from multiseg.deploy.roofline import traffic_bytes

    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    net = torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True), torch.nn.Flatten())
    x = torch.randn(1, 3, 16, 32)
    out_bytes = 8 * 16 * 32 * 4
    conv_bytes = x.numel() * 4 + (conv.weight.numel() + conv.bias.numel()) * 4 + out_bytes
    assert traffic_bytes(net, x) == conv_bytes + 2 * out_bytes


def test_roofline_names_the_limit_a_frame_meets_first() -> None:
    from multiseg.deploy.roofline import Roofline, measured_copy_gbps

    thin = Roofline(gflop=10.0, gbytes=4.0, peak_gflops=100.0, bandwidth_gbps=10.0)
    assert thin.bound == "memory" and thin.floor_ms() == pytest.approx(400.0)
    wide = Roofline(gflop=100.0, gbytes=1.0, peak_gflops=100.0, bandwidth_gbps=10.0)
    assert wide.bound == "compute" and wide.floor_ms() == pytest.approx(1000.0)
    assert "memory-bound" in thin.text() and "2.5 FLOP/byte" in thin.text()
    rate = measured_copy_gbps(1, megabytes=8, repeats=2)
    assert math.isfinite(rate) and rate > 0.01


def test_profile_ops_splits_a_frame_by_operator() -> None:
    """benchmarks/profile_ops.py: the convolutions' share and rate, then every operator, slowest first."""
    profile_ops = load_benchmark("profile_ops")
    rows = profile_ops.op_table("enet", (64, 128), runs=1)
    name, ms, share, rate = rows[0]
    assert name == "all convolutions" and 0 < share <= 1 and rate > 0
    ops = rows[1:]
    assert sum(s for _, _, s, _ in ops) == pytest.approx(1.0)
    assert [m for _, m, _, _ in ops] == sorted((m for _, m, _, _ in ops), reverse=True)
    assert any("add" in op for op, *_ in ops)  # ENet's residual additions
