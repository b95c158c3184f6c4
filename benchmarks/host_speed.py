"""How fast this machine is next to the one the team's environment notes were measured on.

The 2-core machines these numbers come from are not all alike: the same test suite, training run or
frame rate has differed 2-4x between them. This script reruns three measurements of
``specs/environment.md`` with its protocol, so that a time measured here can be read against the
reference machine (AMD EPYC, AVX-512):

* ``import torch`` in a fresh interpreter, median of 3 (reference 712 ms, section 3);
* the eager forward of ERFNet-lite, the small network defined in section 7 (downsamplers
  3 -> 16 -> 64 -> 128, 2 + 4 non-bottleneck-1d blocks, 1x1 head, bilinear upsampling; 0.94 M
  parameters) at 1x3x512x1024 on 2 threads, median of 7 after 2 warm-ups (reference 108-125 ms,
  section 8);
* its dynamo ONNX export with H and W as multiples of 8, the first in the process (reference
  4.3-4.5 s, section 7);

and prints the fp32 matmul rate beside them (no reference there). ``--quick`` (tests) runs each
part once at 64x128 and skips the export.

    python benchmarks/host_speed.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from multiseg.deploy.bench import measured_gemm_gflops

#: (what, low, high) in seconds, as ``specs/environment.md`` gives them.
REFERENCE = {
    "import": ("import torch, fresh interpreter", 0.712, 0.712),
    "forward": ("ERFNet-lite eager forward, 1x3x512x1024, 2 threads", 0.108, 0.125),
    "export": ("ERFNet-lite dynamo ONNX export (dynamic N, 8*H, 8*W)", 4.3, 4.5),
}


class _Downsampler(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], 1)))


class _NonBottleneck1d(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        c, d = channels, dilation
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(c, c, (3, 1), padding=(1, 0)),
                nn.Conv2d(c, c, (1, 3), padding=(0, 1)),
                nn.Conv2d(c, c, (3, 1), padding=(d, 0), dilation=(d, 1)),
                nn.Conv2d(c, c, (1, 3), padding=(0, d), dilation=(1, d)),
            ]
        )
        self.bns = nn.ModuleList([nn.BatchNorm2d(c), nn.BatchNorm2d(c)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = self.convs
        y = F.relu(self.bns[0](b(F.relu(a(x)))))
        return F.relu(x + self.bns[1](d(F.relu(c(y)))))


def erfnet_lite() -> nn.Module:
    """The reference network of ``specs/environment.md`` section 7 (not one of multiseg's models)."""
    body = nn.Sequential(
        _Downsampler(3, 16),
        _Downsampler(16, 64),
        *(_NonBottleneck1d(64, 1) for _ in range(2)),
        _Downsampler(64, 128),
        *(_NonBottleneck1d(128, d) for d in (2, 4, 8, 16)),
        nn.Conv2d(128, 19, 1),
    )

    class ErfnetLite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    return ErfnetLite().eval()


def import_seconds(runs: int) -> float:
    """Median wall time of ``python -c "import torch"`` in fresh interpreters."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.inference_mode()
def forward_seconds(model: nn.Module, size: tuple[int, int], warmup: int, runs: int) -> float:
    """Median eager forward time of one 1x3xHxW frame on the current thread count."""
    x = torch.randn(1, 3, *size)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def export_seconds(model: nn.Module, size: tuple[int, int]) -> float:
    """Wall time of one dynamo ONNX export with a dynamic batch and H, W multiples of 8."""
    dim = torch.export.Dim
    shapes = ({0: dim("n", max=64), 2: 8 * dim("h8", min=8, max=512), 3: 8 * dim("w8", min=8, max=512)},)
    logging.disable(logging.WARNING)  # the exporter's notes on torchvision ops it cannot register
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, *size),), dynamic_shapes=shapes, dynamo=True)
    return time.perf_counter() - start


def row(key: str, seconds: float | None, note: str = "") -> str:
    """One table line: what, this host, the reference, and how many times slower this host is
    (``note`` instead of the ratio where the measurement is not the reference's)."""
    what, low, high = REFERENCE[key]
    ref = f"{1000 * low:.0f}" if low == high else f"{1000 * low:.0f}-{1000 * high:.0f}"
    here = "-" if seconds is None else f"{1000 * seconds:.0f}"
    if not note and seconds is not None:
        note = f"{seconds / high:.1f}x" if low == high else f"{seconds / high:.1f}-{seconds / low:.1f}x"
    return f"{what:<56} {here:>9} {ref:>11}  {note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each part at 64x128, no export")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = erfnet_lite()
    size = (64, 128) if args.quick else (512, 1024)
    runs = 1 if args.quick else 7
    gflops = measured_gemm_gflops(2, n=512 if args.quick else 2048)
    forward = forward_seconds(model, size, warmup=0 if args.quick else 2, runs=runs)
    export = None if args.quick else export_seconds(model, size)
    lines = [
        f"{'measurement':<56} {'here ms':>9} {'ref. ms':>11}  here / reference",
        row("import", import_seconds(1 if args.quick else 3)),
        row("forward", forward, "not comparable (64x128)" if args.quick else ""),
        row("export", export, "skipped (--quick)" if args.quick else ""),
    ]
    print("\n".join(lines))
    print(f"fp32 matmul on 2 threads: {gflops:.0f} GFLOP/s (no reference figure)")
    print("reference: specs/environment.md (AMD EPYC, 2 vCPUs, AVX-512); protocol in this script's docstring")


if __name__ == "__main__":
    main()
