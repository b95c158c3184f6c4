"""Data-pipeline speed: multiseg's OpenCV pipeline vs a plain PIL pipeline, same steps, same frames.

Protocol (printed with the results):

* Frames: ``--frames`` Cityscapes-size samples written once into a temporary Cityscapes layout:
  a 2048x1024 RGB PNG (photo-like synthetic content, about 3 MB, like ``leftImg8bit``) and a
  2048x1024 ``gtFine_labelIds`` PNG (34 ids).
* Steps per sample, both pipelines: decode image + label, label ids -> train ids, resize to fit
  1024x512 (aspect kept), random scale in [0.5, 2], random crop 512x1024 with ignore padding,
  random horizontal flip, HWC->CHW uint8 tensors; batches of ``--batch`` collated to uint8.
  multiseg runs its real ``CityscapesDataset`` + ``TrainTransform`` + ``collate`` (the fit and the
  random scale are one resize, fused with the crop and the flip where ``TrainTransform`` uses
  ``multiseg.data.fastgeom``); the PIL pipeline does the fit and the scale as two ``Image.resize``
  calls (BILINEAR image, NEAREST label), as a torchvision-style pipeline written step by step would.
* Both run through ``torch.utils.data.DataLoader`` with the same batch sampler, 0, 1 and 2 workers,
  persistent workers; the first batch (worker start-up) is not timed; images/s over the rest.
* Beside images/s: the CPU time the benchmark's own processes (main + workers) spent per image in
  the timed part, and how many cores *other* processes used meanwhile (from ``/proc/stat``), so a
  run on a shared machine shows how contended it was.
* ``--profile``: first, per-stage CPU milliseconds per sample of both pipelines in this process
  (one thread, thread CPU time, so other load on the machine hardly moves it).
* ``--prepared``: then both pipelines again on a ``multiseg prepare`` copy of the frames (shrunk
  once to 1024x512, so the fit resize becomes a no-op and decoding reads 4x fewer pixels), and
  multiseg on that copy against PIL on the original frames (what switching to a prepared copy buys).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from multiseg.data.base import Record
from multiseg.data.cityscapes import ID_LUT, CityscapesDataset
from multiseg.data.io import check_same_size, decode_image, decode_label, map_labels, read_bytes
from multiseg.data.pipeline import build_train_loader, collate
from multiseg.data.prepare import prepare_data_root
from multiseg.data.sample import Mirror
from multiseg.data.transforms import TrainTransform, clip_boxes
from multiseg.demo.synthetic import blocky_label, street_like_image, write_gray, write_rgb
from multiseg.labels import cityscapes_id_to_train_id_lut

CROP_H, CROP_W = 512, 1024
Timer = Callable[[str], AbstractContextManager[None]]


def untimed(stage: str) -> AbstractContextManager[None]:
    """The no-op stage timer of normal runs."""
    return contextlib.nullcontext()


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

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.lut = cityscapes_id_to_train_id_lut().tolist()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        return self.item(key, untimed)

    def item(self, key: tuple[int, int, int], timed: Timer) -> dict:
        """One sample; ``timed(stage)`` wraps each step (for ``--profile``)."""
        _, index, seed = key
        rng = np.random.default_rng(seed)
        rec = self.records[index]
        with timed("decode image"):
            image = Image.open(rec.image).convert("RGB")
        with timed("decode label"):
            label = Image.open(rec.label)
            label.load()
        with timed("label ids -> train ids"):
            label = label.point(self.lut)
        w, h = image.size
        fit = min(1024 / w, 512 / h)
        size = (round(w * fit), round(h * fit))
        scale = float(rng.uniform(0.5, 2.0))
        scaled = (round(size[0] * scale), round(size[1] * scale))
        with timed("resize image (fit, scale)"):
            image = image.resize(size, Image.BILINEAR).resize(scaled, Image.BILINEAR)
        with timed("resize label (fit, scale)"):
            label = label.resize(size, Image.NEAREST).resize(scaled, Image.NEAREST)
        size = scaled
        top = int(rng.integers(0, max(size[1] - CROP_H, 0) + 1))
        left = int(rng.integers(0, max(size[0] - CROP_W, 0) + 1))
        box = (left, top, left + CROP_W, top + CROP_H)
        with timed("crop + pad"):
            image, label = image.crop(box), label.crop(box)  # PIL pads outside the image with 0
            if size[0] < left + CROP_W or size[1] < top + CROP_H:
                pad = Image.new("L", (CROP_W, CROP_H), 255)
                pad.paste(label.crop((0, 0, size[0] - left, size[1] - top)), (0, 0))
                label = pad
        with timed("flip"):
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
                label = label.transpose(Image.FLIP_LEFT_RIGHT)
        with timed("to CHW tensors"):
            out = {
                "image": torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()),
                "label": torch.from_numpy(np.asarray(label).copy()),
            }
        return {
            **out,
            "dataset": "cityscapes",
            "dataset_index": 0,
            "boxes": torch.zeros(0, 4),
            "box_classes": torch.zeros(0, dtype=torch.int64),
            "box_categories": torch.zeros(0, dtype=torch.int64),
            "box_shapes": torch.zeros(0, dtype=torch.int64),
            "path": str(rec.image),
        }


def multiseg_item(ds: CityscapesDataset, key: tuple[int, int, int], timed: Timer) -> dict:
    """One sample of ``ds`` step by step: the calls of ``CityscapesDataset.load`` and ``__getitem__``."""
    _, index, seed = key
    rec = ds.records[index]
    assert rec.label is not None and ds.transform is not None
    with timed("read files"):
        image_bytes, label_bytes = read_bytes(rec.image), read_bytes(rec.label)
    with timed("decode image"):
        image = decode_image(image_bytes, rec.image)
    with timed("decode label"):
        raw = decode_label(label_bytes, rec.label)
    with timed("label ids -> train ids"):
        label = map_labels(raw, ID_LUT, rec.label, "Cityscapes label id")
        check_same_size(image, label, rec.image, rec.label)
    sample = ds.dense_sample(image, label)
    with timed("flip + resize + crop (TrainTransform)"):
        sample = ds.transform(sample, Mirror(), np.random.default_rng(seed))
    with timed("to CHW tensors"):
        boxes, classes = clip_boxes(sample.boxes, sample.box_classes, CROP_W, CROP_H)
        out = {
            "image": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
            "label": torch.from_numpy(sample.label),
        }
    zeros = torch.zeros(0, dtype=torch.int64)
    return {**out, "dataset": ds.name, "dataset_index": 0, "boxes": torch.from_numpy(boxes),
            "box_classes": torch.from_numpy(classes), "box_categories": zeros, "box_shapes": zeros,
            "path": str(rec.image)}  # fmt: skip


def profile(ours: CityscapesDataset, batch: int, rounds: int = 2) -> None:
    """Print per-stage thread-CPU ms per sample of both pipelines (one process, one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    pil = PilCityscapes(ours.records)
    tables: dict[str, dict[str, list[float]]] = {}
    for name, make in (("multiseg", lambda k, t: multiseg_item(ours, k, t)), ("PIL", pil.item)):
        stages: dict[str, list[float]] = defaultdict(list)

        @contextlib.contextmanager
        def timed(stage: str, stages: dict[str, list[float]] = stages) -> Iterator[None]:
            start = time.thread_time()
            yield
            stages[stage].append((time.thread_time() - start) * 1e3)

        items = []
        for r in range(rounds):
            for index in range(len(ours)):
                start = time.thread_time()
                items.append(make((0, index, 1000 * r + index), timed))
                stages["total per sample"].append((time.thread_time() - start) * 1e3)
        start = time.thread_time()
        for i in range(0, len(items) - batch + 1, batch):
            collate(items[i : i + batch])
        stages["collate (per sample)"] = [(time.thread_time() - start) * 1e3 / len(items)]
        tables[name] = stages
    torch.set_num_threads(threads)
    print(f"per-stage CPU ms per sample (mean over {rounds} x {len(ours)} samples, thread CPU time):")
    for name, stages in tables.items():
        print(f"  {name}:")
        for stage, values in stages.items():
            if stage != "total per sample":
                print(f"    {stage:40s} {statistics.mean(values):7.2f}")
        total = statistics.mean(stages["total per sample"])
        print(f"    {'total per sample (without collate)':40s} {total:7.2f}")


class CpuClock:
    """CPU seconds of this process and its live children (DataLoader workers), and of the whole machine."""

    def __init__(self) -> None:
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.start = self.read()

    def read(self) -> tuple[float, float, float]:
        """(wall s, own CPU s, machine busy CPU s); machine is NaN where /proc is missing."""
        own = sum(os.times()[:2])
        machine = float("nan")
        with contextlib.suppress(OSError, ValueError, IndexError):
            for child in multiprocessing.active_children():
                with open(f"/proc/{child.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                own += (int(fields[11]) + int(fields[12])) / self.ticks
            with open("/proc/stat") as f:
                cpu = [int(x) for x in f.readline().split()[1:]]
            machine = (sum(cpu[:8]) - cpu[3] - cpu[4]) / self.ticks  # all but idle and iowait
        return time.perf_counter(), own, machine

    def since_start(self, images: int) -> tuple[float, float, float]:
        """(images/s, own CPU ms per image, cores used by other processes) since construction."""
        wall0, own0, machine0 = self.start
        wall1, own1, machine1 = self.read()
        wall, own = wall1 - wall0, own1 - own0
        return images / wall, own * 1e3 / max(images, 1), ((machine1 - machine0) - own) / wall


def measure(loader: DataLoader, sampler, epochs: int) -> tuple[float, float, float]:
    """(images/s, own CPU ms/image, other processes' cores) over ``epochs``, not counting the first batch."""
    images, clock = 0, None
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            if clock is None:
                clock = CpuClock()
                continue
            images += batch["image"].shape[0]
    assert clock is not None
    return clock.since_start(images)


def geometry_path() -> str:
    """Which geometry ``TrainTransform`` runs: fused (fastgeom) or step by step."""
    fused = "apply_geometry" in TrainTransform.__call__.__code__.co_names
    return "fused flip+resize+crop (fastgeom)" if fused else "step by step (hflip, resize, random_crop)"


def prepared_copy(frames: Path, out: Path) -> Path:
    """``multiseg prepare`` of the benchmark frames at 1024x512; returns the prepared Cityscapes root."""
    data = out.parent / "data_root"
    data.mkdir(parents=True, exist_ok=True)
    link = data / "cityscapes"
    if not link.exists():
        link.symlink_to(frames.absolute(), target_is_directory=True)
    t0 = time.perf_counter()
    summary = prepare_data_root(data, out, (1024, 512), datasets=("cityscapes",), workers=2, force=True)
    print(f"{summary} ({time.perf_counter() - t0:.1f} s)")
    return out / "cityscapes"


def compare(
    ours: CityscapesDataset, workers_list: list[int], batch: int, epochs: int, what: str
) -> dict[int, tuple[float, float]]:
    """Print one table row per worker count, multiseg vs PIL on ``ours``'s frames; (ours, PIL) img/s."""
    print(
        f"{'workers':>8} {'multiseg img/s':>15} {'CPU ms/img':>11} {'other':>6} "
        f"{'PIL img/s':>10} {'CPU ms/img':>11} {'other':>6} {'speed-up':>9}   ({what})"
    )
    rates = {}
    for workers in workers_list:
        results = []
        for dataset in (ours, PilCityscapes(ours.records)):
            loader, sampler, _ = build_train_loader([ours], batch, num_workers=workers, policy="none")
            if isinstance(dataset, PilCityscapes):
                loader = DataLoader(
                    dataset,
                    batch_sampler=sampler,
                    num_workers=workers,
                    collate_fn=collate,
                    persistent_workers=workers > 0,
                )
            results.append(measure(loader, sampler, epochs))
            del loader
        (a, a_cpu, a_other), (b, b_cpu, b_other) = results
        print(
            f"{workers:>8} {a:>15.1f} {a_cpu:>11.1f} {a_other:>6.2f} "
            f"{b:>10.1f} {b_cpu:>11.1f} {b_other:>6.2f} {a / b:>8.2f}x"
        )
        rates[workers] = (a, b)
    return rates


def main() -> None:
    """Run both pipelines with 0, 1 and 2 workers and print the table and the protocol."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="distinct 2048x1024 frames (default 24)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs over the frames per measurement")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, help="reuse/keep frames here instead of a temporary folder")
    parser.add_argument("--profile", action="store_true", help="first print per-stage CPU ms per sample")
    parser.add_argument(
        "--prepared",
        action="store_true",
        help="also measure both pipelines on a `multiseg prepare` copy (frames shrunk once to 1024x512)",
    )
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
        print(f"  multiseg TrainTransform geometry: {geometry_path()}")
        print("  CPU ms/img: own processes (main + workers); other: cores used by other processes meanwhile")
        if args.profile:
            profile(ours, args.batch)
        original = compare(ours, args.workers, args.batch, args.epochs, "frames 2048x1024")
        if args.prepared:
            small = prepared_copy(root, Path(tmp) / "prepared")
            ours_small = CityscapesDataset(small, "train", transform=TrainTransform())
            print("\nthe same, on a `multiseg prepare` copy of the frames (shrunk once to fit 1024x512):")
            rates = compare(ours_small, args.workers, args.batch, args.epochs, "prepared 1024x512")
            for workers, (a, _) in rates.items():
                ratio = a / original[workers][1]
                print(
                    f"{workers:>8} workers: multiseg on prepared frames = {ratio:.2f}x PIL on the originals"
                )
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
