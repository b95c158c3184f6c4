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
    p.add_argument(
        "--root", type=Path,
        help="folder to write the three datasets into (default: the cache folder `multiseg train` reads, "
        "~/.cache/multiseg/demo_world_seed<SEED>_<SIZE> or under $MULTISEG_CACHE)",
    )  # fmt: skip
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
    from multiseg.train.data import demo_world_path

    root = args.root if args.root is not None else demo_world_path(args.seed, args.size)
    summary = write_demo_world(root, seed=args.seed, size=args.size, force=args.force)
    print(summary)
    return 0


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="write a training-size copy of a data root (frames shrunk once to fit 512x1024)",
        description=(
            "Copy DATA_ROOT's Cityscapes and Vistas frames and labels, shrunk to fit the training size "
            "(the paper's first resize, done once), into OUT in the same layouts; GTSDB is linked. "
            "Training on OUT decodes about 4x fewer pixels per frame. Evaluate official numbers on the "
            "original data."
        ),
    )
    p.add_argument("--data", type=Path, help="data root to copy (default: the demo world)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the prepared data root into")
    p.add_argument("--size", default="512x1024", help="HxW box frames are shrunk to fit (default: 512x1024)")
    p.add_argument(
        "--datasets", nargs="+", default=["cityscapes", "gtsdb", "vistas"],
        help="datasets (sub-folders of DATA_ROOT) to take (default: cityscapes gtsdb vistas)",
    )  # fmt: skip
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of Vistas images (default: 95)")
    p.add_argument("--workers", type=int, default=2, help="processes (0: in this one; default: 2)")
    p.add_argument("--force", action="store_true", help="replace OUT even if it holds something else")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from multiseg.bench import parse_size
    from multiseg.data.prepare import prepare_data_root
    from multiseg.train.data import demo_world_root

    height, width = parse_size(args.size)
    data = args.data if args.data is not None else demo_world_root()
    summary = prepare_data_root(
        data,
        args.out,
        (width, height),
        datasets=tuple(args.datasets),
        jpeg_quality=args.jpeg_quality,
        workers=args.workers,
        force=args.force,
    )
    print(summary)
    return 0


#: Every subcommand's parser builder, in the order ``--help`` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_demo_data, _add_prepare]


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
        description="Batch-1 inference latency (median, p90) and FPS, BN folded, after a warm-up.",
    )
    p.add_argument("--model", default="all", help="a model name or 'all' (default: all)")
    p.add_argument("--size", default="512x1024", help="input HxW (default: 512x1024)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default: cpu)")
    p.add_argument(
        "--dtype",
        default="fp32",
        choices=("fp32", "fp16", "bf16", "int8"),
        help="compute type (default: fp32); int8: static int8 quantisation, --backend onnxruntime only, "
        "with its accuracy against fp32 torch printed beside the timings",
    )
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnxruntime"),
        help="runtime to time (default: torch)",
    )
    p.add_argument("--heads", default="one", choices=("one", "all"), help="one head or every dataset's head")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timed runs per model (default: 3)")
    p.add_argument("--warmup", type=int, help="warm-up runs (default: 10 on cpu, 50 on cuda)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers (not folded)")
    _add_ort_options(p)
    p.add_argument(
        "--ort-spinning",
        action="store_true",
        help="onnxruntime: idle intra-op threads busy-wait (ORT's default; off here, faster on shared hosts)",
    )
    p.set_defaults(func=_run_bench)


def _add_ort_options(p: argparse.ArgumentParser) -> None:
    """int8 quantisation options shared by ``bench`` and ``export``."""
    p.add_argument(
        "--quant-format",
        default="qdq",
        choices=("qdq", "qoperator"),
        help="int8: QuantizeLinear/DequantizeLinear pairs (default) or QLinear* operators",
    )
    p.add_argument(
        "--calib-images",
        type=Path,
        help="int8: calibrate on the images of this folder (recursive, e.g. a Cityscapes leftImg8bit/val); "
        "default: random N(0,1) inputs",
    )
    p.add_argument("--calib-count", type=int, default=8, help="int8: calibration inputs (default: 8)")


