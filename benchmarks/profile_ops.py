"""Where a network's CPU time goes: per aten operator, its share of the time and the rate it reaches.

Usage::

    python benchmarks/profile_ops.py [--models enet espnet edanet] [--size 512x1024] [--threads 2]

Protocol: the default inference form (:func:`multiseg.models.inference_model`), batch 1, eval +
``inference_mode``, 3 warm-up runs, then ``--runs`` runs under ``torch.profiler`` (CPU, FLOPs from the
profiler's own formulas for convolutions and matmuls). For each operator: total self time per frame, its
share, and GFLOP/s where it does arithmetic (convolutions). Printed beside the measured limits: torch's
fp32 2048x2048 matmul rate and a 256 MB copy's bandwidth, so a model far below the roofline floor of
``bench_models.py`` shows which operators hold it there.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from multiseg.deploy.bench import measured_gemm_gflops
from multiseg.deploy.roofline import measured_copy_gbps
from multiseg.models import create_model, inference_model


def op_table(name: str, size: tuple[int, int], runs: int) -> list[tuple[str, float, float, float]]:
    """Per operator: (name, ms per frame, share of the frame, GFLOP/s or 0), slowest first."""
    model = inference_model(create_model(name, heads={"cityscapes": 19}).eval())
    x = torch.randn(1, 3, *size)
    if next(model.parameters()).is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            for _ in range(runs):
                model(x)
    time_us: dict[str, float] = defaultdict(float)
    flops: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        time_us[event.key] += event.self_cpu_time_total
        flops[event.key] += event.flops or 0
    # Convolutions report their FLOPs on aten::conv2d / convolution but spend their time in the backend op.
    conv_flops = sum(v for k, v in flops.items() if "conv" in k)
    conv_keys = [k for k in time_us if "conv" in k or "mkldnn" in k]
    total = sum(time_us.values())
    rows = []
    for key, us in sorted(time_us.items(), key=lambda kv: -kv[1]):
        if us <= 0:
            continue
        rows.append((key, us / runs / 1e3, us / total, 0.0))
    conv_us = sum(time_us[k] for k in conv_keys)
    if conv_us:
        rate = conv_flops / conv_us / 1e3
        rows.insert(0, ("all convolutions", conv_us / runs / 1e3, conv_us / total, rate))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["enet", "espnet", "edanet"])
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    print(
        f"protocol: default inference form, batch 1, 1x3x{size[0]}x{size[1]}, {args.threads} threads, "
        f"3 warm-up runs, {args.runs} profiled runs, self CPU time per operator; torch {torch.__version__}; "
        f"limits: fp32 matmul {measured_gemm_gflops(args.threads):.0f} GFLOP/s, "
        f"copy {measured_copy_gbps(args.threads):.1f} GB/s",
        flush=True,
    )
    for name in args.models:
        rows = op_table(name, size, args.runs)
        frame = sum(ms for key, ms, _, _ in rows if key != "all convolutions")
        print(f"{name}: {frame:.0f} ms per frame", flush=True)
        for key, ms, share, rate in rows[: args.top + 1]:
            extra = f", {rate:.0f} GFLOP/s" if rate else ""
            print(f"  {key:<32} {ms:8.1f} ms  {100 * share:5.1f} %{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
