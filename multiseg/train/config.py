"""The flat training configuration: the paper's recipe as defaults, every choice one YAML key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: Datasets a run can mix, by head name. ``lanes`` is the 4-class Lane Markings setting of Vistas.
KNOWN_DATASETS = ("cityscapes", "gtsdb", "vistas", "lanes")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder.

    Defaults are the paper's recipe (Adam 5e-4, poly decay per epoch, batch 6, 150 Cityscapes epochs,
    learned loss weights) on the real image sizes. ``multiseg train`` with no config file uses
    :func:`demo_defaults` instead, which shrinks resolution and budget to fit 10 minutes on 2 CPU cores.
    """

    # -- data ------------------------------------------------------------------------------------
    datasets: list[str] = field(default_factory=lambda: ["cityscapes", "gtsdb", "vistas"])
    data_root: Path | None = None  # None: the demo world, generated on first use into the cache folder
    demo_size: Literal["small", "medium"] = "small"  # which demo world data_root: null means (medium: 3x)
    cityscapes_root: Path | None = None
    gtsdb_root: Path | None = None
    vistas_root: Path | None = None
    vistas_version: Literal["1.2", "2.0"] = "1.2"
    train_split_fraction: float | None = None  # GTSDB: None = official 600/300 split (demo: from its marker)
    resize_width: int = 1024  # the paper's rule: scale so the image fits 1024 wide / 512 high
    resize_height: int = 512
    dataset_resize: dict[str, list[int]] = field(default_factory=dict)  # per dataset [width, height]
    scale_min: float = 0.5
    scale_max: float = 2.0
    crop_height: int = 512
    crop_width: int = 1024
    flip: bool = True
    box_crop_prob: float = 0.0  # box datasets (GTSDB): chance of a crop around one of the sample's boxes
    gtsdb_target: Literal["merge", "box", "shape"] = "merge"
    gtsdb_fallback: Literal["shape", "box"] = "shape"
    gtsdb_ignore_ring: int = 0
    gtsdb_inbox_nonsign: Literal["background", "ignore"] = "background"
    gtsdb_min_coverage: float = 0.2
    lanes_other: Literal["train", "ignore"] = "train"
    balance: Literal["replicate", "none", "weighted"] = "replicate"
    balance_weights: dict[str, float] = field(default_factory=dict)  # weighted: share of samples per dataset
    workers: int = 2
    skip_bad: bool = False  # corrupt/truncated files: skip with a warning, count, report (else: error)
    val_max_samples: int | None = None  # cap per dataset, for quick validation on large sets

    # -- model -----------------------------------------------------------------------------------
    model: str = "erfnet"
    head_mode: Literal["decoder", "last_conv", "universal"] = "decoder"
    taxonomy: Path | None = None  # head_mode universal: a taxonomy YAML; None = multiseg/data/taxonomy.yaml
    encoder_weights: Path | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # architecture options, e.g. {dropout: 0.0}
    freeze_bn: bool = False  # BatchNorm uses its running statistics and does not update them

    # -- optimisation ----------------------------------------------------------------------------
    lr: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 6
    epochs: int = 150  # counted in epochs of ``reference_dataset``, whatever else is mixed in
    reference_dataset: str = "cityscapes"
    poly_power: float = 0.9
    poly_form: Literal["standard", "paper"] = "standard"
    class_weighted_heads: list[str] = field(default_factory=list)  # ENet weights 1/ln(1.02+p), e.g. [gtsdb]
    loss_weighting: Literal["learned", "fixed"] = "learned"
    loss_weights: dict[str, float] = field(default_factory=dict)  # for ``fixed``; default 1 per head
    log_var_init: float = 0.0
    log_var_min: float = -4.0
    log_var_max: float = 6.0
    patience: int = 20  # early stopping on mean validation mIoU; 0 disables
    val_every: int = 1

    # -- execution -------------------------------------------------------------------------------
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16", "auto"] = "none"  # auto: bf16 where the device has it natively
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    threads: int | None = None  # torch intra-op threads; None: torch's default
    out_dir: Path = Path("runs/train")

    def __post_init__(self) -> None:
        unknown = [d for d in self.datasets if d not in KNOWN_DATASETS]
        if unknown:
            raise ValueError(f"datasets: unknown {unknown}; known: {list(KNOWN_DATASETS)}")
        if not self.datasets:
            raise ValueError("datasets: at least one dataset is needed")
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets: {self.datasets} names one twice")
        if "vistas" in self.datasets and "lanes" in self.datasets:
            raise ValueError("datasets: vistas and lanes are two settings of the same images; pick one")
        if "gtsdb" in self.datasets and self.gtsdb_target == "merge" and "cityscapes" not in self.datasets:
            raise ValueError("gtsdb_target=merge needs the cityscapes head; add cityscapes or use box/shape")
        if self.reference_dataset not in self.datasets:
            raise ValueError(
                f"reference_dataset {self.reference_dataset!r} is not in datasets {self.datasets}"
            )
        for name in ("batch_size", "epochs", "crop_height", "crop_width", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError("need 0 < scale_min <= scale_max")
        _check_dataset_names("dataset_resize", self.dataset_resize)
        for name, size in self.dataset_resize.items():
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"dataset_resize: {name} needs [width, height] >= 1, got {size}")
        self._check_balance_weights()
        if not 0 <= self.box_crop_prob <= 1:
            raise ValueError("box_crop_prob must be in [0, 1]")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")

    def _check_balance_weights(self) -> None:
        """``balance: weighted`` needs a weight per trained dataset, the reference one above 0."""
        _check_dataset_names("balance_weights", self.balance_weights)
        for name, weight in self.balance_weights.items():
            if weight < 0:
                raise ValueError(f"balance_weights: {name} must be >= 0, got {weight}")
        if self.balance != "weighted":
            if self.balance_weights:
                raise ValueError(f"balance_weights: only read with balance: weighted, not {self.balance!r}")
            return
        missing = [d for d in self.datasets if d not in self.balance_weights]
        if missing:
            raise ValueError(f"balance_weights: balance: weighted needs a weight for {missing}")
        if self.balance_weights[self.reference_dataset] <= 0:
            raise ValueError(
                f"balance_weights: {self.reference_dataset} must be > 0: the epoch budget counts its samples"
            )


