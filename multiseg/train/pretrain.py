"""``multiseg pretrain``: train a segmentation encoder as an image classifier, and save its weights.

The network is the model's shared encoder (exactly the module ``create_model(...).encoder`` builds),
global average pooling of its stride-8 ``features`` and one linear layer, trained with cross-entropy on
an ImageNet-style folder (one subfolder per class, read with OpenCV). The result, ``encoder.pt``, holds
``{"encoder": state_dict, ...}``, which ``train`` loads with ``encoder_weights: OUT/encoder.pt``.

Data layout: ``DATA/train/<class>/*.jpg`` and ``DATA/val/<class>/*.jpg``; or ``DATA/<class>/*.jpg``, of
which every ``1/val_fraction``-th file (sorted by name) per class is held out for validation.

Like the training engine: the resolved config is saved in the run folder, ``last.pt`` is written
atomically at every epoch end, a rerun into the same folder resumes from it (at the epoch boundary),
``metrics.csv`` gets one row per epoch, and the run works unchanged under ``torchrun`` (DDP).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler
from tqdm import tqdm

from multiseg.config import config_differences, config_from_dict, config_to_dict, load_config, save_config
from multiseg.data.io import IMAGE_EXTENSIONS, read_image
from multiseg.data.pipeline import normalize_on_device
from multiseg.errors import MultisegError
from multiseg.files import file_lock
from multiseg.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from multiseg.train.distributed import DistInfo, init_distributed
from multiseg.train.metrics_log import MetricsLog
from multiseg.train.schedule import poly_factor

ENCODER_FILE = "encoder.pt"


@dataclass
class PretrainConfig:
    """Every choice of a pretraining run; saved as ``config.yaml`` in the run folder."""

    data: Path | None = None  # ImageNet-style folder; None only where a caller provides one (the grid)
    model: str = "erfnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224  # square training crop; a multiple of the model's output stride
    scale_min: float = 0.25  # random-resized-crop area range, as in ImageNet training
    flip: bool = True  # random horizontal flips; off for classes that are mirror images (signs, arrows)
    val_fraction: float = 0.1  # used when DATA has no train/ and val/ folders
    epochs: int = 90
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    workers: int = 4
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    out_dir: Path = Path("runs/pretrain")

    def __post_init__(self) -> None:
        for name in ("image_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 < self.scale_min <= 1:
            raise ValueError("scale_min must be in (0, 1]")
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be in (0, 1)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu or cuda")


# -- data ------------------------------------------------------------------------------------------


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_image_folder(root: Path, val_fraction: float) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Class names and the (file, class index) lists of the ``train`` and ``val`` splits."""
    root = Path(root)
    if not root.is_dir():
        raise MultisegError(f"pretrain data: folder {root} does not exist")
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = [p.name for p in _class_folders(root / "train")]
        splits = {
            s: [(f, i) for i, c in enumerate(classes) for f in _images(root / s / c)]
            for s in ("train", "val")
        }
        extra = sorted({p.name for p in _class_folders(root / "val")} - set(classes))
        if extra:
            raise MultisegError(f"pretrain data: {root / 'val' / extra[0]} is a class that train/ lacks")
    else:
        classes = [p.name for p in _class_folders(root)]
        every = max(2, round(1 / val_fraction))
        splits = {"train": [], "val": []}
        for i, c in enumerate(classes):
            for j, f in enumerate(_images(root / c)):
                splits["val" if j % every == every - 1 else "train"].append((f, i))
    if len(classes) < 2:
        raise MultisegError(f"pretrain data: {root} needs at least two class subfolders (<class>/<image>)")
    empty = [c for i, c in enumerate(classes) if not any(k == i for _, k in splits["train"])]
    if empty:
        raise MultisegError(f"pretrain data: class folder {empty[0]!r} in {root} holds no training image")
    return classes, splits


