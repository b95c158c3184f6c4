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
