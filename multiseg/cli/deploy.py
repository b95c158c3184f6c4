"""``multiseg models``, ``bench``, ``export`` and ``predict``: a trained or untrained network at work."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the networks with parameters (total, encoder, decoder) and GMACs",
        description="Every registered network with one head: parameter counts, output stride and conv GMACs.",
    )
    p.add_argument("--size", default="512x1024", help="input HxW for the GMACs (default: 512x1024)")
    p.add_argument("--classes", type=int, default=19, help="classes of the one head (default: 19)")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from multiseg.config import parse_size
    from multiseg.models.complexity import models_table

    print(models_table(parse_size(args.size), args.classes))
    return 0


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure params, GMACs and latency/FPS of the networks under a printed protocol",
        description="Batch-1 inference latency (median, p90) and FPS after a warm-up; by default the torch "
        "model runs in its fastest exact form (BN folded, channels_last where that model gains from it).",
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
    p.add_argument(
        "--layout",
        choices=("auto", "nchw", "channels_last"),
        default="auto",
        help="torch memory format (default auto: channels_last where the model gains from it)",
    )
    p.add_argument("--channels-last", action="store_true", help="the same as --layout channels_last")
    p.add_argument("--plain", action="store_true", help="plain eager model: BN kept, NCHW (the baseline)")
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
    _ort_options(p)
    p.add_argument(
        "--ort-spinning",
        action="store_true",
        help="onnxruntime: idle intra-op threads busy-wait (ORT's default; off here, faster on shared hosts)",
    )
    p.set_defaults(func=_run_bench)


def _ort_options(p: argparse.ArgumentParser) -> None:
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
    from multiseg.config import parse_size
    from multiseg.deploy.bench import BenchSettings, run_bench

    settings = BenchSettings(
        size=parse_size(args.size), device=args.device, dtype=args.dtype, channels_last=_layout(args),
        compile=args.compile, backend=args.backend, heads=args.heads, fold_bn=not args.no_fold_bn,
        plain=args.plain,
        min_time=args.min_time, warmup=args.warmup, threads=args.threads, ort_spinning=args.ort_spinning,
        quant_format=args.quant_format, calib_images=args.calib_images, calib_count=args.calib_count,
    )  # fmt: skip
    print(run_bench([args.model], settings, args.json))
    return 0


def _layout(args: argparse.Namespace) -> bool | None:
    """``--layout``/``--channels-last`` as BenchSettings.channels_last (None: the model's own choice)."""
    if args.channels_last:
        return True
    return {"auto": None, "nchw": False, "channels_last": True}[args.layout]


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a network or checkpoint to ONNX and check it against torch with ONNX Runtime",
        description="Write an ONNX graph (dynamic batch and size by default); print max |torch - ORT|.",
    )
    p.add_argument("--onnx", type=Path, required=True, help="ONNX file to write")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        help="a model name (random weights); with neither --model nor --checkpoint: the newest run's best "
        "checkpoint under runs/demo or runs/train, else erfnet (the report's first line says which)",
    )  # fmt: skip
    source.add_argument(
        "--checkpoint", type=Path, help="a checkpoint with 'model_config' and 'model' entries"
    )
    p.add_argument("--heads", help="heads to export: name:classes,... with --model; names with --checkpoint")
    p.add_argument(
        "--head-mode",
        default="decoder",
        choices=("decoder", "last_conv", "universal"),
        help="for a model name: a decoder per head, a shared decoder with a last conv per head, or one "
        "decoder over the shipped universal taxonomy",
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
    _ort_options(p)
    p.add_argument(
        "--threads", type=int, help="onnxruntime intra-op threads of the timed run (default: ORT's)"
    )
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from multiseg.config import parse_size
    from multiseg.deploy.export import run_export

    print(run_export(args, parse_size(args.size)))
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="colour maps, overlays, label PNGs and the unified map for images or folders; overlay videos",
        description=(
            "For every image: each head's colour map, overlay and raw labels (Cityscapes labelIds and "
            "trainIds, GTSDB classes, Vistas indices), and the unified map (Cityscapes classes with the sign "
            "type and lane markings painted in) with legends. Batched, any image size, progress bar. "
            "--submission writes the Cityscapes server format (label ids, full resolution) and a zip. "
            "With --out FILE.mp4 (or .avi, .mkv, .mov): SOURCE, a video file, a folder of frames or a camera "
            "index, is streamed (decode, inference and encode overlapped) into an overlay video of the "
            "unified map, or of the one head given with --heads, with the live FPS drawn on it; the summary "
            "gives the model's FPS, the end-to-end FPS and the time per frame of each stage."
        ),
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a checkpoint or a run folder")
    p.add_argument(
        "inputs", type=Path, nargs="+", metavar="IMAGES_OR_DIR|SOURCE",
        help="image files or folders; for a video --out: one video file, folder of frames or camera index",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="output folder, or a video file (.mp4, .avi ...)")
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
    p.add_argument(
        "--plain",
        action="store_true",
        help="torch: the plain eval-mode model (BN kept, NCHW), not its fastest exact form (BN folded, "
        "channels_last where the model gains from it)",
    )
    video = p.add_argument_group("video (--out FILE.mp4)")
    video.add_argument("--every", type=int, default=1, help="keep every Nth frame (default: 1)")
    video.add_argument("--max-frames", type=int, help="stop after this many frames (default: all)")
    video.add_argument("--out-size", help="output video size WxH (default: the source's)")
    video.add_argument(
        "--fps", type=float, help="output frame rate (default: the source's / --every; frames: 10)"
    )
    video.add_argument("--codec", help="FOURCC (default: mp4v for .mp4/.mov/.mkv, MJPG for .avi)")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from multiseg.deploy.predict import parse_fit
    from multiseg.deploy.video import VideoOptions, predict_images_or_video

    opts = VideoOptions(
        backend=args.backend, onnx=args.onnx, heads=args.heads.split(",") if args.heads else None,
        size=parse_fit(args.size) if args.size else None, full_size=args.full_size,
        batch_size=args.batch_size, workers=args.workers, strict=args.strict, submission=args.submission,
        device=args.device, plain=args.plain, every=args.every, max_frames=args.max_frames,
        out_size=parse_fit(args.out_size, "--out-size") if args.out_size else None, fps=args.fps,
        codec=args.codec,
    )  # fmt: skip
    print(predict_images_or_video(args.checkpoint, args.inputs, args.out, opts))
    return 0
