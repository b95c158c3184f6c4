"""``multiseg bench``: parameters, GMACs and inference latency of the registered networks.

Protocol (printed with every table, after specs/peers.md 4): batch 1, ``model.eval()``,
``torch.inference_mode()``, the model in its fastest exact form by default (BatchNorm folded into the
convs, channels_last where that model gains from it: :func:`multiseg.models.inference_model`; the
table's ``form`` column says which; ``--plain`` times the plain eager model), random input of the
stated size, a
warm-up of at least 10 runs on CPU / 50 on CUDA, then a timed loop of at least ``min_time`` seconds
(3 s by default) timing each forward with ``time.perf_counter``, CUDA synchronised before and after
each forward. Reported: median and p90 latency, and FPS = 1000 / median. Model output only: no argmax,
no resizing beyond what the network does itself. Latency on a shared host is noisy; compare ratios
taken in one run.

``--backend onnxruntime``: the BN-folded network exported with a static 1x3xHxW shape (opset 18), run
by an ORT CPU session with all graph optimisations, the torch thread count as intra-op threads, one
inter-op thread, sequential execution and intra-op spinning off unless ``ort_spinning``. ``--dtype
int8`` (onnxruntime only) times that graph's static int8 quantisation (:func:`multiseg.deploy.export.
quantize_int8`) and reports its accuracy against fp32 torch (max |logit diff|, argmax agreement) on two
held-out inputs; it never replaces the fp32 figures silently: the dtype is in the protocol and the table.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from multiseg.deploy.export import DEFAULT_OPSET, HEAD_SETS, export_onnx
from multiseg.deploy.quantize import Int8Accuracy, int8_text
from multiseg.deploy.runtime import ort_settings_text
from multiseg.errors import MultisegError
from multiseg.models import create_model, fold_batchnorm, list_models
from multiseg.models.complexity import count_macs
from multiseg.models.multihead import HeadsAsTuple, MultiHeadSegmenter

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: dtypes only the onnxruntime backend runs (quantised graphs).
ORT_ONLY_DTYPES = ("int8",)
BACKENDS = ("torch", "onnxruntime")


@dataclass
class BenchSettings:
    """What to measure and how; see the module docstring for the protocol."""

    size: tuple[int, int] = (512, 1024)
    device: str = "cpu"
    dtype: str = "fp32"
    channels_last: bool | None = None  # None: the model's inference_channels_last
    compile: bool = False
    backend: str = "torch"
    heads: str = "one"
    fold_bn: bool = True
    plain: bool = False  # plain eager: BN kept, NCHW (overrides fold_bn and channels_last)
    min_time: float = 3.0
    warmup: int | None = None
    threads: int | None = None
    ort_spinning: bool = False
    quant_format: str = "qdq"
    calib_images: str | Path | None = None
    calib_count: int = 8

    def warmup_runs(self) -> int:
        default = 50 if self.device.startswith("cuda") else 10
        return default if self.warmup is None else self.warmup


@dataclass
class BenchResult:
    """One model's figures under one setting."""

    model: str
    params: dict[str, int]
    gmacs: float
    median_ms: float
    p90_ms: float
    mean_ms: float
    fps: float
    runs: int
    settings: dict[str, Any] = field(default_factory=dict)
    #: int8 only: :class:`multiseg.deploy.quantize.Int8Accuracy` as a dict (vs fp32 torch, held-out inputs)
    accuracy: dict[str, Any] | None = None
    #: how the network ran: "onnxruntime", or the torch form ("BN folded, channels_last", "plain" ...)
    form: str = ""


def _validate(settings: BenchSettings) -> None:
    if settings.dtype not in (*DTYPES, *ORT_ONLY_DTYPES):
        raise MultisegError(
            f"bench: dtype {settings.dtype!r} is not one of {', '.join((*DTYPES, *ORT_ONLY_DTYPES))}"
        )
    if settings.backend not in BACKENDS:
        raise MultisegError(f"bench: backend {settings.backend!r} is not one of {', '.join(BACKENDS)}")
    if settings.heads not in HEAD_SETS:
        raise MultisegError(f"bench: heads {settings.heads!r} is not one of {', '.join(HEAD_SETS)}")
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise MultisegError("bench: --device cuda asked for, but torch sees no CUDA device")
    if settings.backend == "onnxruntime" and (
        settings.device != "cpu" or settings.dtype not in ("fp32", "int8")
    ):
        raise MultisegError("bench: the onnxruntime backend is measured on cpu in fp32 or int8 only")
    if settings.dtype in ORT_ONLY_DTYPES and settings.backend != "onnxruntime":
        raise MultisegError(f"bench: --dtype {settings.dtype} needs --backend onnxruntime")
    if settings.dtype == "int8" and settings.calib_count < 1:
        raise MultisegError("bench: --calib-count must be at least 1")


