"""``multiseg eval``: per-head scores of a run or checkpoint under the benchmarks' rules."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--plain",
        action="store_true",
        help="the plain eval-mode model (BN kept, NCHW), not its fastest exact form (BN folded, "
        "channels_last where the model gains from it)",
    )
    p.add_argument(
        "--tta", action="store_true",
        help="test-time augmentation: every image at several scales and mirrored, softmax averaged (mirrored "
        "views rename mirror-twin classes, and do not vote on classes with no twin)",
    )  # fmt: skip
    p.add_argument(
        "--tta-scales", metavar="S1,S2,...",
        help="scale factors of the evaluation image (default: 0.5,0.75,1.0,1.25,1.5,1.75); implies --tta",
    )  # fmt: skip
    p.add_argument(
        "--tta-no-flip", action="store_true", help="--tta without the mirrored views; implies --tta"
    )
    deploy = p.add_argument_group("the deployed graph (--backend onnxruntime)")
    deploy.add_argument(
        "--backend", default="torch", choices=("torch", "onnxruntime"),
        help="onnxruntime: export the checkpoint and score the ONNX graph, with its argmax agreement with "
        "the fp32 torch model (default: torch)",
    )  # fmt: skip
    deploy.add_argument(
        "--dtype", default="fp32", choices=("fp32", "int8"),
        help="int8: static int8 quantisation of the exported graph, calibrated on real frames",
    )  # fmt: skip
    deploy.add_argument(
        "--calib-images",
        type=Path,
        help="int8 calibration images (default: the run's Cityscapes train frames)",
    )
    deploy.add_argument("--calib-count", type=int, default=64, help="int8 calibration frames (default: 64)")
    deploy.add_argument(
        "--onnx", type=Path,
        help="an fp32 graph of the checkpoint to score (e.g. from multiseg export, or the one a previous "
        "onnxruntime eval wrote) instead of exporting it again; --dtype int8 quantises it",
    )  # fmt: skip
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from multiseg.evaluate.evaluator import EvalOptions, run_eval
    from multiseg.evaluate.tta import DEFAULT_SCALES, TtaSpec, parse_scales

    tta = None
    if args.tta or args.tta_scales or args.tta_no_flip:
        scales = parse_scales(args.tta_scales) if args.tta_scales else DEFAULT_SCALES
        tta = TtaSpec(scales=scales, flip=not args.tta_no_flip)
    opts = EvalOptions(
        split=args.split, full_res=args.full_res, data=args.data, gtsdb_masks=args.gtsdb_masks,
        heads=args.heads.split(",") if args.heads else None, max_samples=args.max_samples,
        device=args.device, workers=args.workers, skip_bad=args.skip_bad, plain=args.plain, tta=tta,
    )  # fmt: skip
    if args.backend == "onnxruntime":
        from multiseg.deploy.onnx_eval import run_onnx_eval

        calibration = (args.calib_images, args.calib_count)
        print(run_onnx_eval(args.run, opts, args.out, args.dtype, *calibration, onnx=args.onnx))
        return 0
    if args.dtype != "fp32" or args.onnx is not None:
        from multiseg.errors import MultisegError

        option = "--onnx" if args.onnx is not None else "--dtype int8"
        raise MultisegError(f"{option} needs --backend onnxruntime")
    print(run_eval(args.run, opts, args.out))
    return 0
