"""CPU latency of the six networks against their reference implementations, interleaved in one run.

Usage::

    python benchmarks/bench_models.py --threads 2 --rounds 3 --min-time 3 \\
        [--reference-dir DIR] [--models enet erfnet ...] [--eager plain folded folded_cl] \\
        [--ort fp32 fp32_spin int8] [--calib-images DIR] [--calib-count N] [--json out.json]

For every model and round, each variant is timed for ``--min-time`` seconds (batch 1, eval,
``torch.inference_mode()``, 10 warm-up runs, median per round); the table gives the median of the
per-round medians and the ratio to the baseline. Variants:

* ``reference``: the published implementation, unmodified, as an eager NCHW model (only with
  ``--reference-dir``, a folder holding the reference files named in ``REFERENCES``; they are not part of
  multiseg, and ERFNet's is CC BY-NC, so fetch them yourself);
* ``plain``: multiseg's network, eager, NCHW, BatchNorm kept (the straightforward eager version);
* ``default``: what ``predict``, ``eval`` and ``bench`` run (:func:`multiseg.models.inference_model`: BN
  folded, channels_last where the architecture gains from it);
* ``folded``: BN folded into the convs; ``folded_cl``: the same in channels_last;
* ``ort_fp32``: the folded network exported to ONNX (static shape) and run by ONNX Runtime on the same
  number of intra-op threads (inter-op 1, all graph optimisations), intra-op spinning off;
* ``ort_fp32_spin``: the same with ORT's default spinning (idle workers busy-wait between ops);
* ``ort_int8``: that graph after static int8 quantisation (QDQ, per-channel weights, ``--calib-count``
  calibration inputs, random or from ``--calib-images``), spinning off; its accuracy against fp32 torch
  (max |logit diff|, argmax agreement on two held-out inputs) is printed on the model's line.

The baseline is ``reference`` when available, else the first eager variant. Rounds interleave the
variants so that load from other processes on a shared host hits all of them alike; still, compare
ratios, not ms. On a host whose cores are busy with other jobs, busy-waiting worker threads slow every
variant down (torch's OpenMP threads about 3x at 2 threads, measured on ENet's reference): run with
``OMP_WAIT_POLICY=PASSIVE`` in the environment there, the eager counterpart of ORT's spinning off
(the protocol line prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from multiseg.deploy.bench import cpu_peak_gflops, measured_gemm_gflops, time_callable
from multiseg.deploy.export import export_onnx
from multiseg.deploy.quantize import Int8Accuracy, calibration_inputs, int8_accuracy, int8_text, quantize_int8
from multiseg.deploy.roofline import Roofline, measured_copy_gbps, traffic_bytes
from multiseg.deploy.runtime import ort_session, ort_settings_text
from multiseg.models import create_model, fold_batchnorm, inference_model, list_models
from multiseg.models.complexity import count_macs

#: model -> (file in --reference-dir, class name, constructor kwargs, source repository)
REFERENCES: dict[str, tuple[str, str, dict, str]] = {
    "enet": ("enet_port.py", "ENet", {"num_classes": 19}, "davidtvs/PyTorch-ENet models/enet.py"),
    "erfnet": ("erfnet.py", "Net", {"num_classes": 19}, "Eromera/erfnet_pytorch train/erfnet.py"),
    "espnet": (
        "espnet_model.py",
        "ESPNet",
        {"classes": 19, "p": 2, "q": 8},
        "sacmehta/ESPNet train/Model.py",
    ),
    "edanet": ("edanet.py", "EDANet", {"num_classes": 19}, "wpf535236337/pytorch_EDANet EDANet.py"),
}


#: ONNX Runtime variants: fp32 (spinning off), fp32 with ORT's default spinning, int8 (spinning off).
ORT_VARIANTS = ("fp32", "fp32_spin", "int8")
#: multiseg's eager variants.
EAGER_VARIANTS = ("plain", "default", "folded", "folded_cl")


class _Holder(nn.Module):
    """Wraps a reference model whose attributes shadow ``nn.Module`` methods (ESPNet's ``self.modules``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _load_source(path: Path) -> ModuleType:
    source = path.read_text()
    # EDANet's file ends in a Python-2 demo under ``if __name__ == '__main__':``; drop that tail.
    source = source.split("if __name__ == '__main__':")[0]
    module = ModuleType(path.stem)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - a file the user pointed us to
    return module


def reference_model(name: str, directory: Path) -> nn.Module | None:
    """The reference implementation of ``name`` in eval mode, or None if its file is absent."""
    if name not in REFERENCES or not (directory / REFERENCES[name][0]).is_file():
        return None
    file, cls, kwargs, _ = REFERENCES[name]
    net = getattr(_load_source(directory / file), cls)(**kwargs)
    net = _Holder(net).eval()
    if name == "edanet":
        # The re-implementation adds an inference-only x2 upsampling (to 2048x1024) when not training.
        # multiseg's heads stop at input resolution, so skip it: only the top module's flag gates it.
        net.net.training = True
    return net


def _torch_runner(net: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return net(x)

    return run


def variants(
    name: str,
    size: tuple[int, int],
    ref_dir: Path | None,
    workdir: Path,
    ort: tuple[str, ...] = ORT_VARIANTS,
    calib_images: Path | None = None,
    calib_count: int = 8,
    eager: tuple[str, ...] = EAGER_VARIANTS,
) -> tuple[dict[str, Callable[[], object]], Int8Accuracy | None]:
    """Every runner to time for ``name``, and the int8 graph's accuracy when ``int8`` is in ``ort``."""
    x = torch.randn(1, 3, *size)
    model = create_model(name, heads={"cityscapes": 19}).eval()
    folded = fold_batchnorm(model)
    folded_cl = fold_batchnorm(model).to(memory_format=torch.channels_last)
    runners: dict[str, Callable[[], object]] = {}
    if ref_dir is not None and (ref := reference_model(name, ref_dir)) is not None:
        runners["reference"] = _torch_runner(ref, x)
    if "plain" in eager:
        runners["plain"] = _torch_runner(model, x)
    if "default" in eager:
        runners["default"] = _torch_runner(inference_model(model), x)
    if "folded" in eager:
        runners["folded"] = _torch_runner(folded, x)
    if "folded_cl" in eager:
        runners["folded_cl"] = _torch_runner(folded_cl, x.contiguous(memory_format=torch.channels_last))
    path = export_onnx(model, workdir / f"{name}.onnx", sample_size=size, dynamic=False)
    feed = {"input": x.numpy()}
    threads = torch.get_num_threads()
    accuracy = None
    for variant in ort:
        graph = path
        if variant == "int8":
            calibration = calibration_inputs(size, calib_count, calib_images, seed=1)
            graph = quantize_int8(path, workdir / f"{name}.int8.onnx", calibration)
            held_out = calibration_inputs(size, 2, calib_images, seed=2, skip=calib_count)
            accuracy = int8_accuracy(model, graph, held_out)
        session = ort_session(graph, threads=threads, spinning=variant == "fp32_spin")
        runners[f"ort_{variant}"] = lambda s=session: s.run(None, feed)
    return runners, accuracy


def alternate_times(
    runners: dict[str, Callable[[], object]], warmup: int, min_time: float
) -> dict[str, list[float]]:
    """Per-call ms of every runner, called in turn (A B C A B C ...) for >= ``min_time`` s per runner.

    Every variant gets the same number of calls, and call ``i`` of each falls in the same cycle, so load
    from other processes hits them alike and ``t_variant[i] / t_baseline[i]`` are paired ratios.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {v: [] for v in runners}
    start = time.perf_counter()
    while len(times[next(iter(times))]) < 3 or time.perf_counter() - start < min_time * len(runners):
        for variant, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[variant].append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list_models())
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--reference-dir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="call the variants in turn, one run each, instead of one block of runs per variant; the ratio "
        "is then the median of per-cycle ratios to the baseline (robust to load that changes over seconds)",
    )
    parser.add_argument("--eager", nargs="*", default=list(EAGER_VARIANTS), choices=EAGER_VARIANTS)
    parser.add_argument("--ort", nargs="*", default=list(ORT_VARIANTS), choices=ORT_VARIANTS)
    parser.add_argument("--calib-images", type=Path, help="int8 calibration images (default: random inputs)")
    parser.add_argument("--calib-count", type=int, default=8)
    args = parser.parse_args(argv)
    import onnxruntime

    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    peak, peak_text = cpu_peak_gflops(args.threads)
    gemm = measured_gemm_gflops(args.threads)
    bandwidth = measured_copy_gbps(args.threads)
    print(
        f"protocol: batch 1, input 1x3x{size[0]}x{size[1]}, eval + inference_mode, {args.threads} threads, "
        f"warm-up {args.warmup}, {args.rounds} interleaved rounds of >= {args.min_time:g} s per variant"
        + (", variants called in turn one run at a time" if args.alternate else "")
        + ", median per round, table = median of round medians"
        + (" and median of per-cycle ratios to the baseline" if args.alternate else "")
        + f"; torch {torch.__version__} "
        f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); onnxruntime "
        f"{onnxruntime.__version__}: static-shape opset-18 graph, {ort_settings_text(args.threads, False)} "
        f"(ort_fp32_spin: spinning on); {int8_text('qdq', args.calib_count, args.calib_images)}; "
        f"GFLOP/s = 2 x conv MACs / median time (int8 too, for comparison); {peak_text}; "
        f"measured ceiling: torch fp32 2048x2048 matmul {gemm:.0f} GFLOP/s; "
        f"memory bandwidth: torch copy of 256 MB {bandwidth:.1f} GB/s (read + write); roofline: compute at "
        f"that matmul's rate, memory at that copy's, bytes = what every aten op of the BN-folded eager model "
        f"reads and writes (multiseg.deploy.roofline)",
        flush=True,
    )
    results: dict[str, dict[str, list[float]]] = {}
    accuracies: dict[str, dict] = {}
    ratios: dict[str, dict[str, float]] = {}
    speed: dict[str, dict[str, float]] = {}
    rooflines: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="multiseg-bench-") as tmp:
        for name in args.models:
            runners, accuracy = variants(
                name, size, args.reference_dir, Path(tmp), tuple(args.ort),
                args.calib_images, args.calib_count, tuple(args.eager),
            )  # fmt: skip
            results[name] = {v: [] for v in runners}
            base = "reference" if "reference" in runners else next(iter(runners))
            paired: dict[str, list[float]] = {v: [] for v in runners}
            for _ in range(args.rounds):
                if args.alternate:
                    times = alternate_times(runners, args.warmup, args.min_time)
                else:
                    times = {
                        v: time_callable(run, args.warmup, args.min_time, lambda: None)
                        for v, run in runners.items()
                    }
                for variant, ts in times.items():
                    results[name][variant].append(statistics.median(ts))
                    if args.alternate:
                        paired[variant] += [t / b for t, b in zip(ts, times[base], strict=True)]
            row = {v: statistics.median(m) for v, m in results[name].items()}
            ratio = {
                v: statistics.median(paired[v]) if args.alternate else ms / row[base] for v, ms in row.items()
            }
            ratios[name] = ratio
            model = fold_batchnorm(create_model(name, heads={"cityscapes": 19}).eval())
            x = torch.randn(1, 3, *size)
            gflop = 2 * count_macs(model, x) / 1e9
            roof = Roofline(gflop, traffic_bytes(model, x) / 1e9, gemm, bandwidth)
            speed[name] = {v: gflop / (ms / 1e3) for v, ms in row.items()}
            cells = "  ".join(
                f"{v} {ms:7.1f} ms ({ratio[v]:.2f}x, {speed[name][v]:.0f} GFLOP/s)" for v, ms in row.items()
            )
            print(f"{name:<8} {cells}   [per-round: {json.dumps(results[name])}]", flush=True)
            best = min(row, key=row.get)
            print(
                f"{name:<8} roofline: {roof.text()}; fastest path ({best}) at "
                f"{roof.floor_ms() / row[best]:.0%} of the floor's speed",
                flush=True,
            )
            rooflines[name] = {**asdict(roof), "floor_ms": roof.floor_ms(), "bound": roof.bound}
            if accuracy is not None:
                accuracies[name] = asdict(accuracy)
                print(f"{name:<8} int8 vs fp32 torch: {accuracy.text()}", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "size": size,
                    "threads": args.threads,
                    "results": results,
                    "ratios": ratios,
                    "gflops": speed,
                    "cpu_peak_gflops": peak,
                    "bandwidth_gbps": bandwidth,
                    "roofline": rooflines,
                    "int8_accuracy": accuracies,
                },  # fmt: skip
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
