"""``multiseg train`` and ``multiseg pretrain``: joint training and encoder pretraining."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

#: Stands for the config keys in ``train --help`` until the help is printed (see _TrainHelpFormatter).
_CONFIG_KEYS = "<config keys>"


class _TrainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Lists TrainConfig's keys (read from its source) only when ``train --help`` is printed, so building
    the parser for every other command stays cheap."""

    def add_text(self, text: str | None) -> None:
        if text == _CONFIG_KEYS:
            from multiseg.config import config_help
            from multiseg.train.config import TrainConfig, demo_config

            keys = config_help(TrainConfig, ("demo run", demo_config()))
            text = f"config keys (in CONFIG or --set KEY=VALUE; [demo run: ...]: without CONFIG):\n{keys}"
        super().add_text(text)


def add_train(sub: argparse._SubParsersAction) -> None:
    description = (
        "Joint multi-dataset training. With no CONFIG it trains ERFNet on the demo world (generated on "
        "first use) in the hardest setting, Cityscapes + GTSDB + Vistas, sized for ~10 minutes on 2 CPU "
        "cores. Runs under torchrun unchanged (DDP). The resolved config is saved in the run folder. "
        "After each validation it prints one line (each head's mIoU, the loss weights, the best so far, "
        "the time left) and at the end what each head reached."
    )
    p = sub.add_parser(
        "train",
        help="train one network on several datasets at once (default: ERFNet on the demo world)",
        description=textwrap.fill(description, 100),
        epilog=_CONFIG_KEYS,
        formatter_class=_TrainHelpFormatter,
    )
    p.add_argument(
        "config", nargs="?", type=Path, help="flat YAML config: the keys listed below (TrainConfig)"
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
        "--data", action="append", default=[], metavar="ROOT|NAME=PATH",
        help="data root (cityscapes/, gtsdb/, vistas/ inside: = --set data_root=ROOT) or one dataset's root "
        "(cityscapes=PATH, gtsdb=PATH, vistas=PATH; repeatable); default: the config's, else the demo world",
    )  # fmt: skip
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR|auto",
        help=(
            "continue the run in RUN_DIR from its last.pt; 'auto': the newest run of this config in out_dir, "
            "or a new run when there is none (for requeued cluster jobs)"
        ),
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
    from multiseg.train.run import data_overrides, resolve_run, train

    overrides = [*data_overrides(args.data), *args.overrides, *(["skip_bad=true"] if args.skip_bad else [])]
    cfg, run_dir, resume = resolve_run(args.config, overrides, args.resume, args.force)
    summary = train(cfg, run_dir, resume=resume)
    if summary.is_main:  # under torchrun every rank returns the summary; rank 0 prints it
        print(summary.table())
    return 0


def add_pretrain(sub: argparse._SubParsersAction) -> None:
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
        "config", nargs="?", type=Path, help="flat YAML (keys of multiseg.train.pretrain.PretrainConfig)"
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
    from multiseg.train.pretrain import PretrainConfig, pretrain

    overrides = list(args.overrides)
    if args.demo is not None:
        from multiseg.demo.crops import write_classification_set

        print(write_classification_set(args.demo))
        overrides.append(f"data={args.demo}")
    overrides += [f"{k}={v}" for k, v in (("data", args.data), ("model", args.model)) if v is not None]
    cfg = load_config(PretrainConfig, args.config, overrides)
    out = args.out or Path(cfg.out_dir) / cfg.model
    if args.out is not None:
        cfg.out_dir = args.out
    print(pretrain(cfg, out, force=args.force).table())
    return 0
