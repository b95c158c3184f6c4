"""The two limits of a forward pass on this machine: arithmetic and memory traffic (a roofline).

A network runs no faster than ``max(FLOPs / peak FLOP/s, bytes moved / memory bandwidth)``. Models with
wide convolutions (ERFNet, GUNet) sit at the arithmetic limit; models built from thin, depthwise or
dilated convolutions and elementwise work (ENet, ESPNet, EDANet) move many bytes per FLOP and sit at the
memory one. :func:`traffic_bytes` counts the bytes every aten operator reads and writes, as an unfused
eager run moves them; :func:`measured_copy_gbps` measures the bandwidth that traffic meets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Operators that only re-describe memory (views, metadata) move no bytes.
_NO_TRAFFIC = {"view", "_unsafe_view", "reshape", "expand", "permute", "slice", "select", "unsqueeze",
               "squeeze", "t", "transpose", "as_strided", "alias", "detach", "split", "chunk", "unbind",
               "split_with_sizes", "_reshape_alias", "flatten", "unflatten", "view_as", "narrow", "movedim",
               "expand_as", "empty", "empty_like", "empty_strided"}  # fmt: skip


class _TrafficMode(TorchDispatchMode):
    """Adds the bytes of every tensor an operator takes and every tensor it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__.rstrip("_") not in _NO_TRAFFIC:
            tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
            self.bytes += sum(t.numel() * t.element_size() for t in tensors)
        return out


def traffic_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes read and written by the operators of one forward pass of ``model`` on ``x``.

    Each operator's inputs (activations and weights) and outputs count once: what an eager run moves when
    no operator's data stays in cache between operators. Caches make the real traffic lower, so the time
    it implies (:func:`roofline_ms`) is a floor for memory-bound networks, not an estimate.
    """
    mode = _TrafficMode()
    with torch.inference_mode(), mode:
        model(x)
    return mode.bytes


def measured_copy_gbps(threads: int, megabytes: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth in GB/s of torch's copy of a ``megabytes`` fp32 tensor (read + write), best of
    ``repeats``: far larger than any cache, so it measures DRAM as a stream of big activations meets it."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        src = torch.randn(megabytes * 2**20 // 4)
        dst = torch.empty_like(src)
        dst.copy_(src)
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(old)
    return 2 * src.numel() * 4 / best / 1e9


@dataclass(frozen=True)
class Roofline:
    """One network's two floors on one machine, in milliseconds per frame."""

    gflop: float
    gbytes: float
    peak_gflops: float
    bandwidth_gbps: float

    @property
    def compute_ms(self) -> float:
        return 1e3 * self.gflop / self.peak_gflops

    @property
    def memory_ms(self) -> float:
        return 1e3 * self.gbytes / self.bandwidth_gbps

    @property
    def bound(self) -> str:
        """Which limit a frame meets first: ``"compute"`` or ``"memory"``."""
        return "compute" if self.compute_ms >= self.memory_ms else "memory"

    def floor_ms(self) -> float:
        return max(self.compute_ms, self.memory_ms)

    def text(self) -> str:
        return (
            f"{self.gflop:.1f} GFLOP, {self.gbytes:.2f} GB moved ({self.gflop / self.gbytes:.1f} FLOP/byte): "
            f"compute floor {self.compute_ms:.0f} ms, memory floor {self.memory_ms:.0f} ms "
            f"-> {self.bound}-bound"
        )
