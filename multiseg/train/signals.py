"""SIGTERM, as SLURM, Kubernetes and preemptible clouds send it before a kill: stop at a clean point,
write ``last.pt``, exit 143.

The handler only records the signal; the training loop asks :meth:`GracefulStop.requested` before each
step, so the checkpoint holds a state between two steps and the resumed run ends exactly like an
uninterrupted one. Under DDP the ranks agree on it (one tiny all-reduce per step), so every rank stops
before the same step even when the signal reaches them at different moments. Validation changes no
training state, so a single process stops inside it at once (it runs again on resume); under DDP it
finishes, since the ranks meet in its collectives.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType

import torch
import torch.distributed as dist

from multiseg.errors import Terminated
from multiseg.train.distributed import DistInfo


class GracefulStop:
    """While entered (``with``): SIGTERM is recorded instead of killing the process."""

    def __init__(self, info: DistInfo, device: torch.device) -> None:
        self.info = info
        self.device = device
        self.signalled = False
        self._validating = False
        self._previous: signal.Handlers | object | None = None

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = True
        if self._validating and not self.info.distributed:
            raise Terminated("")

    @contextlib.contextmanager
    def validation(self) -> Iterator[None]:
        """A block that may end at once on SIGTERM (single process): it changes no training state."""
        self._validating = True
        try:
            if self.signalled and not self.info.distributed:
                raise Terminated("")
            yield
        finally:
            self._validating = False

    def requested(self) -> bool:
        """True when any rank got SIGTERM; call it at the same point on every rank."""
        if not self.info.distributed:
            return self.signalled
        flag = torch.tensor([int(self.signalled)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
