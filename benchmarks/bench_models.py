"""CPU latency of the six networks against their reference implementations, interleaved in one run.

Usage::

    python benchmarks/bench_models.py --threads 2 --rounds 3 --min-time 3 \\
        [--reference-dir DIR] [--models enet erfnet ...] [--json out.json]

For every model and round, each variant is timed for ``--min-time`` seconds (batch 1, eval,
``torch.inference_mode()``, 10 warm-up runs, median per round); the table gives the median of the
per-round medians and the ratio to the baseline. Variants:

* ``reference``: the published implementation, unmodified, as an eager NCHW model (only with
  ``--reference-dir``, a folder holding the reference files named in ``REFERENCES``; they are not part of
  multiseg, and ERFNet's is CC BY-NC, so fetch them yourself);
* ``plain``: multiseg's network, eager, NCHW, BatchNorm kept (the straightforward eager version);
* ``folded``: BN folded into the convs; ``folded_cl``: the same in channels_last;
* ``onnxruntime``: the folded network exported to ONNX (static shape) and run by ONNX Runtime on the
  same number of threads.

The baseline is ``reference`` when available, else ``plain``. Rounds interleave the variants so that
load from other processes on a shared host hits all of them alike; still, compare ratios, not ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from multiseg.bench import time_callable
from multiseg.export import export_onnx, ort_session
from multiseg.models import create_model, fold_batchnorm, list_models

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
    name: str, size: tuple[int, int], ref_dir: Path | None, workdir: Path
) -> dict[str, Callable[[], object]]:
    """Every runner to time for ``name``."""
    x = torch.randn(1, 3, *size)
    model = create_model(name, heads={"cityscapes": 19}).eval()
    folded = fold_batchnorm(model)
    folded_cl = fold_batchnorm(model).to(memory_format=torch.channels_last)
    runners: dict[str, Callable[[], object]] = {}
    if ref_dir is not None and (ref := reference_model(name, ref_dir)) is not None:
        runners["reference"] = _torch_runner(ref, x)
    runners["plain"] = _torch_runner(model, x)
    runners["folded"] = _torch_runner(folded, x)
    runners["folded_cl"] = _torch_runner(folded_cl, x.contiguous(memory_format=torch.channels_last))
    path = export_onnx(model, workdir / f"{name}.onnx", sample_size=size, dynamic=False)
    session = ort_session(path, threads=torch.get_num_threads())
    feed = {"input": x.numpy()}
    runners["onnxruntime"] = lambda: session.run(None, feed)
    return runners


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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    print(
        f"protocol: batch 1, input 1x3x{size[0]}x{size[1]}, eval + inference_mode, {args.threads} threads, "
        f"warm-up {args.warmup}, {args.rounds} interleaved rounds of >= {args.min_time:g} s per variant, "
        f"median per round, table = median of round medians; torch {torch.__version__}",
        flush=True,
    )
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="multiseg-bench-") as tmp:
        for name in args.models:
            runners = variants(name, size, args.reference_dir, Path(tmp))
            results[name] = {v: [] for v in runners}
            for _ in range(args.rounds):
                for variant, run in runners.items():
                    times = time_callable(run, args.warmup, args.min_time, lambda: None)
                    results[name][variant].append(statistics.median(times))
            row = {v: statistics.median(m) for v, m in results[name].items()}
            base = "reference" if "reference" in row else "plain"
            cells = "  ".join(f"{v} {ms:7.1f} ms ({ms / row[base]:.2f}x)" for v, ms in row.items())
            print(f"{name:<8} {cells}   [per-round: {json.dumps(results[name])}]", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"size": size, "threads": args.threads, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