def time_callable(
    run: Callable[[], object], warmup: int, min_time: float, sync: Callable[[], None]
) -> list[float]:
    """Per-call latencies (ms) of ``run`` after ``warmup`` calls, for >= ``min_time`` s and >= 3 calls."""
    for _ in range(warmup):
        run()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def torch_layout(model: MultiHeadSegmenter, settings: BenchSettings) -> tuple[bool, bool]:
    """(BN folded, channels_last) of the torch path ``settings`` ask for."""
    if settings.plain:
        return False, False
    cl = model.inference_channels_last if settings.channels_last is None else settings.channels_last
    return settings.fold_bn, cl


def _torch_runner(model: MultiHeadSegmenter, settings: BenchSettings) -> Callable[[], object]:
    fold, cl = torch_layout(model, settings)
    net: torch.nn.Module = fold_batchnorm(model) if fold else model.eval()
    wrapper = HeadsAsTuple(net).eval()  # type: ignore[arg-type]
    fmt = torch.channels_last if cl else torch.contiguous_format
    wrapper = wrapper.to(device=settings.device, dtype=DTYPES[settings.dtype], memory_format=fmt)
    x = torch.randn(1, 3, *settings.size, device=settings.device, dtype=DTYPES[settings.dtype])
    x = x.contiguous(memory_format=fmt)
    if settings.compile:
        wrapper = torch.compile(wrapper)  # type: ignore[assignment]

    def run() -> object:
        with torch.inference_mode():
            return wrapper(x)

    return run


def _ort_runner(
    model: MultiHeadSegmenter, settings: BenchSettings, workdir: Path
) -> tuple[Callable[[], object], dict[str, Any] | None]:
    """The timed ORT call, and (int8) the quantised graph's accuracy against fp32 torch."""
    from multiseg.deploy.export import (
        calibration_inputs,
        int8_accuracy,
        ort_session,
        quantize_int8,
    )

    path = export_onnx(model, workdir / "model.onnx", sample_size=settings.size, dynamic=False)
    accuracy = None
    if settings.dtype == "int8":
        calibration = calibration_inputs(settings.size, settings.calib_count, settings.calib_images, seed=1)
        path = quantize_int8(
            path, workdir / "model.int8.onnx", calibration, quant_format=settings.quant_format
        )
        held_out = calibration_inputs(
            settings.size, 2, settings.calib_images, seed=2, skip=settings.calib_count
        )
        accuracy = asdict(int8_accuracy(model, path, held_out))
    session = ort_session(path, threads=torch.get_num_threads(), spinning=settings.ort_spinning)
    feed = {"input": torch.randn(1, 3, *settings.size).numpy()}
    return (lambda: session.run(None, feed)), accuracy