def _check_dataset_names(key: str, per_dataset: dict[str, Any]) -> None:
    """Names in a per-dataset setting must be known datasets (not in this run is fine: grids share them)."""
    for name in per_dataset:
        if name not in KNOWN_DATASETS:
            raise ValueError(f"{key}: unknown dataset {name!r}; known: {list(KNOWN_DATASETS)}")


def demo_overrides() -> dict[str, object]:
    """What ``multiseg train`` changes from the paper's recipe for the default demo-world run.

    The demo world's frames are 4x smaller than the real ones and the run must finish in about 10
    minutes on 2 CPU cores, so resolution and budget shrink. Cityscapes and Vistas fit 192x96 and
    GTSDB 384x192 (the demo GTSDB frames are only 2x smaller than the real ones), and training
    crops are 96x96, centred on a sign 80% of the time on GTSDB; that buys 72 epochs. Measured in
    the same ~8 minutes with seed 0, scored on the full-size demo labels: Cityscapes mIoU 0.37 and
    Vistas 0.29, against 0.32 / 0.27 for 48 epochs of 128x128 crops at 256x128, 0.31 / 0.24 for 72
    epochs of 96x96 crops at 256x128 and 0.26 / 0.18 for 24 epochs of whole 256x128 frames. Seed 1
    of this default gives 0.32 / 0.25: gaps under about 0.05 are seed noise. Validation runs
    every 8th epoch (and after the last). bf16 autocast and channels_last where the CPU (or GPU)
    computes bf16 natively: 1.8x faster steps on the AVX512-BF16 CPUs of the project. The recipe
    itself (optimiser, schedule, loss weighting, box targets, balancing) stays the paper's. Every
    head gets ENet class weights: in so short a run the rare classes (and GTSDB's 43 signs against
    background) are otherwise never predicted. :func:`demo_config` also turns off ERFNet's dropout
    (:data:`DEMO_NO_DROPOUT`), which regularises 150 epochs of 2975 frames but only slows a short
    run down.
    """
    return {
        "resize_width": 192,
        "resize_height": 96,
        "dataset_resize": {"gtsdb": [384, 192]},
        "crop_height": 96,
        "crop_width": 96,
        "scale_min": 0.75,
        "scale_max": 1.5,
        "box_crop_prob": 0.8,
        "class_weighted_heads": ["cityscapes", "gtsdb", "vistas", "lanes"],
        "epochs": 72,
        "val_every": 8,
        "lr": 2e-3,
        "patience": 0,
        "workers": 1,
        "amp": "auto",
        "channels_last": True,
        "out_dir": "runs/demo",
    }


#: Model options of the default demo run, per model: dropout off (measured for ERFNet only).
DEMO_NO_DROPOUT: dict[str, dict[str, float]] = {"erfnet": {"dropout_64": 0.0, "dropout_128": 0.0}}


def demo_config(overrides: Sequence[str] = ()) -> TrainConfig:
    """The config of ``multiseg train`` without a config file: :func:`demo_overrides`, then ``--set``.

    Two demo defaults follow what the user picked, unless the user sets them too: class weights go
    only to the heads the run trains (``--set datasets=[cityscapes]`` must not fail on a GTSDB head
    it does not have), and ``model_kwargs`` are the chosen model's :data:`DEMO_NO_DROPOUT` entry.
    """
    from multiseg.config import load_config, parse_overrides

    chosen = parse_overrides(overrides)
    demo = [f"{k}={v}" for k, v in demo_overrides().items()]
    cfg = load_config(TrainConfig, None, [*demo, *overrides])
    if "class_weighted_heads" not in chosen:
        cfg.class_weighted_heads = [h for h in cfg.class_weighted_heads if h in cfg.datasets]
    if "model_kwargs" not in chosen:
        cfg.model_kwargs = dict(DEMO_NO_DROPOUT.get(cfg.model, {}))
    return cfg