class ImageFolderSet(Dataset):
    """Images of one split as uint8 CHW tensors; training crops are random, seeded by (seed, epoch, index)."""

    def __init__(
        self,
        items: list[tuple[Path, int]],
        size: int,
        train: bool,
        seed: int,
        scale_min: float,
        flip: bool = True,
    ) -> None:
        self.items, self.size, self.train, self.seed, self.scale_min = items, size, train, seed, scale_min
        self.flip = flip
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def _random_crop(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        for _ in range(10):
            area = h * w * rng.uniform(self.scale_min, 1.0)
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                img = img[y : y + ch, x : x + cw]
                break
        img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return img[:, ::-1] if self.flip and rng.random() < 0.5 else img

    def _center_crop(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        scale = self.size * 8 / 7 / min(h, w)  # resize the short side to size / 0.875, as on ImageNet
        img = cv2.resize(img, (max(self.size, round(w * scale)), max(self.size, round(h * scale))))
        h, w = img.shape[:2]
        y, x = (h - self.size) // 2, (w - self.size) // 2
        return img[y : y + self.size, x : x + self.size]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        img = read_image(path)
        if self.train:
            img = self._random_crop(img, np.random.default_rng([self.seed, self.epoch, index]))
        else:
            img = self._center_crop(img)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), label


# -- model -----------------------------------------------------------------------------------------


class EncoderClassifier(nn.Module):
    """A model's shared encoder, global average pooling of its ``features`` and a linear classifier."""

    def __init__(self, model: str, num_classes: int, image_size: int, **model_kwargs: Any) -> None:
        super().__init__()
        from multiseg.models.registry import get_architecture

        arch = get_architecture(model, **model_kwargs)
        if image_size % arch.output_stride:
            raise MultisegError(
                f"image_size {image_size} is not a multiple of {model}'s output stride {arch.output_stride}"
            )
        self.encoder = arch.build_encoder()
        with torch.no_grad():
            self.encoder.eval()
            channels = self.encoder(torch.zeros(1, 3, image_size, image_size))["features"].shape[1]
            self.encoder.train()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x)["features"].mean(dim=(2, 3)))


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class PretrainSummary:
    """What a finished pretraining run reports."""

    run_dir: Path
    encoder_path: Path
    epochs: int
    final: dict[str, float]

    def table(self) -> str:
        lines = [f"run folder: {self.run_dir}", f"encoder weights: {self.encoder_path}"]
        lines += [f"{k:<14} {v:.4f}" for k, v in sorted(self.final.items())]
        return "\n".join(lines)


