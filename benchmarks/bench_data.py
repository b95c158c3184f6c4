"""Data-pipeline speed at full size: multiseg's loader vs a plain PIL pipeline and vs decoding alone.

Protocol (printed with the results; run it on an idle machine for figures to quote):

* Frames: ``--frames`` Cityscapes samples at the real size, 2048x1024, in a temporary Cityscapes
  layout. By default each image is a byte-for-byte copy of the real ``leftImg8bit`` PNG in
  ``../shared/fixtures`` (frankfurt_000000_001016, 2.1 MB) and each ``gtFine_labelIds`` PNG is that
  frame's real annotation (its colour GT -> label ids, written by Pillow as cityscapesscripts
  writes them); ``--synthetic`` writes photo-like synthetic
  frames instead (also what runs where the fixtures are absent); ``--data ROOT`` reads an existing
  Cityscapes root (the real dataset, or ``multiseg demo-data --size full``'s) instead.
* Steps per sample, every pipeline: decode image + label, label ids -> train ids, resize to fit
  1024x512 (aspect kept), random scale in [0.5, 2], random crop 512x1024 with ignore padding,
  random horizontal flip, HWC->CHW uint8 tensors; batches of ``--batch`` collated to uint8.
  *multiseg* runs its real ``CityscapesDataset`` + ``TrainTransform`` + ``collate`` (decode through
  imagecodecs where it gives OpenCV's pixels, ``multiseg.data.decoders``; the fit and the random
  scale are one resize fused with the crop and the flip, ``multiseg.data.fastgeom``);
  *multiseg, OpenCV decode* is the same with the imagecodecs path switched off (the decoder before
  issue 19); *PIL* does the fit and the scale as two ``Image.resize`` calls (BILINEAR image, NEAREST
  label), as a torchvision-style pipeline written step by step would; *decode only* reads and
  decodes image + label with multiseg's readers and returns nothing else: the limit of the others.
* All run through ``torch.utils.data.DataLoader`` with the same batch sampler, 0, 1 and 2 workers,
  persistent workers; the first batch (worker start-up) is not timed; images/s over the rest. The
  main process runs torch with 1 thread (``--torch-threads``), as each worker does: with more, its
  few torch calls (``from_numpy``, the collate's ``stack``) spin idle OpenMP threads, which on a
  busy machine cost more CPU than the work.
* Beside images/s: the CPU time the benchmark's own processes (main + workers) spent per image in
  the timed part (the per-sample cost; hardly moved by other load), images/s per core (1000 / that),
  and how many cores *other* processes used meanwhile (``/proc/stat``), so a run on a shared machine
  shows how contended it was.
* Then the same on a ``multiseg prepare`` copy (frames shrunk once to 1024x512), unless
  ``--no-prepared``.
* Goals (issue 19): multiseg >= 2x the PIL pipeline on the same original PNGs; multiseg's per-sample
  CPU cost <= 1.15x decode-only's. And how many cores it takes to feed one GPU training ERFNet at
  1024x512, batch 6, at ``--gpu-img-s`` images/s (default and source: ``GPU_SOURCE`` below).
* ``--profile``: first, per-stage CPU milliseconds per sample of multiseg and PIL in this process.

    PYTHONPATH=. python benchmarks/bench_data.py                 # about 3 min on 2 idle cores
    PYTHONPATH=. python benchmarks/bench_data.py --quick         # seconds: tiny frames (a smoke test)
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import shutil
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

from multiseg.data import decoders
from multiseg.data.base import Record, hwc_to_chw
from multiseg.data.cityscapes import ID_LUT, CityscapesDataset, color_to_train_id
from multiseg.data.io import (
    check_same_size,
    decode_image,
    decode_label,
    map_labels,
    read_bytes,
    read_color_label,
)
from multiseg.data.pipeline import build_train_loader, collate
from multiseg.data.prepare import prepare_data_root
from multiseg.data.sample import Mirror
from multiseg.data.transforms import TrainTransform, clip_boxes
from multiseg.demo.synthetic import blocky_label, street_like_image, write_gray, write_rgb
from multiseg.labels import CITYSCAPES_LABELS, cityscapes_id_to_train_id_lut

CROP_H, CROP_W = 512, 1024
Timer = Callable[[str], AbstractContextManager[None]]
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
REAL_FRAME = "cityscapes/iv2018_sample_results_1/image_1.png"
REAL_COLOR_GT = "cityscapes/iv2018_sample_results_1/ground_truth_1.png"
#: One GPU training ERFNet at 1024x512, batch 6: its forward runs at 41.7 FPS at 1024x512 on the
#: paper-era Titan X (specs/models.md, ERFNet row), and a training step (forward, backward, update)
#: costs about 3 forwards, so ~14 images/s. A current GPU with bf16 is many times faster: pass its
#: measured rate (benchmarks/gpu_check.py's training section prints it) with --gpu-img-s.
GPU_IMG_S = 41.7 / 3
GPU_SOURCE = "ERFNet 41.7 FPS @1024x512 on a Titan X (specs/models.md) / 3 for a training step"


def untimed(stage: str) -> AbstractContextManager[None]:
    """The no-op stage timer of normal runs."""
    return contextlib.nullcontext()


def frame_stem(k: int) -> str:
    return f"benchcity_{k:06d}_000019"


def write_synthetic_frames(root: Path, n: int, height: int = 1024, width: int = 2048) -> None:
    """``n`` photo-like image + blocky labelIds pairs in the Cityscapes layout."""
    rng = np.random.default_rng(0)
    for k in range(n):
        stem = frame_stem(k)
        image = street_like_image(height, width, rng)
        write_rgb(root / f"leftImg8bit/train/benchcity/{stem}_leftImg8bit.png", image)
        label = blocky_label(height, width, np.arange(34), rng)
        write_gray(root / f"gtFine/train/benchcity/{stem}_gtFine_labelIds.png", label)


def real_label_ids(color_gt: Path) -> np.ndarray:
    """The real frame's annotation as label ids: its colour GT -> train ids -> the first id of each."""
    first_id = np.zeros(256, np.uint8)  # train id 255 (void) -> id 0 (unlabeled)
    for lab in reversed(CITYSCAPES_LABELS):
        if lab.id >= 0 and 0 <= lab.train_id < 255:
            first_id[lab.train_id] = lab.id
    return first_id[color_to_train_id(read_color_label(color_gt))]


