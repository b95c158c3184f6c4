"""Cost of a 3-head training step against a 1-head step on the same batch (issue 5's <= 1.25x goal).

The batch is the same six images and labels in both cases; only the dataset each sample belongs to
changes: all Cityscapes (one head), or two Cityscapes, two GTSDB and two Vistas (three heads, with the
Cityscapes head also run on the GTSDB samples for the online box targets). Forward, loss, backward and
the Adam step are timed together. ``--compile`` times the step through ``torch.compile`` (the
``compile: true`` config key); its one-off compile time is printed apart from the step time.

    python benchmarks/bench_train_step.py --model erfnet --size 256x512 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from multiseg.models import create_model
from multiseg.train.box_targets import BoxTargetOptions
from multiseg.train.engine import JointModule
from multiseg.train.loss_weights import UncertaintyWeighting

HEADS = {"cityscapes": 19, "gtsdb": 44, "vistas": 65}


def make_batch(n: int, height: int, width: int, three_heads: bool) -> dict:
    """Random uint8 images and labels; GTSDB samples get one box each."""
    g = torch.Generator().manual_seed(0)
    dataset_index = torch.tensor([0, 0, 1, 1, 2, 2][:n] if three_heads else [0] * n)
    label = torch.randint(0, 19, (n, height, width), generator=g)
    boxes = [torch.tensor([[width / 4, height / 4, width / 2, height / 2]]) for _ in range(n)]
    return {
        "image": torch.randint(0, 256, (n, 3, height, width), generator=g, dtype=torch.uint8),
        "label": label,
        "dataset_index": dataset_index,
        "boxes": boxes,
        "box_classes": [torch.tensor([14]) for _ in range(n)],
    }


def time_steps(
    module: JointModule,
    batch: dict,
    steps: int,
    warmup: int,
    amp: torch.dtype | None = None,
    compiled: bool = False,
) -> tuple[list[float], float]:
    """Seconds per timed step, and the first step's seconds (where a compiled module compiles).

    The module and batch may live on any device; CUDA is synchronised after each step, and fp16
    autocast runs with a gradient scaler, as in training.
    """
    device = next(module.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    opt = torch.optim.Adam(module.parameters(), lr=1e-4, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    forward = torch.compile(module) if compiled else module
    times = []
    first = 0.0
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            total, _ = forward(batch)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync()
        if i == 0:
            first = time.perf_counter() - t0
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="erfnet")
    parser.add_argument("--size", default="256x512", help="HxW of the training crop")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--amp", choices=("fp32", "bf16"), default="fp32", help="autocast (default fp32)")
    parser.add_argument("--channels-last", action="store_true", help="model and images in channels_last")
    parser.add_argument("--compile", action="store_true", help="the step through torch.compile")
    args = parser.parse_args()
    amp = torch.bfloat16 if args.amp == "bf16" else None
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.split("x"))
    print(
        f"protocol: {args.model}, batch 6 at {height}x{width}, forward+loss+backward+fused Adam, "
        f"{args.warmup} warm-up + {args.steps} timed steps, median; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU, {args.amp}, "
        f"{'channels_last' if args.channels_last else 'NCHW'}, {'torch.compile' if args.compile else 'eager'}"
    )
    results = {}
    for label, three in (("1 head", False), ("3 heads", True)):
        torch.manual_seed(0)
        heads = HEADS if three else {"cityscapes": 19}
        net = create_model(args.model, heads=heads)
        names = list(HEADS) if three else ["cityscapes"]
        module = JointModule(net, UncertaintyWeighting(names), names, BoxTargetOptions(policy="merge"))
        module = module.to(memory_format=layout)
        batch = make_batch(6, height, width, three)
        batch["image"] = batch["image"].contiguous(memory_format=layout)
        times, first = time_steps(module, batch, args.steps, args.warmup, amp, args.compile)
        results[label] = statistics.median(times)
        print(
            f"{label:8s} median {results[label] * 1000:8.1f} ms   (min {min(times) * 1000:.1f} ms, "
            f"first step {first:.1f} s)"
        )
    print(f"ratio 3 heads / 1 head: {results['3 heads'] / results['1 head']:.3f}")


if __name__ == "__main__":
    main()
