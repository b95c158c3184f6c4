"""CPU latency of one model in its head modes (multi-head, shared decoder, universal), interleaved.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_head_modes.py --models erfnet enet \\
        --heads cityscapes:19,gtsdb:44,vistas:65 --size 128x256 --threads 1 --rounds 5 --min-time 1

Each round times every (model, head mode) for ``--min-time`` seconds in turn (batch 1, the
``inference_model`` form that ``predict``/``eval`` run, every dataset head computed, 10 warm-up runs,
median per round); the table gives the median of the per-round medians and the ratio to the model's
multi-head network. Interleaving makes load from other processes on a shared host hit every variant
alike: compare ratios, not milliseconds. The universal network's heads are its dataset read-outs (the
universal decoder runs once, each head is a softmax, a 1x1 convolution and a log).
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from multiseg.config import parse_size
from multiseg.deploy.bench import time_callable
from multiseg.deploy.export import parse_heads
from multiseg.models import HEAD_MODES, create_model, inference_model
from multiseg.models.complexity import count_macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["erfnet", "enet"])
    parser.add_argument("--heads", default="cityscapes:19,gtsdb:44,vistas:65")
    parser.add_argument("--modes", nargs="+", default=list(HEAD_MODES), choices=HEAD_MODES)
    parser.add_argument("--size", default="128x256", help="input HxW")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heads = parse_heads(args.heads)
    h, w = parse_size(args.size)
    x = torch.randn(1, 3, h, w)
    nets, info = {}, {}
    for model in args.models:
        for mode in args.modes:
            net = create_model(model, heads=heads, head_mode=mode).eval()
            info[model, mode] = (net.num_parameters()["total"], count_macs(net, x) / 1e9)
            nets[model, mode] = inference_model(net)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in nets}
    for _ in range(args.rounds):
        for key, net in nets.items():

            def run(net: torch.nn.Module = net) -> object:
                with torch.inference_mode():
                    return net(x)

            times[key].append(statistics.median(time_callable(run, 10, args.min_time, lambda: None)))
    print(
        f"protocol: batch 1, input 1x3x{h}x{w}, heads {args.heads}, inference_model form (BN folded), fp32, "
        f"{args.threads} torch threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"{args.rounds} interleaved rounds of >= {args.min_time:g} s, median of per-round medians"
    )
    widths = {"params": 10, "GMACs": 7, "ms": 8, "FPS": 7, "vs multi-head": 13}
    print(f"{'model':8} {'head mode':10} " + " ".join(f"{c:>{n}}" for c, n in widths.items()))
    for (model, mode), per_round in times.items():
        ms = statistics.median(per_round)
        base = statistics.median(times.get((model, "decoder"), per_round))
        params, gmacs = info[model, mode]
        ratio = f"{ms / base:.2f}x"
        print(f"{model:8} {mode:10} {params:>10,} {gmacs:>7.3f} {ms:>8.1f} {1000 / ms:>7.1f} {ratio:>13}")


if __name__ == "__main__":
    main()