def write_real_frames(root: Path, n: int) -> None:
    """``n`` copies of the real 2048x1024 Cityscapes PNG, each with its real annotation as labelIds.

    The labels are written by Pillow with its default settings, as cityscapesscripts writes the real
    ``*_labelIds.png``: how a PNG was compressed sets its decode time (this one: about 7 ms to decode,
    the same map written by OpenCV's defaults about 11 ms).
    """
    label = Image.fromarray(real_label_ids(FIXTURES / REAL_COLOR_GT))
    for k in range(n):
        stem = frame_stem(k)
        image = root / f"leftImg8bit/train/benchcity/{stem}_leftImg8bit.png"
        label_path = root / f"gtFine/train/benchcity/{stem}_gtFine_labelIds.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / REAL_FRAME, image)
        label.save(label_path)


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
            "image": torch.from_numpy(hwc_to_chw(sample.image)),
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


class DecodeOnly(Dataset):
    """Reads and decodes each sample's image and label with multiseg's readers; returns only a count."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int, int]) -> int:
        rec = self.records[key[1]]
        assert rec.label is not None
        decode_image(read_bytes(rec.image), rec.image)
        decode_label(read_bytes(rec.label), rec.label)
        return 1


def count_collate(batch: list[int]) -> dict:
    """A batch of decode-only items: just its size, in the shape ``measure`` counts."""
    return {"image": torch.empty(len(batch), 0)}


@contextlib.contextmanager
def imagecodecs_off() -> Iterator[None]:
    """multiseg's decoders without the imagecodecs path (workers fork inside, so they inherit it)."""
    before = decoders.HAVE_IMAGECODECS
    decoders.HAVE_IMAGECODECS = False
    try:
        yield
    finally:
        decoders.HAVE_IMAGECODECS = before


