"""FPS of a trained cell's network on the machine at hand, with :mod:`multiseg.deploy.bench`'s timing harness.

Unlike ``multiseg bench`` (one head or a fixed head table), a cell is timed as it was trained: its own
heads and head mode, every head computed, so Fig 6 shows what a second decoder costs against a shared
decoder with one last conv per dataset. The protocol is bench's (batch 1, eval, inference mode, BN
folded, warm-up, timed loop, CUDA synchronised) and is stored beside every number.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import torch

from multiseg.deploy.bench import BenchSettings, environment, time_callable
from multiseg.errors import MultisegError
from multiseg.experiments.grid import BenchOptions, Grid
from multiseg.models import HeadsAsTuple, create_model, fold_batchnorm
from multiseg.models.complexity import count_macs


def bench_device(opts: BenchOptions) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if opts.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return opts.device


def speed_key(model_config: Mapping[str, Any], opts: BenchOptions) -> str:
    """Cells with the same network and protocol share one measurement."""
    heads = ",".join(f"{h}:{c}" for h, c in model_config["heads"].items())
    h, w = opts.size
    return f"{model_config['name']}|{model_config['head_mode']}|{heads}|{h}x{w}|{bench_device(opts)}"


def device_name(device: str) -> str:
    """The device in words, for the figures and results (GPU name, or CPU and thread count)."""
    env = environment(BenchSettings(device=device))
    if device == "cuda":
        return f"{env['gpu']} (CUDA {env['cuda']}, torch {env['torch']})"
    return f"CPU {env['cpu']} ({env['threads']} threads, torch {env['torch']})"


def check_bench_size(grid: Grid) -> None:
    """Fail before any training when the grid's ``bench.size`` does not divide by a cell network's
    output stride (GUNet's is 32: it runs its trunk on half- and quarter-size copies of the input)."""
    h, w = grid.bench.size
    seen: set[str] = set()
    for cell in grid.cells:
        key = f"{cell.model}|{sorted(cell.cfg.model_kwargs.items())}"
        if key in seen:
            continue
        seen.add(key)
        stride = create_model(cell.model, heads={"probe": 2}, **cell.cfg.model_kwargs).output_stride
        if h % stride or w % stride:
            raise MultisegError(
                f"{grid.path}: bench.size {h}x{w} is not a multiple of {cell.model}'s output stride {stride} "
                f"(e.g. {-(-h // stride) * stride}x{-(-w // stride) * stride} is); change bench.size"
            )


def measure_speed(model_config: Mapping[str, Any], opts: BenchOptions) -> dict[str, Any]:
    """Params, GMACs, median/p90 latency and FPS of the network ``model_config`` describes."""
    device = bench_device(opts)
    settings = BenchSettings(size=opts.size, device=device, min_time=opts.min_time, warmup=opts.warmup)
    model = create_model(
        model_config["name"],
        heads=dict(model_config["heads"]),
        head_mode=model_config["head_mode"],
        taxonomy=model_config.get("taxonomy"),
        **dict(model_config.get("kwargs", {})),
    ).eval()
    params = model.num_parameters()
    macs = count_macs(model, torch.randn(1, 3, *opts.size))
    net = HeadsAsTuple(fold_batchnorm(model)).eval().to(device)  # type: ignore[arg-type]
    x = torch.randn(1, 3, *opts.size, device=device)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True

    def run() -> object:
        with torch.inference_mode():
            return net(x)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = time_callable(run, settings.warmup_runs(), opts.min_time, sync)
    median = statistics.median(times)
    h, w = opts.size
    protocol = (
        f"batch 1, input 1x3x{h}x{w}, all {len(model.head_names)} heads "
        f"({model_config['head_mode']}), eval + inference_mode, BN folded, fp32, warm-up "
        f"{settings.warmup_runs()} runs, timed loop >= {opts.min_time:g} s, median latency "
        f"(multiseg.deploy.bench harness)"
    )
    return {
        "params": params["total"],
        "encoder_params": params["encoder"],
        "gmacs": macs / 1e9,
        "median_ms": median,
        "fps": 1e3 / median,
        "runs": len(times),
        "device": device_name(device),
        "protocol": protocol,
    }