def _run_bench(args: argparse.Namespace) -> int:
    from multiseg.bench import BenchSettings, parse_size, run_bench

    settings = BenchSettings(
        size=parse_size(args.size), device=args.device, dtype=args.dtype, channels_last=args.channels_last,
        compile=args.compile, backend=args.backend, heads=args.heads, fold_bn=not args.no_fold_bn,
        min_time=args.min_time, warmup=args.warmup, threads=args.threads, ort_spinning=args.ort_spinning,
        quant_format=args.quant_format, calib_images=args.calib_images, calib_count=args.calib_count,
    )  # fmt: skip
    print(run_bench([args.model], settings, args.json))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a network or checkpoint to ONNX and check it against torch with ONNX Runtime",
        description="Write an ONNX graph (dynamic batch and size by default); print max |torch - ORT|.",
    )
    p.add_argument("--onnx", type=Path, required=True, help="ONNX file to write")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model name (random weights)")
    source.add_argument(
        "--checkpoint", type=Path, help="a checkpoint with 'model_config' and 'model' entries"
    )
    p.add_argument("--heads", help="heads to export: name:classes,... with --model; names with --checkpoint")
    p.add_argument(
        "--head-mode",
        default="decoder",
        choices=("decoder", "last_conv"),
        help="for a model name: a decoder per head, or a shared decoder with a last conv per head",
    )
    p.add_argument("--size", default="512x1024", help="example and parity input HxW (default: 512x1024)")
    p.add_argument("--static", action="store_true", help="fixed batch 1 and --size instead of dynamic axes")
    p.add_argument("--legacy", action="store_true", help="use the TorchScript-based exporter")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset version (default: 18)")
    p.add_argument(
        "--dtype",
        default="fp32",
        choices=("fp32", "int8"),
        help="int8: also quantise (static, onnxruntime.quantization); --onnx gets the int8 graph, the fp32 "
        "one is kept beside it as NAME.fp32.onnx, and int8's accuracy against fp32 torch is printed",
    )
    _add_ort_options(p)
    p.add_argument(
        "--threads", type=int, help="onnxruntime intra-op threads of the timed run (default: ORT's)"
    )
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
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip corrupt or truncated files with a warning, report them at the end (= --set skip_bad=true)",
    )
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from multiseg.train.engine import resolve_run, train

    overrides = [*args.overrides, *(["skip_bad=true"] if args.skip_bad else [])]
    cfg, run_dir, resume = resolve_run(args.config, overrides, args.resume, args.force)
    print(train(cfg, run_dir, resume=resume).table())
    return 0


COMMANDS += [_add_train]


def _add_experiments(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiments",
        help="run a grid of training runs (the paper's study) and render Table 1 and Figs 4-7",
        description=(
            "Train every cell of GRID (a YAML file listing TrainConfig files; configs/paper/grid.yaml is the "
            "paper's study, configs/demo/grid.yaml the same on the demo world), skipping finished cells and "
            "resuming an interrupted one, then write results.csv/json, table1.md/csv and four PNG figures "
            "into --out, with FPS measured on this machine."
        ),
    )
    p.add_argument("grid", type=Path, help="grid file (see multiseg/experiments/grid.py for its keys)")
    p.add_argument("--out", type=Path, required=True, help="output folder; rerun with it to resume")
    p.add_argument("--models", nargs="+", metavar="NAME", help="run only the cells of these models")
    p.add_argument(
        "--budget-scale", type=float, default=1.0, metavar="F", help="multiply every cell's epochs by F"
    )
    p.add_argument("--data", type=Path, help="data_root for every cell (data/cityscapes, data/gtsdb, ...)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one TrainConfig key in every cell (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--published", type=Path, help="published-values YAML shown beside ours (default: the shipped one)"
    )
    p.add_argument("--no-published", action="store_true", help="leave the paper's values out of Table 1")
    p.set_defaults(func=_run_experiments)


def _run_experiments(args: argparse.Namespace) -> int:
    from multiseg.config import parse_overrides
    from multiseg.experiments import load_grid, run_grid, scale_budget, select_models
    from multiseg.experiments.table import PUBLISHED_FILE

    overrides = parse_overrides(args.overrides)
    if args.data is not None:
        overrides["data_root"] = str(args.data)
    grid = scale_budget(select_models(load_grid(args.grid, overrides), args.models), args.budget_scale)
    published = None if args.no_published else (args.published or PUBLISHED_FILE)
    print(run_grid(grid, args.out, published).summary())
    return 0


COMMANDS += [_add_experiments]


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain a model's encoder as an image classifier on a class-per-subfolder image folder",
        description=(
            "Train the encoder + global pooling + a linear classifier on DATA (DATA/<class>/*.jpg, or "
            "DATA/train/<class> and DATA/val/<class>) and write OUT/encoder.pt, which train loads with "
            "encoder_weights: OUT/encoder.pt. Rerunning into the same OUT resumes; runs under torchrun (DDP)."
        ),
    )
    p.add_argument(
        "config", nargs="?", type=Path, help="flat YAML (keys of multiseg.pretrain.PretrainConfig)"
    )
    p.add_argument("--data", type=Path, help="image folder, one subfolder per class")
    p.add_argument("--model", help="the model whose encoder to pretrain (default: erfnet)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/pretrain/<model>)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key (repeatable), e.g. --set epochs=30",
    )  # fmt: skip
    p.add_argument(
        "--demo", type=Path, metavar="DIR", help="first write a demo-world classification set to DIR"
    )
    p.add_argument("--force", action="store_true", help="reuse an --out folder that holds another config")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from multiseg.config import load_config
    from multiseg.pretrain import PretrainConfig, pretrain

    overrides = list(args.overrides)
    if args.demo is not None:
        from multiseg.data.demo.crops import write_classification_set

        print(write_classification_set(args.demo))
        overrides.append(f"data={args.demo}")
    overrides += [f"{k}={v}" for k, v in (("data", args.data), ("model", args.model)) if v is not None]
    cfg = load_config(PretrainConfig, args.config, overrides)
    out = args.out or Path(cfg.out_dir) / cfg.model
    if args.out is not None:
        cfg.out_dir = args.out
    print(pretrain(cfg, out, force=args.force).table())
    return 0


