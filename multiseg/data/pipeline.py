"""Building datasets, mixing them, collating batches, and normalising on the device.

Batch contract (what :func:`collate` returns, for the training engine):

* ``"image"``: uint8 N x 3 x H x W (all samples of a batch share the crop size); normalise on the
  device after transfer with :func:`normalize_on_device` (4x less to copy than float32).
* ``"label"``: uint8 N x H x W, 255 = ignore, each in its own dataset's class space.
* ``"dataset_index"``: int64 N, index into the ordered list of dataset names (``MultiDataset.names``).
* ``"dataset"``: list of names; ``"path"``: list of image paths.
* ``"boxes"`` (list of float32 Kx4, half-open, final pixel coordinates), ``"box_classes"``,
  ``"box_categories"``, ``"box_shapes"`` (lists of int64 K): what the online GTSDB merge needs;
  empty for dense datasets. The label of a GTSDB sample is the fallback-policy target.
* ``"skipped"``: paths of corrupt images skipped for this batch (``skip_bad=True``); each was replaced
  by the dataset's next readable sample. :class:`SkippedFiles` counts them over a run and words the
  report printed at the end.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from multiseg.data.base import SegDataset, Transform, first_few
from multiseg.data.sampler import BalancePolicy, MultiDatasetBatchSampler
from multiseg.errors import MultisegError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DATASET_KINDS: tuple[str, ...] = ("cityscapes", "gtsdb", "vistas", "lanes", "folder")


class MultiDataset(Dataset):
    """Several :class:`SegDataset` behind one index space of keys ``(dataset, index, aug_seed)``."""

    def __init__(self, datasets: Sequence[SegDataset]) -> None:
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise MultisegError(f"two datasets share a head name: {names}")
        self.datasets = list(datasets)
        self.names = names

    @property
    def sizes(self) -> list[int]:
        """Number of samples of each dataset, in order."""
        return [len(d) for d in self.datasets]

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, Any]:
        d, index, seed = key
        item = self.datasets[d][(index, seed)]
        item["dataset_index"] = d
        return item


def stack_shared(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``, written straight into shared memory when called in a DataLoader worker.

    A worker hands a batch to the main process through shared memory; a batch stacked into ordinary
    memory is copied there once more when it is sent (8 MB per 4 crops of 512x1024). torch's
    ``default_collate`` allocates the same way.
    """
    first = tensors[0]
    if get_worker_info() is None:
        return torch.stack(tensors)
    storage = first._typed_storage()._new_shared(sum(t.numel() for t in tensors), device=first.device)
    out = first.new(storage).resize_(len(tensors), *first.shape)
    return torch.stack(tensors, out=out)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items into the batch described in the module docstring."""
    shapes = {tuple(item["image"].shape) for item in batch}
    if len(shapes) > 1:
        raise MultisegError(
            f"collate: samples of one batch differ in size {sorted(shapes)}; use a fixed crop"
        )
    out: dict[str, Any] = {
        "image": stack_shared([item["image"] for item in batch]),
        "label": stack_shared([item["label"] for item in batch]),
        "dataset_index": torch.tensor([item.get("dataset_index", 0) for item in batch], dtype=torch.int64),
        "skipped": [p for item in batch for p in item.get("skipped", [])],
    }
    for key in ("dataset", "path", "boxes", "box_classes", "box_categories", "box_shapes"):
        out[key] = [item[key] for item in batch]
    return out


@dataclass
class SkippedFiles:
    """The corrupt files a ``skip_bad`` run skipped, counted from each batch's ``"skipped"`` list.

    A file is skipped each time a sampler draws it (and warned about once per worker process); the
    report counts both the distinct files and the skips.
    """

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, batch: Mapping[str, Any]) -> bool:
        """Count ``batch["skipped"]``; True when the batch holds a stand-in for a skipped sample.

        Evaluation should leave such a batch out of its metrics (batch size 1): the stand-in is the
        dataset's next readable sample, which is evaluated at its own index anyway.
        """
        skipped = batch.get("skipped", [])
        self.counts.update(skipped)
        return bool(skipped)

    @property
    def files(self) -> int:
        """Distinct files skipped."""
        return len(self.counts)

    def report(self) -> str:
        """One line for the end of a run, naming the first few files; empty when nothing was skipped."""
        if not self.counts:
            return ""
        times = sum(self.counts.values())
        return (
            f"warning: skipped {self.files} unreadable file(s) ({times} time(s), skip_bad): "
            f"{first_few(sorted(self.counts))}"
        )


def normalize_on_device(
    images: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 N x 3 x H x W (already on the device) -> ImageNet-normalised float ``dtype``."""
    m = torch.tensor(mean, device=images.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, device=images.device, dtype=dtype).view(1, -1, 1, 1) * 255.0
    return (images.to(dtype) - m) / s


