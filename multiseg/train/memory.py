"""Will a training step fit in memory? A prediction from the sizes, checked before the first step.

A CNN's training memory grows linearly with the pixels of a batch: autograd keeps, for the backward
pass, tensors whose sizes are fixed multiples of the input's. :func:`step_bytes` runs the run's own
network once on a small probe input (train mode, on a copy, the global RNG untouched), counts the
bytes of every tensor saved for backward (once per storage, parameters apart), scales that to
``batch x crop_height x crop_width`` and adds four copies of the parameters (weights, gradients and
Adam's two moments). The figure leaves out the allocator's slack, the data loader and the temporary
buffers of the backward pass, so it is a floor: a run predicted above the free memory cannot run, and
:func:`check_step_fits` stops it with one line naming the settings to change, before any data is read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from multiseg.errors import MultisegError

#: The probe's size in output strides (height, width): small, but past every stride-1 border effect.
PROBE_STRIDES = (4, 8)


@dataclass(frozen=True)
class StepMemory:
    """Predicted bytes of one training step: activations kept for backward, and parameter state."""

    activations: int
    parameters: int

    @property
    def total(self) -> int:
        return self.activations + self.parameters


def _padded(size: int, stride: int) -> int:
    return -(-size // stride) * stride


def saved_bytes(net: nn.Module, x: torch.Tensor, heads: list[str], dtype: torch.dtype | None) -> int:
    """Bytes autograd saves for backward in one forward of ``x`` through ``heads`` (parameters apart)."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params and storage.device.type != "meta":
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None),
    ):
        out = net(x, heads=heads)
        del out
    return sum(storages.values())


def step_bytes(
    net: nn.Module,
    batch: int,
    crop: tuple[int, int],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> StepMemory:
    """Predicted memory of a training step of ``batch`` crops of ``crop`` (height, width) on ``device``.

    Every sample runs the encoder and one head (its dataset's), so the largest head's figure counts.
    """
    stride = int(getattr(net, "output_stride", 8))
    ph, pw = PROBE_STRIDES[0] * stride, PROBE_STRIDES[1] * stride
    probe = copy.deepcopy(net).to(device).train()  # BatchNorm statistics of the real net stay as they are
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        x = torch.randn(1, 3, ph, pw, device=device)
        per_head = [saved_bytes(probe, x, [h], amp_dtype) for h in getattr(net, "head_names", [])]
    per_pixel = max(per_head, default=0) / (ph * pw)
    pixels = batch * _padded(crop[0], stride) * _padded(crop[1], stride)
    param_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
    return StepMemory(activations=round(per_pixel * pixels), parameters=4 * param_bytes)


def free_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on ``device``: CUDA's free memory, Linux's MemAvailable, or None."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_step_fits(
    net: nn.Module,
    model: str,
    batch: int,
    crop: tuple[int, int],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> StepMemory:
    """Raise :class:`MultisegError` (one line) when a step cannot fit in the device's free memory."""
    need = step_bytes(net, batch, crop, device, amp_dtype)
    free = free_bytes(device)
    if free is not None and need.total > free:
        where = "GPU" if device.type == "cuda" else "RAM"
        bf16 = "" if amp_dtype is not None else ", or amp: bf16"
        raise MultisegError(
            f"batch_size {batch} of {crop[1]}x{crop[0]} crops needs at least {need.total / 2**30:.1f} GiB "
            f"for a {model} training step (predicted from the sizes), but only {free / 2**30:.1f} GiB "
            f"{where} is free; lower batch_size, or crop_width/crop_height{bf16}"
        )
    return need