def benchmark_model(name: str, settings: BenchSettings) -> BenchResult:
    """Build ``name`` with the chosen head set and measure it under ``settings``."""
    _validate(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    model = create_model(name, heads=HEAD_SETS[settings.heads]).eval()
    stride = model.output_stride
    if settings.size[0] % stride or settings.size[1] % stride:
        h, w = settings.size
        raise MultisegError(
            f"bench: --size {h}x{w} is not a multiple of {name}'s output stride {stride} "
            f"(e.g. {-(-h // stride) * stride}x{-(-w // stride) * stride} is); change --size"
        )
    macs = count_macs(model, torch.randn(1, 3, *settings.size))
    cuda = settings.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    accuracy = None
    with tempfile.TemporaryDirectory(prefix="multiseg-bench-") as tmp:
        if settings.backend == "onnxruntime":
            run, accuracy = _ort_runner(model, settings, Path(tmp))
            form = f"onnxruntime {settings.dtype}"
        else:
            run = _torch_runner(model, settings)
            form = torch_form_text(*torch_layout(model, settings))
        times = time_callable(run, settings.warmup_runs(), settings.min_time, sync)
    median = statistics.median(times)
    return BenchResult(
        model=name,
        params=model.num_parameters(),
        gmacs=macs / 1e9,
        median_ms=median,
        p90_ms=_percentile(times, 0.9),
        mean_ms=statistics.fmean(times),
        fps=1e3 / median,
        runs=len(times),
        settings={k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        accuracy=accuracy,
        form=form,
    )


def torch_form_text(folded: bool, channels_last: bool) -> str:
    """``"BN folded, channels_last"``, ``"BN folded, NCHW"``, ``"plain (BN kept, NCHW)"`` ..."""
    if not folded and not channels_last:
        return "plain (BN kept, NCHW)"
    return f"{'BN folded' if folded else 'BN kept'}, {'channels_last' if channels_last else 'NCHW'}"


def cpu_peak_gflops(threads: int, cpuinfo: str | None = None) -> tuple[float, str]:
    """This CPU's fp32 peak on ``threads`` cores, and how it was computed (for protocol lines).

    cores x clock x 2 FMA units x fp32 SIMD lanes x 2 FLOP per FMA, the clock from ``/proc/cpuinfo``
    (under a hypervisor the base clock; turbo may run above it). Lanes: 16 with AVX-512 on Intel, 8 with
    AVX2 + FMA and with AVX-512 on AMD (Zen 4 executes 512-bit operations on 256-bit units), else 4.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return math.nan, "CPU peak unknown (no /proc/cpuinfo)"
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    mhz = float(fields.get("cpu MHz", "nan"))
    amd = "AMD" in fields.get("vendor_id", "")
    if "avx512f" in flags and not amd:
        lanes, isa = 16, "AVX-512"
    elif "avx512f" in flags or {"avx2", "fma"} <= flags:
        lanes, isa = 8, "AVX-512 on 256-bit units" if "avx512f" in flags else "AVX2+FMA"
    else:
        lanes, isa = 4, "SSE"
    peak = threads * mhz / 1e3 * 2 * lanes * 2
    clock = f"{mhz / 1e3:.2f} GHz"
    cores = f"{threads} core{'s' * (threads != 1)}"
    text = f"fp32 peak {peak:.0f} GFLOP/s = {cores} x {clock} x 2 FMA x {lanes} lanes ({isa}) x 2"
    return peak, text


def measured_gemm_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of torch's fp32 ``n x n`` matmul on ``threads`` threads, best of ``repeats``.

    What a well-tuned BLAS kernel reaches on this CPU: a measured ceiling beside the paper peak of
    :func:`cpu_peak_gflops` (turbo can lift it above that peak, memory traffic keeps convs below it).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(old)
    return 2 * n**3 / best / 1e9


def environment(settings: BenchSettings) -> dict[str, Any]:
    """Versions and hardware printed and saved with the figures."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if settings.device.startswith("cuda"):
        env.update(
            gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
            cudnn_benchmark=True,
        )  # fmt: skip
    if settings.backend == "onnxruntime":
        with contextlib.suppress(ImportError):
            import onnxruntime

            env["onnxruntime"] = onnxruntime.__version__
    return env


def protocol_text(settings: BenchSettings, env: dict[str, Any]) -> str:
    """One paragraph stating exactly how the figures were taken."""
    h, w = settings.size
    ort = ""
    if settings.backend == "onnxruntime":
        spin = settings.ort_spinning
        ort = f"static-shape ONNX (opset {DEFAULT_OPSET}), {ort_settings_text(env['threads'], spin)}, "
        if settings.dtype == "int8":
            count, images = settings.calib_count, settings.calib_images
            ort += f"{int8_text(settings.quant_format, count, images)}, "
            ort += "int8 accuracy vs fp32 torch on 2 held-out inputs, "
    return (
        f"protocol: batch 1, input 1x3x{h}x{w}, heads={settings.heads} ({len(HEAD_SETS[settings.heads])}), "
        f"backend={settings.backend}, device={settings.device}, dtype={settings.dtype}, "
        f"compile={settings.compile}, torch form per model in the table, "
        f"eval + inference_mode, {ort}warm-up {settings.warmup_runs()} runs, "
        f"timed loop >= {settings.min_time:g} s, "
        f"{'CUDA synchronised per run, ' if settings.device.startswith('cuda') else ''}"
        f"median and p90 of per-run latency; GMACs = conv/deconv/linear MACs (forward hooks); "
        f"torch {env['torch']}, {env['threads']} thread{'s' * (env['threads'] != 1)}"
        + (f", {env['gpu']}" if "gpu" in env else "")
        + (f", onnxruntime {env['onnxruntime']}" if "onnxruntime" in env else "")
    )


def format_table(results: Sequence[BenchResult]) -> str:
    """A fixed-width table: params (total/encoder/decoder), GMACs, latency and FPS."""
    header = (
        f"{'model':<9} {'params':>11} {'encoder':>11} {'decoder':>9} {'GMACs':>7} "
        f"{'median ms':>10} {'p90 ms':>8} {'FPS':>7} {'runs':>5}  form"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        p = r.params
        lines.append(
            f"{r.model:<9} {p['total']:>11,} {p['encoder']:>11,} {p['decoder']:>9,} {r.gmacs:>7.2f} "
            f"{r.median_ms:>10.1f} {r.p90_ms:>8.1f} {r.fps:>7.1f} {r.runs:>5}  {r.form}"
        )
    for r in results:
        if r.accuracy is not None:
            lines.append(f"{r.model} int8 vs fp32 torch: {Int8Accuracy(**r.accuracy).text()}")
    return "\n".join(lines)


def run_bench(models: Sequence[str], settings: BenchSettings, json_path: Path | None = None) -> str:
    """Benchmark ``models`` (or ``["all"]``), return the printable report, and save JSON if asked."""
    names = list_models() if list(models) in (["all"], []) else list(models)
    known = list_models()
    for name in names:
        if name not in known:
            create_model(name)  # raises the registry's "unknown model ... did you mean" error
    results = [benchmark_model(n, settings) for n in names]
    env = environment(settings)
    report = protocol_text(settings, env) + "\n" + format_table(results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "environment": env,
            "protocol": protocol_text(settings, env),
            "results": [asdict(r) for r in results],
        }
        json_path.write_text(json.dumps(payload, indent=2))
    return report