COMMANDS += [_add_pretrain]


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="per-head mIoU of a run or checkpoint on its datasets: table, JSON, CSV, bar charts, confusion",
        description=(
            "Evaluate every head of RUN_OR_CHECKPOINT (a run folder: its best.pt, else last.pt) on the data "
            "the run trained on, with the benchmarks' rules: Cityscapes 19 classes, Vistas evaluated classes "
            "(and those Cityscapes lacks), Lane Markings 4 classes, GTSDB 43 signs against box targets and "
            "per-pixel ground truth where available. Default: at training resolution; --full-res: logits "
            "upsampled to the original label size (the official protocol)."
        ),
    )
    p.add_argument("run", type=Path, metavar="RUN_OR_CHECKPOINT", help="a run folder or a checkpoint file")
    p.add_argument(
        "--data", action="append", default=[], metavar="ROOT|NAME=PATH",
        help="data root (cityscapes/, gtsdb/, vistas/ inside) or one dataset's root (repeatable)",
    )  # fmt: skip
    p.add_argument("--split", default="val", choices=("val", "train"), help="default: val")
    p.add_argument("--full-res", action="store_true", help="evaluate at the original label resolution")
    p.add_argument("--heads", help="comma-separated heads to evaluate (default: all)")
    p.add_argument("--gtsdb-masks", type=Path, help="Meletis & Dubbelman per-pixel GTSDB masks (gtFine/)")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N images of each dataset")
    p.add_argument("--out", type=Path, help="report folder (default: RUN/eval-<split>-<resolution>)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers (default: 1)")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave corrupt or truncated files out with a warning and report them (default: stop)",
    )
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from multiseg.evaluate.evaluator import EvalOptions, run_eval

    opts = EvalOptions(
        split=args.split, full_res=args.full_res, data=args.data, gtsdb_masks=args.gtsdb_masks,
        heads=args.heads.split(",") if args.heads else None, max_samples=args.max_samples,
        device=args.device, workers=args.workers, skip_bad=args.skip_bad,
    )  # fmt: skip
    print(run_eval(args.run, opts, args.out))
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="colour maps, overlays, label PNGs and the unified map for images or folders",
        description=(
            "For every image: each head's colour map, overlay and raw labels (Cityscapes labelIds and "
            "trainIds, GTSDB classes, Vistas indices), and the unified map (Cityscapes classes with the sign "
            "type and lane markings painted in) with legends. Batched, any image size, progress bar. "
            "--submission writes the Cityscapes server format (label ids, full resolution) and a zip."
        ),
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a checkpoint or a run folder")
    p.add_argument("inputs", type=Path, nargs="+", metavar="IMAGES_OR_DIR", help="image files or folders")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"), help="default: torch")
    p.add_argument("--onnx", type=Path, help="onnxruntime: this ONNX file (default: export the checkpoint)")
    p.add_argument("--heads", help="comma-separated heads (default: all)")
    p.add_argument("--size", help="network fit size WxH (default: the run's resize_width x resize_height)")
    p.add_argument("--full-size", action="store_true", help="run the network at each image's own size")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch (default: 4)")
    p.add_argument("--workers", type=int, default=1, help="image-reading workers (default: 1)")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image instead of skipping it")
    p.add_argument("--submission", action="store_true", help="Cityscapes test-server format only, plus a zip")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from multiseg.evaluate.predict import PredictOptions, parse_fit, run_predict

    opts = PredictOptions(
        backend=args.backend, onnx=args.onnx, heads=args.heads.split(",") if args.heads else None,
        size=parse_fit(args.size) if args.size else None, full_size=args.full_size,
        batch_size=args.batch_size, workers=args.workers, strict=args.strict, submission=args.submission,
        device=args.device,
    )  # fmt: skip
    print(run_predict(args.checkpoint, args.inputs, args.out, opts))
    return 0


COMMANDS += [_add_eval, _add_predict]


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
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Leave the DDP process group a command joined under torchrun (torch is only touched if loaded)."""
    if "torch.distributed" in sys.modules:
        from multiseg.train.distributed import shutdown_distributed

        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