PIPELINES = ("decode only", "multiseg", "multiseg, OpenCV decode", "PIL")
Row = tuple[float, float, float]  # images/s, own CPU ms per image, other processes' cores


def run_pipeline(name: str, ours: CityscapesDataset, workers: int, batch: int, epochs: int) -> Row:
    """Time one pipeline over ``ours``'s frames with ``workers`` DataLoader workers."""
    loader, sampler, _ = build_train_loader([ours], batch, num_workers=workers, policy="none")
    if name in ("decode only", "PIL"):
        dataset = DecodeOnly(ours.records) if name == "decode only" else PilCityscapes(ours.records)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=count_collate if name == "decode only" else collate,
            persistent_workers=workers > 0,
        )
    switch = imagecodecs_off() if name == "multiseg, OpenCV decode" else contextlib.nullcontext()
    with switch:
        return measure(loader, sampler, epochs)


def compare(
    ours: CityscapesDataset, workers_list: list[int], batch: int, epochs: int, what: str
) -> dict[tuple[str, int], Row]:
    """Print one block per worker count, one row per pipeline; returns every row."""
    print(f"\n{what}:")
    print(f"{'workers':>7}  {'pipeline':24s} {'img/s':>7} {'CPU ms/img':>11} {'img/s/core':>11} {'other':>6}")
    rows = {}
    for workers in workers_list:
        for name in PIPELINES:
            if name == "multiseg, OpenCV decode" and not decoders.HAVE_IMAGECODECS:
                continue
            rate, cpu_ms, other = run_pipeline(name, ours, workers, batch, epochs)
            rows[name, workers] = (rate, cpu_ms, other)
            print(
                f"{workers:>7}  {name:24s} {rate:>7.1f} {cpu_ms:>11.1f} {1000 / cpu_ms:>11.2f} {other:>6.2f}"
            )
    return rows


def summary(
    rows: dict[tuple[str, int], Row], prepared: dict[tuple[str, int], Row] | None, gpu: float
) -> None:
    """The goals, per worker count, and the cores it takes to feed one GPU."""
    print("\ngoals (on the original frames; CPU ms/img is the per-sample cost):")
    workers_list = sorted({w for _, w in rows})
    for w in workers_list:
        ours, pil, dec = rows["multiseg", w], rows["PIL", w], rows["decode only", w]
        speed, cpu_speed, cost = ours[0] / pil[0], pil[1] / ours[1], ours[1] / dec[1]
        print(
            f"  {w} workers: multiseg / PIL = {speed:.2f}x img/s, {cpu_speed:.2f}x CPU per image "
            f"(goal >= 2x: {'met' if min(speed, cpu_speed) >= 2 else 'NOT met'}); "
            f"multiseg / decode-only CPU per image = {cost:.2f}x (goal <= 1.15x: "
            f"{'met' if cost <= 1.15 else 'NOT met'})"
        )
    per_core = statistics.median(1000 / rows["multiseg", w][1] for w in workers_list)
    print(f"\nfeeding one GPU (ERFNet, 1024x512, batch 6) at {gpu:.1f} images/s ({GPU_SOURCE}):")
    print(f"  multiseg on original PNGs: {per_core:.2f} images/s per core -> {gpu / per_core:.1f} cores")
    if prepared:
        small = statistics.median(1000 / prepared["multiseg", w][1] for w in workers_list)
        print(f"  multiseg on a prepared copy: {small:.2f} images/s per core -> {gpu / small:.1f} cores")
    for factor in (10, 30):
        print(
            f"  a GPU {factor}x that fast ({gpu * factor:.0f} images/s): {gpu * factor / per_core:.0f} cores "
            f"on original PNGs" + (f", {gpu * factor / small:.0f} on a prepared copy" if prepared else "")
        )


