"""Data-pipeline speed: multiseg's OpenCV pipeline vs a plain PIL pipeline, same steps, same frames.

Protocol (printed with the results):

* Frames: ``--frames`` Cityscapes-size samples written once into a temporary Cityscapes layout:
  a 2048x1024 RGB PNG (photo-like synthetic content, about 3 MB, like ``leftImg8bit``) and a
  2048x1024 ``gtFine_labelIds`` PNG (34 ids).
* Steps per sample, both pipelines: decode image + label, label ids -> train ids, resize to fit
  1024x512 (aspect kept), random scale in [0.5, 2], random crop 512x1024 with ignore padding,
  random horizontal flip, HWC->CHW uint8 tensors; batches of ``--batch`` collated to uint8.
  multiseg does the fit and the random scale as one OpenCV resize (its design); the PIL pipeline
  does them as two ``Image.resize`` calls (BILINEAR image, NEAREST label), as a torchvision-style
  pipeline written step by step would.
* Both run through ``torch.utils.data.DataLoader`` with the same batch sampler, 0, 1 and 2 workers,
  persistent workers; the first batch (worker start-up) is not timed; images/s over the rest.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from multiseg.data.cityscapes import CityscapesDataset
from multiseg.data.labels import cityscapes_id_to_train_id_lut
from multiseg.data.pipeline import build_train_loader, collate
from multiseg.data.synthetic import blocky_label, street_like_image, write_gray, write_rgb
from multiseg.data.transforms import TrainTransform

CROP_H, CROP_W = 512, 1024


def write_frames(root: Path, n: int) -> None:
    """``n`` 2048x1024 image + labelIds pairs in the Cityscapes layout."""
    rng = np.random.default_rng(0)
    for k in range(n):
        stem = f"benchcity_{k:06d}_000019"
        write_rgb(
            root / f"leftImg8bit/train/benchcity/{stem}_leftImg8bit.png", street_like_image(1024, 2048, rng)
        )
        label = blocky_label(1024, 2048, np.arange(34), rng)
        write_gray(root / f"gtFine/train/benchcity/{stem}_gtFine_labelIds.png", label)


class PilCityscapes(Dataset):
    """The same samples and steps as multiseg's pipeline, written with PIL."""

    def __init__(self, records: list) -> None:
        self.records = records
        self.lut = cityscapes_id_to_train_id_lut().tolist()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        _, index, seed = key
        rng = np.random.default_rng(seed)
        rec = self.records[index]
        image = Image.open(rec.image).convert("RGB")
        label = Image.open(rec.label).point(self.lut)
        w, h = image.size
        fit = min(1024 / w, 512 / h)
        size = (round(w * fit), round(h * fit))
        image, label = image.resize(size, Image.BILINEAR), label.resize(size, Image.NEAREST)
        scale = float(rng.uniform(0.5, 2.0))
        size = (round(size[0] * scale), round(size[1] * scale))
        image, label = image.resize(size, Image.BILINEAR), label.resize(size, Image.NEAREST)
        top = int(rng.integers(0, max(size[1] - CROP_H, 0) + 1))
        left = int(rng.integers(0, max(size[0] - CROP_W, 0) + 1))
        box = (left, top, left + CROP_W, top + CROP_H)
        image, label = image.crop(box), label.crop(box)  # PIL pads outside the image with 0
        if size[0] < left + CROP_W or size[1] < top + CROP_H:
            pad = Image.new("L", (CROP_W, CROP_H), 255)
            pad.paste(label.crop((0, 0, size[0] - left, size[1] - top)), (0, 0))
            label = pad
        if rng.random() < 0.5:
            image, label = image.transpose(Image.FLIP_LEFT_RIGHT), label.transpose(Image.FLIP_LEFT_RIGHT)
        return {
            "image": torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()),
            "label": torch.from_numpy(np.asarray(label).copy()),
            "dataset": "cityscapes",
            "dataset_index": 0,
            "boxes": torch.zeros(0, 4),
            "box_classes": torch.zeros(0, dtype=torch.int64),
            "box_categories": torch.zeros(0, dtype=torch.int64),
            "box_shapes": torch.zeros(0, dtype=torch.int64),
            "path": str(rec.image),
        }


def measure(loader: DataLoader, sampler, epochs: int) -> tuple[float, int]:
    """Images per second over ``epochs`` epochs, not counting the first batch."""
    images, start = 0, None
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            if start is None:
                start = time.perf_counter()
                continue
            images += batch["image"].shape[0]
    return images / (time.perf_counter() - start), images


def main() -> None:
    """Run both pipelines with 0, 1 and 2 workers and print the table and the protocol."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="distinct 2048x1024 frames (default 24)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs over the frames per measurement")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, help="reuse/keep frames here instead of a temporary folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        if (
            not (root / "leftImg8bit/train/benchcity").is_dir()
            or len(list(root.rglob("*_leftImg8bit.png"))) < args.frames
        ):
            t0 = time.perf_counter()
            write_frames(root, args.frames)
            print(f"wrote {args.frames} frames in {time.perf_counter() - t0:.1f} s")
        ours = CityscapesDataset(root, "train", transform=TrainTransform())
        sizes = [p.stat().st_size for p in root.rglob("*_leftImg8bit.png")]
        print("protocol:")
        print(
            f"  machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}"
        )
        print(f"  cv2 {cv2.__version__}, Pillow {Image.__version__}; load average before: {os.getloadavg()}")
        print(f"  {len(ours)} frames 2048x1024, image PNG mean {np.mean(sizes) / 1e6:.2f} MB + labelIds PNG")
        print(
            f"  steps: decode, id->trainId, fit 1024x512, random scale [0.5, 2], crop {CROP_H}x{CROP_W} with"
        )
        print(
            f"  ignore padding, flip, uint8 CHW tensors, batch {args.batch}; {args.epochs} epochs, "
            "first batch untimed"
        )
        print(f"{'workers':>8} {'multiseg (cv2) img/s':>22} {'PIL img/s':>10} {'speed-up':>9}")
        for workers in args.workers:
            results = []
            for dataset in (ours, PilCityscapes(ours.records)):
                loader, sampler, multi = build_train_loader(
                    [ours], args.batch, num_workers=workers, policy="none"
                )
                if isinstance(dataset, PilCityscapes):
                    loader = DataLoader(
                        dataset,
                        batch_sampler=sampler,
                        num_workers=workers,
                        collate_fn=collate,
                        persistent_workers=workers > 0,
                    )
                results.append(measure(loader, sampler, args.epochs)[0])
                del loader
            print(f"{workers:>8} {results[0]:>22.1f} {results[1]:>10.1f} {results[0] / results[1]:>8.2f}x")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