class Pretrainer:
    """Builds a pretraining run from its config and runs (or resumes) it."""

    def __init__(self, cfg: PretrainConfig, run_dir: Path) -> None:
        if cfg.data is None:
            raise MultisegError(
                "pretrain: no data folder given: --data DIR (one subfolder per class), "
                "or --demo DIR to write a demo-world classification set there first and use it"
            )
        self.cfg, self.run_dir = cfg, Path(run_dir)
        use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise MultisegError("pretrain: device 'cuda' was asked for, but torch sees no CUDA device")
        self.info: DistInfo = init_distributed(use_cuda)
        self.device = torch.device("cuda", self.info.local_rank) if use_cuda else torch.device("cpu")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.batch_size % self.info.world_size:
            raise MultisegError(
                f"batch_size {cfg.batch_size} is not divisible by {self.info.world_size} processes"
            )
        torch.manual_seed(cfg.seed)
        self.classes, splits = scan_image_folder(Path(cfg.data), cfg.val_fraction)
        self.train_set = ImageFolderSet(
            splits["train"], cfg.image_size, True, cfg.seed, cfg.scale_min, cfg.flip
        )
        self.val_set = ImageFolderSet(splits["val"], cfg.image_size, False, cfg.seed, cfg.scale_min)
        self.net = EncoderClassifier(cfg.model, len(self.classes), cfg.image_size, **cfg.model_kwargs)
        self.net.to(self.device)
        self.ddp: nn.Module = self.net
        if self.info.distributed:
            ids = [self.info.local_rank] if use_cuda else None
            self.ddp = DistributedDataParallel(self.net, device_ids=ids)
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
        self.epoch = 0
        self.log = MetricsLog(self.run_dir, tensorboard=False) if self.info.is_main else None

    def _loader(self, dataset: ImageFolderSet, train: bool) -> DataLoader:
        if self.info.distributed:
            sampler: Any = DistributedSampler(
                dataset, self.info.world_size, self.info.rank, shuffle=train, seed=self.cfg.seed
            )
            sampler.set_epoch(self.epoch)
        elif train:
            sampler = RandomSampler(
                dataset, generator=torch.Generator().manual_seed(self.cfg.seed + self.epoch)
            )
        else:
            sampler = SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size // self.info.world_size,
            sampler=sampler,
            num_workers=self.cfg.workers,
            drop_last=train and len(dataset) >= self.cfg.batch_size,
            pin_memory=self.device.type == "cuda",
        )

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "rng": rng_state(),
            "classes": list(self.classes),
            "config": config_to_dict(self.cfg),
        }

    def load(self, path: Path) -> None:
        """Continue from a ``last.pt`` written at an epoch end."""
        ckpt = load_checkpoint(path, map_location=self.device)
        if ckpt["classes"] != self.classes:
            raise MultisegError(f"{path}: the data folder's classes changed since this run started")
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch = int(ckpt["epoch"])
        set_rng_state(ckpt["rng"])
        if self.log is not None:
            self.log.truncate(self.epoch)

    def _sums(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.info.distributed:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def _train_epoch(self) -> dict[str, float]:
        factor = poly_factor(self.epoch, self.cfg.epochs, self.cfg.poly_power, "standard")
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * factor
        self.train_set.epoch = self.epoch
        self.ddp.train()
        loss_sum = correct = seen = 0.0
        loader = self._loader(self.train_set, train=True)
        desc = f"pretrain {self.cfg.model} epoch {self.epoch + 1}/{self.cfg.epochs}"
        for images, labels in tqdm(loader, desc=desc, disable=not self.info.is_main, dynamic_ncols=True):
            images, labels = normalize_on_device(images.to(self.device)), labels.to(self.device)
            logits = self.ddp(images)
            loss = nn.functional.cross_entropy(logits, labels)
            if not torch.isfinite(loss):
                raise MultisegError(f"pretrain: loss became {float(loss)} in epoch {self.epoch + 1}; stopped")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += float(loss.detach()) * len(labels)
            correct += float((logits.argmax(1) == labels).sum())
            seen += len(labels)
        loss_sum, correct, seen = self._sums([loss_sum, correct, seen])
        return {"lr": self.cfg.lr * factor, "loss/train": loss_sum / seen, "acc/train": correct / seen}

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        if len(self.val_set) == 0:
            return {}
        self.net.eval()
        loss_sum = correct = seen = 0.0
        for images, labels in self._loader(self.val_set, train=False):
            images, labels = normalize_on_device(images.to(self.device)), labels.to(self.device)
            logits = self.net(images)
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += float((logits.argmax(1) == labels).sum())
            seen += len(labels)
        loss_sum, correct, seen = self._sums([loss_sum, correct, seen])
        return {"loss/val": loss_sum / max(seen, 1), "acc/val": correct / max(seen, 1)}

    def fit(self) -> PretrainSummary:
        """Train the remaining epochs, then write the encoder weights file."""
        if self.info.is_main:
            save_config(self.cfg, self.run_dir / "config.yaml")
        final: dict[str, float] = {}
        while self.epoch < self.cfg.epochs:
            final = {**self._train_epoch(), **self._validate()}
            self.epoch += 1
            if self.log is not None:
                self.log.log(self.epoch, final)
            if self.info.is_main:
                save_checkpoint(self._checkpoint(), self.run_dir / "last.pt")
        encoder_path = self.run_dir / ENCODER_FILE
        if self.info.is_main:
            blob = {
                "encoder": self.net.encoder.state_dict(),
                "model": self.cfg.model,
                "classes": list(self.classes),
                "epochs": self.epoch,
            }
            save_checkpoint(blob, encoder_path)
            if self.log is not None:
                self.log.close()
        return PretrainSummary(self.run_dir, encoder_path, self.epoch, final)


def pretrain(cfg: PretrainConfig, run_dir: Path, force: bool = False) -> PretrainSummary:
    """Run pretraining into ``run_dir``, resuming from its ``last.pt`` when there is one.

    A folder holding a run of another config is an error (listing the differences) unless ``force``.
    """
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if saved.is_file() and not force:
        diff = config_differences(load_config(PretrainConfig, saved), cfg)
        if diff:
            raise MultisegError(
                f"pretrain: {run_dir} holds a run with another config ({'; '.join(diff[:3])}); "
                "use another --out or --force"
            )
    trainer = Pretrainer(cfg, run_dir)
    if (run_dir / "last.pt").is_file():
        trainer.load(run_dir / "last.pt")
        if trainer.info.is_main:
            print(f"pretrain: resuming {run_dir} after epoch {trainer.epoch}", file=sys.stderr)
    return trainer.fit()


def ensure_pretrained(model: str, options: dict[str, Any], root: Path) -> Path:
    """Encoder weights of ``model`` for a grid's pretrained cells: ``root/<model>/encoder.pt``.

    Pretrains (or resumes) when the file is missing. ``options`` are PretrainConfig keys; with no
    ``data`` the encoder is pretrained on a classification set cut from the demo world (``root/data``),
    from ``crop_frames`` frames (an extra key; default: as many as the small demo world has).
    """
    run_dir = Path(root) / model
    weights = run_dir / ENCODER_FILE
    if weights.is_file():
        return weights
    values = dict(options)
    crop_frames = values.pop("crop_frames", None)
    if values.get("data") is None:
        from multiseg.demo.crops import write_classification_set

        size = int(values.get("image_size", 64))
        with file_lock(Path(root) / ".data.lock"):  # torchrun: one rank writes, the others then reuse it
            crops = write_classification_set(Path(root) / "data", n_frames=crop_frames, size=size)
        values["data"] = str(crops.root)
    values.update(model=model, out_dir=str(run_dir))
    cfg = config_from_dict(PretrainConfig, values, source="grid pretrain section")
    return pretrain(cfg, run_dir).encoder_path
