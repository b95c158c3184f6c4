"""``multiseg demo-data`` and ``multiseg prepare``: write the demo world, or a training-size data root."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_demo_data(sub: argparse._SubParsersAction) -> None:
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
        choices=("small", "medium", "full"),
        default="small",
        help="small: about 100 frames per dataset at about a quarter of the real frame sizes; medium: "
        "3x more frames; full: the real datasets' frame sizes (Cityscapes 2048x1024, GTSDB 1360x800, "
        "Vistas 800x600 to 4000x3000, portrait too), a few frames each (default: small)",
    )
    p.add_argument(
        "--frames", type=int, metavar="N",
        help="frames per dataset instead of the size's default (a fifth held out for validation, at least 1)",
    )  # fmt: skip
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite ROOT even if it holds something other than a demo world",
    )
    p.add_argument(
        "--video", nargs="?", const="", metavar="FILE.mp4",
        help="instead of the datasets, write a drive through one demo street (a moving camera, signs and "
        "lane markings; 512x256, 10 fps) as an mp4v video to FILE.mp4 (default: the cache folder, "
        "demo_drive_seed<SEED>.mp4)",
    )  # fmt: skip
    p.add_argument("--seconds", type=float, default=10.0, help="--video: length of the drive (default: 10)")
    p.set_defaults(func=_run_demo_data)


def _run_demo_data(args: argparse.Namespace) -> int:
    from multiseg.demo.cache import demo_video_path, demo_world_path
    from multiseg.demo.world import write_demo_world

    if args.video is not None:
        from multiseg.demo.drive import DriveSpec, write_drive_video
        from multiseg.errors import MultisegError

        if args.root is not None:
            raise MultisegError(
                "--video writes one video file, not a data root: give --video FILE.mp4, not --root"
            )
        path = Path(args.video) if args.video else demo_video_path(args.seed)
        print(write_drive_video(path, seed=args.seed, spec=DriveSpec(seconds=args.seconds)))
        return 0
    root = args.root if args.root is not None else demo_world_path(args.seed, args.size)
    summary = write_demo_world(root, seed=args.seed, size=args.size, force=args.force, n_frames=args.frames)
    print(summary)
    return 0


def add_prepare(sub: argparse._SubParsersAction) -> None:
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
    from multiseg.config import parse_size
    from multiseg.data.prepare import prepare_data_root
    from multiseg.demo.cache import demo_world_root

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
