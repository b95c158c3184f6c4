"""The ``multiseg`` command line: one subcommand per job, each a thin layer over the library.

Heavy modules (torch, cv2) are imported inside the subcommands so ``multiseg --help`` stays fast.
A :class:`~multiseg.errors.MultisegError` is printed as one line on stderr with exit status 2;
Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from multiseg import __version__
from multiseg.errors import MultisegError


def _add_demo_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-data",
        help="generate the demo world: Cityscapes, GTSDB and Vistas look-alikes in their real formats",
        description=(
            "Render a procedural street-scene world through three cameras and write it as a Cityscapes, "
            "a GTSDB (FullIJCNN2013) and a Mapillary Vistas v1.2 dataset under ROOT. Deterministic for a "
            "seed; another seed gives a different world of the same distribution."
        ),
    )
    p.add_argument("--root", type=Path, required=True, help="folder to write the three datasets into")
    p.add_argument("--seed", type=int, default=0, help="random seed of the world (default: 0)")
    p.add_argument(
        "--size",
        choices=("small", "medium"),
        default="small",
        help="small: about 100 frames per dataset; medium: about 3x more (default: small)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite ROOT even if it holds something other than a demo world",
    )
    p.set_defaults(func=_run_demo_data)


def _run_demo_data(args: argparse.Namespace) -> int:
    from multiseg.data.demo import write_demo_world

    summary = write_demo_world(args.root, seed=args.seed, size=args.size, force=args.force)
    print(summary)
    return 0


#: Every subcommand's parser builder, in the order ``--help`` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo_data,
]


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the networks with parameters (total, encoder, decoder) and GMACs",
        description="Every registered network with one head: parameter counts, output stride and conv GMACs.",
    )
    p.add_argument("--size", default="512x1024", help="input HxW for the GMACs (default: 512x1024)")
    p.add_argument("--classes", type=int, default=19, help="classes of the one head (default: 19)")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from multiseg.bench import parse_size
    from multiseg.models.complexity import models_table

    print(models_table(parse_size(args.size), args.classes))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure params, GMACs and latency/FPS of the networks under a printed protocol",
        description="Batch-1 inference latency (median, p90) and FPS, BN folded, after a warm-up; see the protocol line.",
    )
    p.add_argument("--model", default="all", help="a model name or 'all' (default: all)")
    p.add_argument("--size", default="512x1024", help="input HxW (default: 512x1024)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    p.add_argument("--heads", default="one", choices=("one", "all"), help="one head or every dataset's head")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timed runs per model (default: 3)")
    p.add_argument("--warmup", type=int, help="warm-up runs (default: 10 on cpu, 50 on cuda)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers (not folded)")
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from multiseg.bench import BenchSettings, parse_size, run_bench

    settings = BenchSettings(
        size=parse_size(args.size), device=args.device, dtype=args.dtype, channels_last=args.channels_last,
        compile=args.compile, backend=args.backend, heads=args.heads, fold_bn=not args.no_fold_bn,
        min_time=args.min_time, warmup=args.warmup, threads=args.threads,
    )  # fmt: skip
    print(run_bench([args.model], settings, args.json))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a network or checkpoint to ONNX and check it against torch with ONNX Runtime",
        description="Write an ONNX graph (dynamic batch and size by default), print the max |torch - ORT| difference.",
    )
    p.add_argument("--onnx", type=Path, required=True, help="ONNX file to write")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model name (random weights)")
    source.add_argument(
        "--checkpoint", type=Path, help="a checkpoint with 'model_config' and 'model' entries"
    )
    p.add_argument("--heads", help="heads to export: name:classes,... with --model; names with --checkpoint")
    p.add_argument("--head-mode", default="decoder", choices=("decoder", "last_conv"))
    p.add_argument("--size", default="512x1024", help="example and parity input HxW (default: 512x1024)")
    p.add_argument("--static", action="store_true", help="fixed batch 1 and --size instead of dynamic axes")
    p.add_argument("--legacy", action="store_true", help="use the TorchScript-based exporter")
    p.add_argument("--opset", type=int, default=18)
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from multiseg.bench import parse_size
    from multiseg.export import run_export

    print(run_export(args, parse_size(args.size)))
    return 0


COMMANDS += [_add_models, _add_bench, _add_export]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one network on several datasets at once (default: ERFNet on the demo world)",
        description=(
            "Joint multi-dataset training. With no CONFIG it trains ERFNet on the demo world (generated on "
            "first use) in the hardest setting, Cityscapes + GTSDB + Vistas, sized for ~10 minutes on 2 CPU "
            "cores. Runs under torchrun unchanged (DDP). The resolved config is saved in the run folder."
        ),
    )
    p.add_argument(
        "config", nargs="?", type=Path, help="flat YAML config (keys of multiseg.train.config.TrainConfig)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable), e.g. --set epochs=10 --set model=enet",
    )
    p.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt"
    )
    p.add_argument(
        "--force", action="store_true", help="with --resume: accept a config that differs from the saved one"
    )
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from multiseg.train.distributed import shutdown_distributed
    from multiseg.train.engine import resolve_run, train

    cfg, run_dir, resume = resolve_run(args.config, args.overrides, args.resume, args.force)
    try:
        summary = train(cfg, run_dir, resume=resume)
    finally:
        shutdown_distributed()
    print(summary.table())
    return 0


COMMANDS += [_add_train]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="multiseg",
        description="Train efficient semantic segmentation CNNs on several street-scene datasets at once.",
    )
    parser.add_argument("--version", action="version", version=f"multiseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``multiseg`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MultisegError as err:
        print(f"multiseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"multiseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
