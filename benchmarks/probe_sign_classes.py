"""How well can a model's encoder tell the 43 GTSDB signs apart, given only the boxes of a train split?

A diagnostic for issue 5's GTSDB goal. Every box of the GTSDB train and test splits is cut out of its
frame with some context and written to an ImageNet-style folder (train/<class>, val/<class>); the
model's encoder is then trained as a classifier on the train crops (``multiseg pretrain``, without
flips: many signs are mirror images of each other) and scored on the test crops. That accuracy is about
as much as a GTSDB head can learn about sign *types* from those boxes, whatever the segmentation
recipe, so it tells whether the boxes or the budget limit the GTSDB mIoU.

    python benchmarks/probe_sign_classes.py --out /tmp/probe                  # small demo world
    python benchmarks/probe_sign_classes.py --out /tmp/probe-m --size medium  # 3x the frames
    python benchmarks/probe_sign_classes.py --out /tmp/probe-r --data /data/GTSDB
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import cv2
import numpy as np

from multiseg.data.gtsdb import GtsdbDataset
from multiseg.demo.cache import demo_world_root
from multiseg.train.pretrain import PretrainConfig, pretrain


def crop_box(image: np.ndarray, box: np.ndarray, context: float) -> np.ndarray:
    """The half-open box ``(x1, y1, x2, y2)`` widened by ``context`` times its longer side, clipped."""
    x1, y1, x2, y2 = box
    margin = context * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    top, left = max(0, int(y1 - margin)), max(0, int(x1 - margin))
    bottom, right = min(h, int(np.ceil(y2 + margin))), min(w, int(np.ceil(x2 + margin)))
    return image[top:bottom, left:right]


def write_crops(root: Path, out: Path, context: float) -> dict[str, collections.Counter[int]]:
    """Write the box crops of the train and test splits to ``out/{train,val}/<class>``; counts per class."""
    counts: dict[str, collections.Counter[int]] = {}
    for split, folder in (("train", "train"), ("test", "val")):
        ds = GtsdbDataset(root, split)
        counts[folder] = collections.Counter()
        for i in range(len(ds)):
            sample = ds.load(i)
            for j, (box, cls) in enumerate(zip(sample.boxes, sample.box_classes, strict=True)):
                if folder == "val" and counts["train"][int(cls)] == 0:
                    continue  # a class the train split never shows cannot be learned from its boxes
                target = out / folder / f"{int(cls):02d}" / f"{ds.records[i].key}_{j}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                crop = crop_box(sample.image, box, context)
                cv2.imwrite(str(target), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                counts[folder][int(cls)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="GTSDB root (default: the demo world's)")
    parser.add_argument("--size", default="small", choices=("small", "medium"), help="demo world size")
    parser.add_argument("--out", type=Path, required=True, help="folder for the crops and the run")
    parser.add_argument("--model", default="erfnet")
    parser.add_argument("--image-size", type=int, default=32, help="square crop side fed to the encoder")
    parser.add_argument("--context", type=float, default=0.15, help="margin around a box, of its longer side")
    parser.add_argument(
        "--epochs", type=int, default=200, help="small demo world: 60 stop at 0.28, 200 reach 0.50"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"probe_sign_classes: {args.out} is not empty; give a new --out folder")
    root = args.data if args.data is not None else demo_world_root(size=args.size) / "gtsdb"
    start = time.perf_counter()
    counts = write_crops(root, args.out / "crops", args.context)
    train, val = counts["train"], counts["val"]
    cfg = PretrainConfig(
        data=args.out / "crops",
        model=args.model,
        image_size=args.image_size,
        scale_min=0.6,
        flip=False,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        workers=1,
        threads=args.threads,
    )
    summary = pretrain(cfg, args.out / "run")
    seconds = time.perf_counter() - start
    per_class = sorted(train.values())
    print(
        f"protocol: {args.model} encoder + linear classifier, {args.image_size}x{args.image_size} crops "
        f"(context {args.context}), {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}, "
        f"random resized crops (area {cfg.scale_min}-1), no flips"
    )
    print(f"data: {root}")
    print(
        f"train crops: {sum(train.values())} over {len(train)} classes "
        f"(per class: min {per_class[0]}, median {per_class[len(per_class) // 2]}, max {per_class[-1]})"
    )
    print(f"test crops:  {sum(val.values())} over {len(val)} classes")
    final = summary.final
    print(f"held-out accuracy: {final['acc/val']:.3f}   train accuracy: {final['acc/train']:.3f}")
    print(f"time: {seconds:.0f} s")


if __name__ == "__main__":
    main()
