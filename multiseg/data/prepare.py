"""A training-size copy of a data root (``multiseg prepare``): decode small frames, not full ones.

The paper's first step is to resize every frame so it fits 1024x512. Done once, offline, it saves
the dominant cost of the training pipeline: a 2048x1024 Cityscapes PNG takes about 31 ms to decode
here, a 1024x512 one about a quarter of that. ``prepare_data_root`` writes a copy of
``DATA_ROOT`` in the very same official layouts, so every loader and config reads it unchanged
(``data_root: OUT``):

* Cityscapes: ``leftImg8bit`` images (area interpolation) and ``gtFine`` ``*_labelIds.png`` /
  ``*_labelTrainIds.png`` (nearest) of every split present; other gtFine files are left out.
* Vistas: ``<split>/images/*.jpg`` (area, re-encoded as JPEG, quality ``jpeg_quality``), every
  ``labels/*.png`` below a split (nearest; palette PNGs keep their palette) and the ``config*.json``
  files.
* GTSDB: a symbolic link to the original folder. Its PPMs decode at memory speed and ``gt.txt``
  boxes stay exact.

Frames already inside the box are copied as they are (never upscaled). The pipeline still fits each
frame to the run's size, so a prepared copy at that size makes the fit a no-op; it equals the
paper's two-step "fit, then random scale" rather than multiseg's fused single resize, which reads
the full-size frame. Evaluate official numbers (``multiseg eval --full-res``) on the original data.

Everything is written into a temporary sibling folder that replaces ``OUT`` only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
from PIL import Image
from tqdm import tqdm

from multiseg.data.base import require_dir
from multiseg.data.cityscapes import LAYOUT as CITYSCAPES_LAYOUT
from multiseg.data.io import FileError, is_palette_png, read_bytes, read_image, read_label
from multiseg.data.transforms import fit_scale
from multiseg.data.vistas import LAYOUT as VISTAS_LAYOUT
from multiseg.errors import MultisegError
from multiseg.files import replace_dir

MARKER = "multiseg_prepared.json"
Kind = Literal["image", "label", "copy"]


@dataclass(frozen=True)
class Job:
    """One file to write: ``src`` shrunk (image or label) or copied to ``dst``."""

    src: Path
    dst: Path
    kind: Kind


@dataclass(frozen=True)
class PrepareSummary:
    """What ``prepare_data_root`` wrote."""

    out: Path
    width: int
    height: int
    files: int
    resized: int
    bytes_before: int
    bytes_after: int

    def __str__(self) -> str:
        mb = 1024 * 1024
        return (
            f"prepared {self.files} files ({self.resized} resized to fit {self.width}x{self.height}) "
            f"in {self.out}: {self.bytes_before / mb:.1f} MB -> {self.bytes_after / mb:.1f} MB; "
            f"train with data_root: {self.out}"
        )


def cityscapes_jobs(src: Path, dst: Path) -> list[Job]:
    """Images and id labels of every Cityscapes split present under ``src``."""
    require_dir(src / "leftImg8bit", "cityscapes", CITYSCAPES_LAYOUT)
    jobs = []
    for image in sorted((src / "leftImg8bit").glob("*/*/*_leftImg8bit.png")):
        jobs.append(Job(image, dst / image.relative_to(src), "image"))
    for pattern in ("*/*/*_gtFine_labelIds.png", "*/*/*_gtFine_labelTrainIds.png"):
        for label in sorted((src / "gtFine").glob(pattern)):
            jobs.append(Job(label, dst / label.relative_to(src), "label"))
    if not any(j.kind == "image" for j in jobs):
        raise MultisegError(f"cityscapes: no *_leftImg8bit.png images under {src / 'leftImg8bit'}")
    return jobs


def vistas_jobs(src: Path, dst: Path) -> list[Job]:
    """Images, label PNGs (v1.x ``labels`` and v2.0 ``v*/labels``) and configs of a Vistas root."""
    require_dir(src, "vistas", VISTAS_LAYOUT)
    configs = sorted(src.glob("config*.json"))
    if not configs:
        raise MultisegError(f"vistas: no config.json or config_v*.json in {src} (expected {VISTAS_LAYOUT})")
    jobs = [Job(c, dst / c.name, "copy") for c in configs]
    for image in sorted(src.glob("*/images/*.jpg")):
        jobs.append(Job(image, dst / image.relative_to(src), "image"))
    for label in sorted([*src.glob("*/labels/*.png"), *src.glob("*/v*/labels/*.png")]):
        jobs.append(Job(label, dst / label.relative_to(src), "label"))
    return jobs


def shrunk_size(width: int, height: int, box: tuple[int, int]) -> tuple[int, int] | None:
    """The size a ``width`` x ``height`` frame is shrunk to so it fits ``box``; None if it already fits."""
    scale = fit_scale(width, height, box[0], box[1], upscale=False)
    if scale >= 1.0:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def _write(path: Path, ok: bool) -> None:
    if not ok:
        raise FileError(f"{path}: could not be written")


def _shrink_image(job: Job, box: tuple[int, int], jpeg_quality: int) -> bool:
    image = read_image(job.src)
    size = shrunk_size(image.shape[1], image.shape[0], box)
    if size is None:
        shutil.copyfile(job.src, job.dst)
        return False
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if job.dst.suffix.lower() == ".jpg" else []
    _write(job.dst, cv2.imwrite(str(job.dst), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), params))
    return True


def _shrink_label(job: Job, box: tuple[int, int]) -> bool:
    data = read_bytes(job.src)
    if is_palette_png(data):  # keep the palette: Vistas labels are read by their indices
        with Image.open(job.src) as im:
            size = shrunk_size(im.width, im.height, box)
            if size is None:
                shutil.copyfile(job.src, job.dst)
                return False
            im.resize(size, Image.Resampling.NEAREST).save(job.dst)
        return True
    label = read_label(job.src)
    size = shrunk_size(label.shape[1], label.shape[0], box)
    if size is None:
        shutil.copyfile(job.src, job.dst)
        return False
    _write(job.dst, cv2.imwrite(str(job.dst), cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)))
    return True


def run_job(job: Job, box: tuple[int, int], jpeg_quality: int = 95) -> bool:
    """Write one job's output (its folder is created); returns whether the frame was resized."""
    job.dst.parent.mkdir(parents=True, exist_ok=True)
    if job.kind == "copy":
        shutil.copyfile(job.src, job.dst)
        return False
    cv2.setNumThreads(1)  # one file per process; the pool gives the parallelism
    if job.kind == "image":
        return _shrink_image(job, box, jpeg_quality)
    return _shrink_label(job, box)