def build_dataset(
    kind: str,
    root: str | Path,
    split: str,
    *,
    transform: Transform | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> SegDataset:
    """One dataset by kind: cityscapes, gtsdb, vistas, lanes (Vistas in the Lane Markings setting), folder.

    ``options`` go to the dataset's constructor (e.g. ``policy``/``ring`` for gtsdb, ``version`` for
    vistas and lanes, ``label_type`` for cityscapes).
    """
    from multiseg.data.cityscapes import CityscapesDataset
    from multiseg.data.folder import FolderDataset
    from multiseg.data.gtsdb import GtsdbDataset
    from multiseg.data.vistas import VistasDataset

    common = {"transform": transform, "skip_bad": skip_bad}
    if kind == "cityscapes":
        return CityscapesDataset(root, split, **common, **options)
    if kind == "gtsdb":
        return GtsdbDataset(root, split, **common, **options)
    if kind == "vistas":
        return VistasDataset(root, split, setting="full", **common, **options)
    if kind == "lanes":
        return VistasDataset(root, split, setting="lanes", **common, **options)
    if kind == "folder":
        return FolderDataset(root, split, **common, **options)
    raise MultisegError(f"unknown dataset kind {kind!r}; expected one of {DATASET_KINDS}")


def exit_on_sigterm(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: on SIGTERM a worker exits quietly (status 0) instead of dying of it.

    SLURM signals every process of a job step at once. A worker killed by a signal makes torch's SIGCHLD
    handler raise in the main process at whatever line it is on, possibly halfway through a step, before
    the run can write a consistent checkpoint; a worker that exits normally is only noticed when the
    main process next waits for a batch, which a stopping run no longer does. The signal must still end
    the worker: it is also how Python's multiprocessing ends daemon workers at interpreter exit.
    """
    signal.signal(signal.SIGTERM, _exit_quietly)


def _exit_quietly(signum: int, frame: object) -> None:
    os._exit(0)


def build_train_loader(
    datasets: Sequence[SegDataset],
    batch_size: int,
    *,
    num_workers: int = 2,
    policy: BalancePolicy = "replicate",
    weights: Sequence[float] | None = None,
    epoch_length: int | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
) -> tuple[DataLoader, MultiDatasetBatchSampler, MultiDataset]:
    """A DataLoader of mixed, balanced batches; returns the loader, its sampler and the MultiDataset.

    Workers need no set-up: torch gives each one intra-op thread, and OpenCV runs without its thread
    pool (:mod:`multiseg.data.io`). Calling ``torch.set_num_threads`` again in a forked worker can
    deadlock in OpenMP, as seen here.

    Call ``sampler.set_epoch(e)`` before each epoch; ``sampler.state_dict(batches_done)`` /
    ``load_state_dict`` to resume mid-epoch.
    """
    multi = MultiDataset(datasets)
    sampler = MultiDatasetBatchSampler(
        multi.sizes,
        batch_size,
        policy=policy,
        weights=weights,
        epoch_length=epoch_length,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    loader = DataLoader(
        multi,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=exit_on_sigterm,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
    )
    return loader, sampler, multi


def build_eval_loader(dataset: SegDataset, *, num_workers: int = 1) -> DataLoader:
    """Batch-size-1 loader in file order (evaluation images keep their own sizes)."""
    return DataLoader(
        dataset,
        batch_size=1,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=exit_on_sigterm,
    )
