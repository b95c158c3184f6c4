"""The ``multiseg`` command line: one subcommand per job, each a thin layer over the library.

Parsing only: each module of this package adds the subcommands of one stage (:mod:`.data`,
:mod:`.train`, :mod:`.evaluate`, :mod:`.deploy`, :mod:`.experiments`) and hands the parsed options to
that stage's library function.

Heavy modules (torch, cv2) are imported inside the subcommands so ``multiseg --help`` stays fast.
A :class:`~multiseg.errors.MultisegError` is printed as one line on stderr with exit status 2;
Ctrl-C exits with 130; a training run stopped by SIGTERM (:class:`~multiseg.errors.Terminated`) with 143.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from multiseg import __version__
from multiseg.cli import data, deploy, evaluate, experiments, train
from multiseg.errors import MultisegError, Terminated

#: Every subcommand's parser builder, in the order ``--help`` lists them.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    data.add_demo_data,
    data.add_prepare,
    deploy.add_models,
    deploy.add_bench,
    deploy.add_export,
    train.add_train,
    experiments.add_experiments,
    train.add_pretrain,
    evaluate.add_eval,
    deploy.add_predict,
]


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
    except Terminated as err:  # SIGTERM: the checkpoint is written, the message is the only line
        if str(err):
            print(f"multiseg {args.command}: {err}", file=sys.stderr)
        return 143
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
