"""The joint training loop: balanced mixed batches, learned loss weights, validation, exact resume, DDP.

One *epoch* is counted in the reference dataset (the paper: Cityscapes): it holds as many steps as it
takes the sampler to draw every sample of the reference dataset once, whatever else is mixed in. The
sampler's own passes run on continuously underneath, so the budget does not depend on the other
datasets' sizes.

Exact resume: ``last.pt`` is written atomically at every epoch end, on Ctrl-C and on SIGTERM (between
two steps, :mod:`multiseg.train.signals`; exit 143), and ``best.pt`` holds the same epoch-end state when
the epoch improved, written just before ``last.pt``. ``last.pt`` holds the model,
optimiser, AMP scaler, loss weights, sampler position, every RNG state, the early-stopping state, the
running epoch statistics and the step. Augmentation randomness is a pure function of the sampler's
per-sample seeds, so a run killed at any moment and resumed from ``last.pt`` ends with the same
metrics as an uninterrupted one (bitwise on CPU with the same thread count).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from multiseg.config import config_to_dict, save_config
from multiseg.data.pipeline import SkippedFiles, build_train_loader
from multiseg.data.sampler import samples_per_dataset
from multiseg.data.taxonomy import load_taxonomy, restrict
from multiseg.errors import MultisegError, Terminated
from multiseg.models import create_model
from multiseg.train.box_targets import BoxTargetOptions
from multiseg.train.checkpoint import (
    remove_stale_temporaries,
    resume_point,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from multiseg.train.class_weights import class_weights
from multiseg.train.config import TrainConfig
from multiseg.train.data import build_train_datasets, build_val_sets, check_crop_fits, check_data_present
from multiseg.train.device import autocast_dtype, cpu_bf16, resolve_device, to_device
from multiseg.train.distributed import DistInfo, broadcast_flag, init_distributed
from multiseg.train.early_stopping import EarlyStopping
from multiseg.train.loss_weights import FixedWeighting, UncertaintyWeighting
from multiseg.train.memory import check_step_fits
from multiseg.train.metrics_log import MetricsLog
from multiseg.train.progress import RunClock, resume_line, validates, validation_line
from multiseg.train.schedule import poly_factor
from multiseg.train.signals import GracefulStop
from multiseg.train.step import StepOutput, compute_losses
from multiseg.train.summary import TrainSummary
from multiseg.train.validate import check_val_files, validate


class TrainingDiverged(MultisegError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class JointModule(nn.Module):
    """The network and its loss weighting in one module, so DDP keeps both in sync across ranks."""

    def __init__(
        self,
        net: nn.Module,
        weighting: nn.Module,
        dataset_names: list[str],
        box_opts: BoxTargetOptions,
        class_weights: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.weighting = weighting
        self.dataset_names = dataset_names
        self.box_opts = box_opts
        for name, weight in (class_weights or {}).items():
            self.register_buffer(f"class_weight_{name}", weight)
        self._weighted = list(class_weights or {})

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor | None, StepOutput]:
        weights = {h: getattr(self, f"class_weight_{h}") for h in self._weighted}
        out = compute_losses(self.net, batch, self.dataset_names, self.box_opts, weights)
        total = self.weighting(out.losses) if out.losses else None
        return total, out


@dataclass
class TrainState:
    """Where the run is; everything here goes into ``last.pt``."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    sampler_epoch: int = 0
    sampler_batch: int = 0
    running: dict[str, float] = field(default_factory=dict)  # sums over the current epoch

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Trainer:
    """Builds everything a run needs from its config and runs (or resumes) it."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = resolve_device(cfg.device)
        self.info: DistInfo = init_distributed(self.device.type == "cuda")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.info.local_rank)
        check_data_present(cfg)
        check_crop_fits(cfg)
        torch.manual_seed(cfg.seed)
        self.train_sets = build_train_datasets(cfg)
        self.val_sets = build_val_sets(cfg)
        taxonomy = self._taxonomy()  # a broken taxonomy file is reported before the files are read
        self.skipped = SkippedFiles()  # corrupt files skipped under skip_bad, reported at the end
        check_val_files(self.val_sets, cfg, self.info, self.skipped, self.info.is_main)
        self.names = [d.name for d in self.train_sets]
        self.net = create_model(
            cfg.model,
            heads={d.name: d.num_classes for d in self.train_sets},
            head_mode=cfg.head_mode,
            encoder_weights=cfg.encoder_weights,
            pad_to_stride=True,  # validation frames keep their aspect ratio, so sizes vary
            taxonomy=taxonomy,
            **cfg.model_kwargs,
        )
        self.box_opts = BoxTargetOptions(
            policy=cfg.gtsdb_target,
            inbox_nonsign=cfg.gtsdb_inbox_nonsign,
            min_coverage=cfg.gtsdb_min_coverage,
        )
        self.module = JointModule(
            self.net,
            self._weighting(),
            self.names,
            self.box_opts,
            class_weights(self.train_sets, cfg.class_weighted_heads, self.skipped, self.info.is_main),
        ).to(self.device)
        self.amp_dtype = autocast_dtype(cfg.amp, self.device)
        self.channels_last = cfg.channels_last and (
            self.net.cpu_bf16_channels_last or not cpu_bf16(self.device, self.amp_dtype)
        )
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        per_rank = max(1, cfg.batch_size // self.info.world_size)
        crop = (cfg.crop_height, cfg.crop_width)
        check_step_fits(self.net, cfg.model, per_rank, crop, self.device, self.amp_dtype)
        if cfg.sync_bn and self.info.distributed and self.device.type == "cuda":
            self.module = nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
        self.ddp: nn.Module = self.module
        if self.info.distributed:
            self.ddp = DistributedDataParallel(
                self.module,
                device_ids=[self.info.local_rank] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # a head with no sample on a rank in a step gets no gradient
            )
        self.forward = torch.compile(self.ddp, backend=cfg.compile_backend) if cfg.compile else self.ddp
        self.optimizer = self._optimizer()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        if cfg.batch_size % self.info.world_size:
            raise MultisegError(
                f"batch_size {cfg.batch_size} is not divisible by the {self.info.world_size} processes"
            )
        self.loader, self.sampler, multi = build_train_loader(
            self.train_sets,
            cfg.batch_size // self.info.world_size,
            num_workers=cfg.workers,
            policy=cfg.balance,
            weights=self._balance_weights(),
            seed=cfg.seed,
            rank=self.info.rank,
            world_size=self.info.world_size,
            pin_memory=self.device.type == "cuda",
        )
        # Each new DataLoader iterator draws a base seed; a private generator keeps that draw out of the
        # global RNG stream, which a resumed run must replay exactly (augmentation uses per-sample seeds).
        self.loader.generator = torch.Generator().manual_seed(cfg.seed)
        self.steps_per_epoch = self._steps_per_epoch(multi.sizes)
        self.early = EarlyStopping(cfg.patience)
        self.stop = GracefulStop(self.info, self.device)
        self.state = TrainState()
        self.log = MetricsLog(self.run_dir, tensorboard=self.info.is_main) if self.info.is_main else None
        self.resumed = resume
        if self.info.is_main and (stale := remove_stale_temporaries(self.run_dir)):
            names = ", ".join(p.name for p in stale)
            print(f"multiseg: removed {names} (left by a run killed while writing)", flush=True)
        if resume:
            self._load()
        self.clock = RunClock(cfg.epochs, self.steps_per_epoch, cfg.val_every)

    # -- construction helpers ------------------------------------------------------------------

    def _taxonomy(self) -> dict[str, Any] | None:
        """``head_mode: universal``: the taxonomy file restricted to this run's heads, else None."""
        if self.cfg.head_mode != "universal":
            return None
        heads = {d.name: d.num_classes for d in self.train_sets}
        return restrict(load_taxonomy(self.cfg.taxonomy), heads).to_dict()

    def _weighting(self) -> nn.Module:
        if self.cfg.loss_weighting == "learned":
            return UncertaintyWeighting(
                self.names, self.cfg.log_var_init, self.cfg.log_var_min, self.cfg.log_var_max
            )
        try:
            return FixedWeighting(self.names, self.cfg.loss_weights)
        except ValueError as err:
            raise MultisegError(f"config key 'loss_weights': {err}") from None

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam on the network (with weight decay) and on the log-variances (without, at constant LR).

        The fused kernel (CPU and CUDA) updates every tensor in one pass: the optimiser part of a
        default demo step drops from 15 to 7 ms on 2 CPU cores (of about 140 ms per step).
        """
        groups = [{"params": list(self.module.net.parameters()), "weight_decay": self.cfg.weight_decay}]
        extra = list(self.module.weighting.parameters())
        if extra:
            groups.append({"params": extra, "weight_decay": 0.0, "poly": False})
        return torch.optim.Adam(groups, lr=self.cfg.lr, fused=True)

    def _balance_weights(self) -> list[float] | None:
        """The sampler's weights, in the order of the trained datasets (``balance: weighted`` only)."""
        if self.cfg.balance != "weighted":
            return None
        return [self.cfg.balance_weights[name] for name in self.names]

    def _steps_per_epoch(self, sizes: list[int]) -> int:
        """Steps that draw every sample of the reference dataset once (see module docstring), at most
        ``max_steps``."""
        counts = samples_per_dataset(sizes, self.cfg.balance, self._balance_weights())
        ref = self.names.index(self.cfg.reference_dataset)
        samples = sum(counts) * sizes[ref] / counts[ref]
        steps = max(1, math.ceil(samples / self.cfg.batch_size))
        return steps if self.cfg.max_steps is None else min(steps, self.cfg.max_steps)

    # -- checkpoints ---------------------------------------------------------------------------

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.module.net.state_dict(),
            "model_config": dict(self.module.net.config),  # rebuilds the net: models.model_from_checkpoint
            "weighting": self.module.weighting.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early_stopping": self.early.state_dict(),
            "state": self.state.as_dict(),
            "rng": rng_state(),
            "config": config_to_dict(self.cfg),
        }

    def _save(self, name: str) -> None:
        if self.info.is_main:
            save_checkpoint(self._checkpoint(), self.run_dir / name)

    def _load(self) -> None:
        """Continue from the run folder's :func:`resume_point` (``last.pt``, or ``best.pt`` when newer)."""
        path, ckpt = resume_point(self.run_dir, map_location=self.device)
        self.module.net.load_state_dict(ckpt["model"])
        self.module.weighting.load_state_dict(ckpt["weighting"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.early.load_state_dict(ckpt["early_stopping"])
        self.state = TrainState(**ckpt["state"])
        set_rng_state(ckpt["rng"])
        if self.log is not None:
            self.log.truncate(self.state.epoch)  # rows are labelled 1..epochs done
        if path.name != "last.pt" and self.info.is_main:
            why = "is missing" if not (self.run_dir / "last.pt").is_file() else "is older"
            print(
                f"multiseg: last.pt {why} (the run was killed while writing it); "
                f"resuming from {path.name}, end of epoch {self.state.epoch}",
                flush=True,
            )

    # -- the loop ------------------------------------------------------------------------------

    def _batches(self) -> Iterator[dict[str, Any]]:
        """Batches from the sampler's passes, continuing from the saved position."""
        self.sampler.load_state_dict({"epoch": self.state.sampler_epoch, "batch": self.state.sampler_batch})
        while True:
            for batch in self.loader:
                self.state.sampler_batch += 1
                self.skipped.add(batch)
                yield batch
            self.state.sampler_epoch += 1
            self.state.sampler_batch = 0
            self.sampler.set_epoch(self.state.sampler_epoch)

    def _next_batch(self, stream: Iterator[dict[str, Any]]) -> dict[str, Any]:
        """The next batch; workers that SIGTERM ended (it reaches all of a job's processes) stop the run."""
        try:
            return next(stream)
        except Exception:  # "worker exited unexpectedly", or a message cut off by the exit
            if not self.stop.signalled:
                raise
            raise Terminated("") from None

    def _set_lr(self, epoch: int) -> float:
        factor = poly_factor(epoch, self.cfg.epochs, self.cfg.poly_power, self.cfg.poly_form)
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * factor if group.get("poly", True) else self.cfg.lr
        return self.cfg.lr * factor

    def _train_step(self, batch: dict[str, Any]) -> StepOutput:
        batch = to_device(batch, self.device)
        if self.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            total, out = self.forward(batch)
        if total is None:
            return out
        if not torch.isfinite(total):
            losses = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in out.losses.items())
            where = f"epoch {self.state.epoch + 1} step {self.state.step_in_epoch + 1}"
            last = self.run_dir / "last.pt"
            kept = (
                f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
            )
            raise TrainingDiverged(
                f"loss became {float(total.detach())} at {where} ({losses}); stopped, {kept}"
            )
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        out.losses["total"] = total.detach()
        return out

    def _accumulate(self, out: StepOutput) -> None:
        run = self.state.running
        for name, loss in out.losses.items():
            run[f"loss/{name}"] = run.get(f"loss/{name}", 0.0) + float(loss.detach())
            run[f"n/{name}"] = run.get(f"n/{name}", 0.0) + 1
        run["boxes_merged"] = run.get("boxes_merged", 0.0) + out.boxes_merged
        run["boxes_fallback"] = run.get("boxes_fallback", 0.0) + out.boxes_fallback

    def _epoch_stats(self) -> dict[str, float]:
        """Mean loss per head over the epoch (all ranks), the loss weights and the box-merge fraction."""
        keys = [f"{kind}/{h}" for h in [*self.names, "total"] for kind in ("loss", "n")]
        keys += ["boxes_merged", "boxes_fallback"]
        sums = torch.tensor([self.state.running.get(k, 0.0) for k in keys], dtype=torch.float64)
        if self.info.distributed:
            sums = sums.to(self.device)
            torch.distributed.all_reduce(sums)
        run = dict(zip(keys, sums.tolist(), strict=True))
        stats = {
            f"loss/{h}": run[f"loss/{h}"] / run[f"n/{h}"] for h in [*self.names, "total"] if run[f"n/{h}"]
        }
        stats.update({f"weight/{h}": w for h, w in self.module.weighting.weights().items()})
        merged, fallback = run["boxes_merged"], run["boxes_fallback"]
        if merged + fallback > 0:
            stats["boxes_merged_fraction"] = merged / (merged + fallback)
        return stats

    def fit(self) -> TrainSummary:
        """Train until the budget is spent or early stopping fires; returns the summary."""
        start = time.time()
        if self.info.is_main:
            save_config(self.cfg, self.run_dir / "config.yaml")
            print(self._banner(), flush=True)
            if self.resumed:
                s, n, best = self.state, self.steps_per_epoch, (self.early.best, self.early.best_epoch)
                print(resume_line(s.epoch, s.step_in_epoch, n, s.global_step, best), flush=True)
        stream = self._batches()
        final: dict[str, float] = {}
        stopped = False
        try:
            with self.stop:
                while self.state.epoch < self.cfg.epochs:
                    final = self._run_epoch(stream)
                    if broadcast_flag(self.early.should_stop, self.info, self.device):
                        stopped = True
                        break
        except Terminated:
            self._save("last.pt")
            raise Terminated(self._stop_line("stopped by SIGTERM")) from None
        except KeyboardInterrupt:
            self._save("last.pt")
            if self.info.is_main:
                print(self._stop_line("interrupted"), file=sys.stderr)
            raise
        if self.log is not None:
            self.log.plot(self.run_dir)
            self.log.close()
        return TrainSummary(
            run_dir=self.run_dir,
            epochs_run=self.state.epoch,
            best_epoch=self.early.best_epoch,
            best_score=self.early.best,
            final=final,
            stopped_early=stopped,
            seconds=time.time() - start,
            skipped=self._skipped_report(),
            classes={vs.name: len(vs.dataset.eval_classes) or vs.dataset.num_classes for vs in self.val_sets},
            is_main=self.info.is_main,
        )

    def _stop_line(self, what: str) -> str:
        """Where the run stopped and how to go on (rank 0; empty elsewhere, so one line is printed)."""
        if not self.info.is_main:
            return ""
        return (
            f"{what} at epoch {self.state.epoch + 1} step {self.state.step_in_epoch}; "
            f"resumable checkpoint written (continue with: multiseg train --resume {self.run_dir})"
        )

    def _skipped_report(self) -> str:
        """The skip_bad report over all ranks (each rank only sees its own shard's batches)."""
        counts = [dict(self.skipped.counts)]
        if self.info.distributed:
            counts = [{} for _ in range(self.info.world_size)]
            torch.distributed.all_gather_object(counts, dict(self.skipped.counts))
        total = SkippedFiles()
        for c in counts:
            total.counts.update(c)
        return total.report()

    def _banner(self) -> str:
        """One line saying what runs where: model, heads, device, precision, budget, run folder."""
        threads = torch.get_num_threads()
        where = "cuda" if self.device.type == "cuda" else f"cpu ({threads} thread{'s' * (threads != 1)})"
        dtype = str(self.amp_dtype).removeprefix("torch.")
        precision = "fp32" if self.amp_dtype is None else f"{dtype} autocast"
        layout = ", channels_last" if self.channels_last else ""
        if self.cfg.channels_last and not self.channels_last:
            layout = ", channels_last off (broken in torch's CPU bf16 dilated-conv gradients)"
        procs = f" x {self.info.world_size} processes" if self.info.distributed else ""
        return (
            f"multiseg: training {self.cfg.model} on {'+'.join(self.names)}, {where}{procs}, "
            f"{precision}{layout}, {self.cfg.epochs} epochs of {self.steps_per_epoch} steps; "
            f"run folder {self.run_dir}"
        )

    def _run_epoch(self, stream: Iterator[dict[str, Any]]) -> dict[str, float]:
        epoch = self.state.epoch
        lr = self._set_lr(epoch)
        self.ddp.train()
        if self.cfg.freeze_bn:
            for m in self.module.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        with tqdm(
            total=self.steps_per_epoch,
            initial=self.state.step_in_epoch,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=not self.info.is_main,
            dynamic_ncols=True,
        ) as bar:
            self.clock.start_epoch()
            while self.state.step_in_epoch < self.steps_per_epoch:
                if self.stop.requested():  # SIGTERM: stop between two steps (train/signals.py)
                    raise Terminated("")
                out = self._train_step(self._next_batch(stream))
                self._accumulate(out)
                self.state.step_in_epoch += 1
                self.state.global_step += 1
                self.clock.step_done()
                bar.update(1)
                if "total" in out.losses:
                    left = self.clock.left_text(epoch, self.state.step_in_epoch)
                    bar.set_postfix(loss=f"{float(out.losses['total']):.3f}", lr=f"{lr:.2e}", run_left=left)
        row = {"lr": lr, **self._epoch_stats()}
        improved = False
        if validates(epoch + 1, self.cfg.epochs, self.cfg.val_every):
            net, info, started = self.module.net, self.info, time.perf_counter()
            with self.stop.validation():
                row.update(validate(net, self.val_sets, self.cfg, self.device, info, self.skipped))
            self.clock.validation_done(time.perf_counter() - started)
            miou = [v for k, v in row.items() if k.startswith("miou/") and not math.isnan(v)]
            score = sum(miou) / len(miou) if miou else float("nan")
            row["miou/mean"] = score
            improved = self.early.step(score, epoch + 1)
            if self.info.is_main:
                left = self.clock.left_text(epoch + 1, 0) if epoch + 1 < self.cfg.epochs else None
                best = (self.early.best, self.early.best_epoch)
                print(validation_line(epoch + 1, self.cfg.epochs, row, best, left), flush=True)
        if self.log is not None:
            self.log.log(epoch + 1, row)
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        self.state.running = {}
        if improved:  # the same epoch-end state as last.pt, written first: either one resumes the run
            self._save("best.pt")
        self._save("last.pt")
        return row
