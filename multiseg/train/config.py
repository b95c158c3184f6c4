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
    #: the datasets the run mixes, one head each: cityscapes, gtsdb, vistas, lanes (Vistas' lane markings)
    datasets: list[str] = field(default_factory=lambda: ["cityscapes", "gtsdb", "vistas"])
    #: folder with cityscapes/, gtsdb/, vistas/ in their official layouts; null: the demo world
    data_root: Path | None = None
    #: the demo world used where data_root is null: small, medium (3x the frames) or full (real frame sizes)
    demo_size: Literal["small", "medium", "full"] = "small"
    #: Cityscapes' own root (leftImg8bit/, gtFine/ inside); null: data_root/cityscapes
    cityscapes_root: Path | None = None
    #: GTSDB's own root (FullIJCNN2013/ inside); null: data_root/gtsdb
    gtsdb_root: Path | None = None
    #: Mapillary Vistas' own root (config.json inside); null: data_root/vistas
    vistas_root: Path | None = None
    #: Vistas label version (1.2: 66 classes)
    vistas_version: Literal["1.2", "2.0"] = "1.2"
    #: GTSDB: share of the frames to train on; null: the official 600/300 split (demo: from its marker)
    train_split_fraction: float | None = None
    #: images are scaled to fit resize_width x resize_height, aspect kept (the paper: 1024 x 512)
    resize_width: int = 1024
    #: see resize_width
    resize_height: int = 512
    #: per-dataset [width, height] that replace resize_width/height, e.g. {gtsdb: [384, 192]}
    dataset_resize: dict[str, list[int]] = field(default_factory=dict)
    #: training augmentation: smallest random rescale factor
    scale_min: float = 0.5
    #: training augmentation: largest random rescale factor
    scale_max: float = 2.0
    #: training crop height in pixels
    crop_height: int = 512
    #: training crop width in pixels
    crop_width: int = 1024
    #: random horizontal flips in training (mirror-twin classes such as turn left/right swap)
    flip: bool = True
    #: box datasets (GTSDB): chance of a crop around one of the sample's boxes
    box_crop_prob: float = 0.0
    #: GTSDB pixel targets: merge (boxes with the Cityscapes head's sign pixels, the paper), box, shape
    gtsdb_target: Literal["merge", "box", "shape"] = "merge"
    #: merge: the target inside a box the Cityscapes head barely covers (below gtsdb_min_coverage)
    gtsdb_fallback: Literal["shape", "box"] = "shape"
    #: GTSDB: pixels within this many px of a box or shape outline are ignored (outlines are approximate)
    gtsdb_ignore_ring: int = 0
    #: merge: box pixels the Cityscapes head does not call a sign are background, or ignored
    gtsdb_inbox_nonsign: Literal["background", "ignore"] = "background"
    #: merge: the Cityscapes head's sign coverage of a box below which gtsdb_fallback is used instead
    gtsdb_min_coverage: float = 0.2
    #: lanes: the "other" class is trained (left out of mIoU), or ignored
    lanes_other: Literal["train", "ignore"] = "train"
    #: batch mixing: replicate (every dataset equally often), none (by size), weighted (balance_weights)
    balance: Literal["replicate", "none", "weighted"] = "replicate"
    #: balance: weighted: each dataset's share of the samples, e.g. {cityscapes: 1, gtsdb: 2, vistas: 1}
    balance_weights: dict[str, float] = field(default_factory=dict)
    #: DataLoader worker processes
    workers: int = 2
    #: corrupt or truncated files: skip with a warning, count, report (false: stop with an error)
    skip_bad: bool = False
    #: validate on at most this many images per dataset (null: all)
    val_max_samples: int | None = None

    # -- model -----------------------------------------------------------------------------------
    #: the network: enet, erfnet, espnet, edanet, gunet, igumnet (see multiseg models)
    model: str = "erfnet"
    #: decoder: a decoder per dataset; last_conv: one shared decoder, a last conv per dataset;
    #: universal: one head over the universal taxonomy's classes, trained with partial labels (NLL+)
    head_mode: Literal["decoder", "last_conv", "universal"] = "decoder"
    #: head_mode universal: the taxonomy YAML; null: multiseg/data/taxonomy.yaml
    taxonomy: Path | None = None
    #: encoder weights to start from (multiseg pretrain's encoder.pt); null: random
    encoder_weights: Path | None = None
    #: architecture options, e.g. {dropout_64: 0.0} (the demo run turns ERFNet's dropout off)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    #: BatchNorm uses its running statistics and does not update them
    freeze_bn: bool = False

    # -- optimisation ----------------------------------------------------------------------------
    #: Adam learning rate (the network's decays by the poly rule, the loss weights' stays)
    lr: float = 5e-4
    #: Adam weight decay of the network (none on the loss weights)
    weight_decay: float = 1e-4
    #: samples per step over all processes (divisible by their number under torchrun)
    batch_size: int = 6
    #: the budget, in epochs of reference_dataset, whatever else is mixed in
    epochs: int = 150
    #: smoke runs: at most this many optimizer steps per epoch; null: whole epochs
    max_steps: int | None = None
    #: the dataset whose epochs count: each epoch draws every one of its samples once
    reference_dataset: str = "cityscapes"
    #: exponent of the poly learning-rate decay (stepped per epoch)
    poly_power: float = 0.9
    #: standard: (1 - e/E)^p; paper: 1 - (e/E)^p, as printed in the paper
    poly_form: Literal["standard", "paper"] = "standard"
    #: heads trained with ENet class weights 1/ln(1.02+p), e.g. [gtsdb]
    class_weighted_heads: list[str] = field(default_factory=list)
    #: learned: one uncertainty weight per head (Kendall et al.); fixed: loss_weights
    loss_weighting: Literal["learned", "fixed"] = "learned"
    #: fixed: each head's loss weight, e.g. {gtsdb: 2}; default 1 per head
    loss_weights: dict[str, float] = field(default_factory=dict)
    #: learned: each head's initial log-variance s (its weight is exp(-s))
    log_var_init: float = 0.0
    #: learned: lower clamp of s, so an easy head's weight stays at most exp(-log_var_min)
    log_var_min: float = -4.0
    #: learned: upper clamp of s, so a hard head's weight stays at least exp(-log_var_max)
    log_var_max: float = 6.0
    #: early stopping: validations without a better mean mIoU before the run stops; 0: never
    patience: int = 20
    #: validate every this many epochs (and after the last)
    val_every: int = 1

    # -- execution -------------------------------------------------------------------------------
    #: seed of every random choice: initial weights, data order, augmentation
    seed: int = 0
    #: auto: cuda where torch sees a GPU, else cpu
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: mixed precision; auto: bf16 where the device computes it natively
    amp: Literal["none", "bf16", "fp16", "auto"] = "none"
    #: channels_last memory layout (where the model's CPU bf16 gradients allow it)
    channels_last: bool = False
    #: torch.compile the network and its losses
    compile: bool = False
    #: torch.compile's backend; aot_eager traces and differentiates the graphs without generating code
    compile_backend: Literal["inductor", "cudagraphs", "aot_eager", "eager"] = "inductor"
    #: torchrun on GPUs: BatchNorm statistics over all processes
    sync_bn: bool = False
    #: torch intra-op threads; null: torch's default
    threads: int | None = None
    #: new runs go to out_dir/<time>-<model>
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
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 (or null: whole epochs)")
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
