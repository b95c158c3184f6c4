"""Where and in which precision a run computes: the device, autocast dtype and batch transfer."""

from __future__ import annotations

from typing import Any

import torch

from multiseg.errors import MultisegError


def resolve_device(choice: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without one is a user error."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise MultisegError("device 'cuda' was asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: CUDA with bf16 support, or a CPU with AVX512-BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of config key ``amp`` on ``device`` (``auto``: bf16 where native, else none)."""
    if amp == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


def cpu_bf16(device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """Whether the run is bf16 autocast on CPU, where models with ``cpu_bf16_channels_last = False``
    (ESPNet, EDANet: torch 2.13's bf16 channels_last dilated-conv gradients break) stay in NCHW."""
    return device.type == "cpu" and amp_dtype == torch.bfloat16


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A training batch with its tensors on ``device`` (non-blocking from pinned memory)."""
    moved = dict(batch)
    for key in ("image", "label", "dataset_index"):
        moved[key] = batch[key].to(device, non_blocking=True)
    for key in ("boxes", "box_classes"):
        moved[key] = [t.to(device) for t in batch[key]]
    return moved