def main() -> None:
    """Write or find the frames, run every pipeline with 0, 1 and 2 workers, print tables and goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="distinct 2048x1024 frames (default 12)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs over the frames per measurement")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, help="an existing Cityscapes root to read (its train split)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic frames, not the real one")
    parser.add_argument("--no-prepared", action="store_true", help="skip the `multiseg prepare` copy")
    parser.add_argument("--profile", action="store_true", help="first print per-stage CPU ms per sample")
    parser.add_argument("--gpu-img-s", type=float, default=GPU_IMG_S, help="GPU training images/s to feed")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 4 tiny synthetic frames")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch threads of this process (default 1, as a worker)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.frames, args.epochs, args.batch, args.synthetic = 4, 2, 2, True
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp) / "frames"
        source = f"the Cityscapes root {root}"
        if args.data is None:
            t0 = time.perf_counter()
            if args.quick:
                write_synthetic_frames(root, args.frames, 256, 512)
                source = "synthetic 512x256 frames (--quick)"
            elif args.synthetic or not (FIXTURES / REAL_FRAME).is_file():
                write_synthetic_frames(root, args.frames)
                source = "synthetic photo-like 2048x1024 frames"
            else:
                write_real_frames(root, args.frames)
                source = f"copies of the real 2048x1024 frame {REAL_FRAME} with its real annotation"
            print(f"wrote {args.frames} frames in {time.perf_counter() - t0:.1f} s")
        ours = CityscapesDataset(root, "train", transform=TrainTransform())
        if args.data is not None:
            ours.records = ours.records[: args.frames]
        sizes = [p.stat().st_size for p in (r.image for r in ours.records)]
        h, w = decode_image(read_bytes(ours.records[0].image)).shape[:2]
        print("protocol:")
        print(
            f"  machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}; load average before: {os.getloadavg()}"
        )
        print(
            f"  cv2 {cv2.__version__}, Pillow {Image.__version__}, imagecodecs "
            f"{getattr(decoders.imagecodecs, '__version__', 'absent')}"
        )
        print(f"  {len(ours)} frames {w}x{h} ({source}), image PNG mean {np.mean(sizes) / 1e6:.2f} MB")
        print(
            f"  steps: decode, id->trainId, fit 1024x512, random scale [0.5, 2], crop {CROP_H}x{CROP_W} with "
            f"ignore padding, flip, uint8 CHW tensors, batch {args.batch}; {args.epochs} epochs, first "
            "batch untimed"
        )
        print(f"  multiseg TrainTransform geometry: {geometry_path()}")
        print("  CPU ms/img: own processes (main + workers); other: cores used by other processes meanwhile")
        if args.profile:
            profile(ours, args.batch)
        original = compare(ours, args.workers, args.batch, args.epochs, f"original frames {w}x{h}")
        prepared = None
        if not args.no_prepared:
            small_root = prepared_copy(root, Path(tmp) / "prepared")
            small = CityscapesDataset(small_root, "train", transform=TrainTransform())
            small.records = small.records[: len(ours)]
            prepared = compare(
                small, args.workers, args.batch, args.epochs, "a `multiseg prepare` copy (1024x512)"
            )
            for workers in args.workers:
                ratio = prepared["multiseg", workers][0] / original["PIL", workers][0]
                print(
                    f"  {workers} workers: multiseg on the prepared copy = {ratio:.2f}x PIL on the originals"
                )
        summary(original, prepared, args.gpu_img_s)
        print(f"load average after: {os.getloadavg()}; whole run {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
