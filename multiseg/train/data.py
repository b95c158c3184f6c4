"""From a :class:`TrainConfig` to the datasets of a run: roots, splits, transforms, targets.

Each dataset name in ``cfg.datasets`` is also its head's name. Roots default to
``data_root/<layout folder>`` (``cityscapes/``, ``gtsdb/``, ``vistas/``), or the demo world when no
data root is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multiseg.data.base import SegDataset
from multiseg.data.pipeline import build_dataset
from multiseg.data.transforms import EvalTransform, TrainTransform, TransformConfig
from multiseg.demo.cache import demo_world_root
from multiseg.errors import MultisegError
from multiseg.train.config import TrainConfig

#: Split names of each dataset: (train, validation).
SPLITS = {"cityscapes": ("train", "val"), "gtsdb": ("train", "test"), "vistas": ("training", "validation")}
SPLITS["lanes"] = SPLITS["vistas"]
_FOLDER = {"cityscapes": "cityscapes", "gtsdb": "gtsdb", "vistas": "vistas", "lanes": "vistas"}


def dataset_root(cfg: TrainConfig, name: str) -> Path:
    """The folder a dataset is read from."""
    explicit = {"cityscapes": cfg.cityscapes_root, "gtsdb": cfg.gtsdb_root}.get(name)
    if name in ("vistas", "lanes"):
        explicit = cfg.vistas_root
    if explicit is not None:
        return Path(explicit)
    base = Path(cfg.data_root) if cfg.data_root is not None else demo_world_root(size=cfg.demo_size)
    return base / _FOLDER[name]


def gtsdb_offline_policy(cfg: TrainConfig) -> str:
    """The box-target policy the GTSDB dataset itself renders (``merge`` is done online, on top of it)."""
    return cfg.gtsdb_fallback if cfg.gtsdb_target == "merge" else cfg.gtsdb_target


def _options(cfg: TrainConfig, name: str) -> dict[str, object]:
    if name == "gtsdb":
        opts: dict[str, object] = {"policy": gtsdb_offline_policy(cfg), "ring": cfg.gtsdb_ignore_ring}
        if cfg.train_split_fraction is not None:
            opts.update(split_rule="fraction", train_fraction=cfg.train_split_fraction)
        return opts
    if name in ("vistas", "lanes"):
        opts = {"version": cfg.vistas_version}
        if name == "lanes":
            opts["lanes_other"] = "class" if cfg.lanes_other == "train" else "ignore"
        return opts
    return {}


def fit_size(cfg: TrainConfig, name: str) -> tuple[int, int]:
    """The (width, height) box dataset ``name`` is resized to fit: ``dataset_resize`` or the run's."""
    width, height = cfg.dataset_resize.get(name, (cfg.resize_width, cfg.resize_height))
    return int(width), int(height)


def train_transform(cfg: TrainConfig, name: str) -> TrainTransform:
    """The paper's augmentation at the configured sizes, for dataset ``name``."""
    width, height = fit_size(cfg, name)
    return TrainTransform(
        TransformConfig(
            fit_width=width,
            fit_height=height,
            scale_range=(cfg.scale_min, cfg.scale_max),
            crop_height=cfg.crop_height,
            crop_width=cfg.crop_width,
            flip_prob=0.5 if cfg.flip else 0.0,
            box_crop_prob=cfg.box_crop_prob,
        )
    )


def build_train_datasets(cfg: TrainConfig) -> list[SegDataset]:
    """The training split of every dataset of the run, in ``cfg.datasets`` order."""
    return [
        build_dataset(
            name,
            dataset_root(cfg, name),
            SPLITS[name][0],
            transform=train_transform(cfg, name),
            skip_bad=cfg.skip_bad,
            **_options(cfg, name),
        )
        for name in cfg.datasets
    ]


@dataclass
class ValSet:
    """One validation dataset, and for GTSDB the per-pixel ground truth of the same frames if any."""

    name: str
    dataset: SegDataset
    pixel_gt: SegDataset | None = None


def build_val_sets(cfg: TrainConfig, which: int = 1) -> list[ValSet]:
    """Validation splits at training resolution (the paper's resize rule, no crop or flip).

    ``which=0`` builds the training splits the same way (``multiseg eval --split train``).
    """
    out = []
    for name in cfg.datasets:
        transform = EvalTransform(*fit_size(cfg, name))
        root = dataset_root(cfg, name)
        split = SPLITS[name][which]
        ds = build_dataset(
            name, root, split, transform=transform, skip_bad=cfg.skip_bad, **_options(cfg, name)
        )
        pixel = None
        if name == "gtsdb":
            masks = true_masks_dir(root)
            if masks is not None:
                pixel = build_dataset(
                    name,
                    root,
                    split,
                    transform=transform,
                    skip_bad=cfg.skip_bad,
                    label_source="pixel_masks",
                    pixel_masks_dir=masks,
                    **_options(cfg, name),
                )
        out.append(ValSet(name, ds, pixel))
    return out


def true_masks_dir(gtsdb_root: Path) -> Path | None:
    """The demo world's true per-pixel sign masks beside ``FullIJCNN2013/``, if present."""
    base = gtsdb_root if (gtsdb_root / "FullIJCNN2013").is_dir() else gtsdb_root.parent
    candidate = base / "true_masks" / "gtFine"
    return candidate if candidate.is_dir() else None


def check_data_present(cfg: TrainConfig) -> None:
    """Fail before training starts when a configured dataset's folder is missing."""
    for name in cfg.datasets:
        root = dataset_root(cfg, name)
        if not root.exists():
            raise MultisegError(
                f"dataset {name!r}: folder {root} does not exist (set data_root or {name}_root)"
            )


def check_crop_fits(cfg: TrainConfig) -> None:
    """Fail when a dataset's frames, fit-resized and scaled up by ``scale_max``, are still smaller than the
    crop in both directions: every crop would be mostly padding (ignored pixels), whatever the frame."""
    for name in cfg.datasets:
        width, height = fit_size(cfg, name)
        big_w, big_h = width * cfg.scale_max, height * cfg.scale_max
        if cfg.crop_width > big_w and cfg.crop_height > big_h:
            key = f"dataset_resize {name}" if name in cfg.dataset_resize else "resize_width/resize_height"
            raise MultisegError(
                f"crop {cfg.crop_width}x{cfg.crop_height} is larger than every {name} frame can get "
                f"({width}x{height} x scale_max {cfg.scale_max:g} = {big_w:g}x{big_h:g}): lower "
                f"crop_width/crop_height, or raise {key} or scale_max"
            )