def _run_all(jobs: list[Job], box: tuple[int, int], jpeg_quality: int, workers: int) -> Iterator[bool]:
    if workers <= 0:
        for job in jobs:
            yield run_job(job, box, jpeg_quality)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(run_job, jobs, [box] * len(jobs), [jpeg_quality] * len(jobs), chunksize=4)


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MultisegError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force and not (out / MARKER).is_file():
        raise MultisegError(
            f"{out} is not empty and holds no prepared data root (no {MARKER}); "
            "choose another folder or pass --force to replace it"
        )


def _size_of(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def prepare_data_root(
    src: Path,
    out: Path,
    size: tuple[int, int] = (1024, 512),
    *,
    datasets: tuple[str, ...] = ("cityscapes", "gtsdb", "vistas"),
    jpeg_quality: int = 95,
    workers: int = 2,
    force: bool = False,
) -> PrepareSummary:
    """Write the training-size copy of data root ``src`` to ``out`` (see module docstring).

    ``size`` is the (width, height) box frames are shrunk to fit; ``datasets`` are the sub-folders
    (``cityscapes``, ``gtsdb``, ``vistas``) to take, each of which must exist.
    """
    src, out = Path(src).expanduser().absolute(), Path(out).expanduser().absolute()
    if size[0] <= 0 or size[1] <= 0:
        raise MultisegError(f"--size must be positive, got {size[0]}x{size[1]}")
    if not 1 <= jpeg_quality <= 100:
        raise MultisegError(f"--jpeg-quality must be in 1..100, got {jpeg_quality}")
    if src == out or src in out.parents:
        raise MultisegError(f"--out {out} must not be the data root {src} or lie inside it")
    unknown = sorted(set(datasets) - {"cityscapes", "gtsdb", "vistas"})
    if unknown:
        raise MultisegError(f"unknown dataset {unknown[0]!r}; expected cityscapes, gtsdb or vistas")
    _check_out(out, force)
    jobs: list[Job] = []
    if "cityscapes" in datasets:
        jobs += cityscapes_jobs(src / "cityscapes", Path("cityscapes"))
    if "vistas" in datasets:
        jobs += vistas_jobs(src / "vistas", Path("vistas"))
    if "gtsdb" in datasets:
        require_dir(src / "gtsdb", "gtsdb", "DATA_ROOT/gtsdb/FullIJCNN2013/{*.ppm,gt.txt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        placed = [Job(j.src, tmp / j.dst, j.kind) for j in jobs]
        resized = 0
        with tqdm(total=len(placed), desc="prepare", unit="file", file=sys.stderr, mininterval=0.5) as bar:
            for was_resized in _run_all(placed, size, jpeg_quality, workers):
                resized += was_resized
                bar.update(1)
        if "gtsdb" in datasets:
            os.symlink(src / "gtsdb", tmp / "gtsdb", target_is_directory=True)
        marker = {"source": str(src), "width": size[0], "height": size[1], "datasets": list(datasets)}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        after = _size_of([j.dst for j in placed])
        replace_dir(tmp, out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MultisegError(f"cannot write {out}: {err.strerror or err} ({err.filename or out})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    before = _size_of([j.src for j in jobs])
    return PrepareSummary(out, size[0], size[1], len(jobs), resized, before, after)
