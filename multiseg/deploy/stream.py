"""Decode, infer and encode at once: frames stream through a model at the pace of the slowest stage.

A decode thread reads frames into a bounded queue, the calling thread runs inference on them in order and
puts the results into a second bounded queue, and an encode thread draws and writes them. Each queue holds
at most ``queue_size`` frames, so a long video or a camera streams with a fixed number of frames in memory
(:attr:`StreamStats.max_in_flight` counts them: decoded and not yet written); when inference falls
behind, the decoder waits. OpenCV and torch release the GIL in their heavy calls, so the three stages
really overlap on a machine with cores to spare, and end-to-end FPS approaches the model's.

Timings (seconds per frame, each stage's own work without its waiting): ``decode``, ``infer``, within it
``model`` (the network's forward alone, as ``infer`` reports it), and ``encode``; what each stage does is
the caller's (:mod:`.video`). The live caption drawn on each
frame gives the model's FPS and the end-to-end FPS over the last frames.

A live source (a camera) ends on Ctrl-C: reading stops, every frame already read is finished and the
video is kept; a second Ctrl-C, or Ctrl-C on a file, aborts (the caller then discards the partial video).
"""

from __future__ import annotations

import contextlib
import queue
import signal
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

#: Frames each queue holds at most (decoded -> inference, inference -> encoder).
QUEUE_SIZE = 4
_END = object()
_POLL = 0.05

#: ``infer(frame) -> (result, seconds of the network alone)``.
Infer = Callable[[np.ndarray], tuple[Any, float]]
#: ``encode(frame, result, caption)``: draw and write one frame.
Encode = Callable[[np.ndarray, Any, str], None]


def _rate(seconds: float) -> float:
    """Per second, for a duration; ``inf`` for a duration the clock could not resolve."""
    return 1.0 / seconds if seconds > 0 else float("inf")


@dataclass
class StreamStats:
    """What a stream did and how long each stage took per frame (seconds)."""

    read: int = 0
    written: int = 0
    decode: list[float] = field(default_factory=list)
    infer: list[float] = field(default_factory=list)
    model: list[float] = field(default_factory=list)
    encode: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)  # when each frame was written (perf_counter)
    wall: float = 0.0
    max_in_flight: int = 0
    interrupted: bool = False

    @property
    def model_fps(self) -> float:
        """FPS of the network alone: 1 / the median forward time."""
        return _rate(statistics.median(self.model)) if self.model else float("nan")

    @property
    def end_to_end_fps(self) -> float:
        """Steady end-to-end FPS: 1 / the median interval between frames written."""
        gaps = np.diff(self.done)
        return _rate(float(np.median(gaps))) if len(gaps) else float("nan")

    @property
    def overall_fps(self) -> float:
        """Frames written / wall time from the start to the last frame written (start-up included)."""
        return self.written / self.wall if self.wall > 0 else float("nan")

    def summary(self) -> str:
        """The timing line ``multiseg predict`` prints for a video."""

        def ms(values: list[float]) -> str:
            return f"{1000 * statistics.median(values):.1f} ms" if values else "n/a"

        return (
            f"model {self.model_fps:.1f} FPS, end to end {self.end_to_end_fps:.1f} FPS (medians; "
            f"{self.overall_fps:.1f} FPS over the whole run: {self.written} frames in {self.wall:.1f} s); "
            f"per frame (median): decode {ms(self.decode)}, infer {ms(self.infer)} (model {ms(self.model)}), "
            f"encode {ms(self.encode)}; at most {self.max_in_flight} frames in memory"
        )


class LiveFps:
    """The caption drawn on each frame: the model's FPS and the end-to-end FPS over the last frames."""

    def __init__(self, window: int = 10) -> None:
        self.model: deque[float] = deque(maxlen=window)
        self.done: deque[float] = deque(maxlen=window + 1)

    def caption(self) -> str:
        parts = []
        if model := list(self.model):
            parts.append(f"model {_rate(statistics.median(model)):.1f} FPS")
        done = list(self.done)
        if len(done) >= 2 and done[-1] > done[0]:
            parts.append(f"end to end {(len(done) - 1) / (done[-1] - done[0]):.1f} FPS")
        return " | ".join(parts)


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting while the queue is full; False if the stream stopped meanwhile."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    """The next item, or the end marker once the stream stopped."""
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue
    return _END


class _Stream:
    """The three stages' shared state; :func:`run_stream` drives it."""

    def __init__(self, queue_size: int) -> None:
        self.to_infer: queue.Queue = queue.Queue(maxsize=queue_size)
        self.to_encode: queue.Queue = queue.Queue(maxsize=queue_size)
        self.stop = threading.Event()  # everything stops (an error, an abort)
        self.stop_reading = threading.Event()  # the decoder stops, the rest finishes (live Ctrl-C)
        self.errors: list[BaseException] = []
        self.stats = StreamStats()
        self.live = LiveFps()
        self.lock = threading.Lock()
        self.in_flight = 0

    def _flight(self, delta: int) -> None:
        with self.lock:
            self.in_flight += delta
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.in_flight)

    def decode(self, frames: Iterator[np.ndarray], max_frames: int | None) -> None:
        try:
            while not self.stop_reading.is_set() and (max_frames is None or self.stats.read < max_frames):
                start = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                self.stats.read += 1
                self._flight(+1)
                if not _put(self.to_infer, (frame, time.perf_counter() - start), self.stop):
                    return
        except BaseException as err:  # handed to the caller's thread
            self.errors.append(err)
            self.stop.set()
        _put(self.to_infer, _END, self.stop)

    def encode(self, encode: Encode, bar: tqdm) -> None:
        try:
            while (item := _get(self.to_encode, self.stop)) is not _END:
                frame, result = item
                start = time.perf_counter()
                encode(frame, result, self.live.caption())
                end = time.perf_counter()
                self.stats.encode.append(end - start)
                self.stats.done.append(end)
                self.live.done.append(end)
                self.stats.written += 1
                self._flight(-1)
                bar.update()
        except BaseException as err:
            self.errors.append(err)
            self.stop.set()

    def infer(self, infer: Infer) -> None:
        while (item := _get(self.to_infer, self.stop)) is not _END:
            frame, decode_s = item
            self.stats.decode.append(decode_s)
            start = time.perf_counter()
            result, model_s = infer(frame)
            self.stats.infer.append(time.perf_counter() - start)
            self.stats.model.append(model_s)
            self.live.model.append(model_s)
            if not _put(self.to_encode, (frame, result), self.stop):
                break
        _put(self.to_encode, _END, self.stop)

    @contextlib.contextmanager
    def ctrl_c_ends_reading(self) -> Iterator[None]:
        """For a live source: the first Ctrl-C stops the reading (the frames read are finished), the
        second aborts. Signal handlers belong to the main thread; elsewhere Ctrl-C keeps aborting."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            if self.stop_reading.is_set():
                raise KeyboardInterrupt
            self.stop_reading.set()
            self.stats.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def run_stream(
    frames: Iterator[np.ndarray],
    infer: Infer,
    encode: Encode,
    *,
    max_frames: int | None = None,
    queue_size: int = QUEUE_SIZE,
    live: bool = False,
    total: int | None = None,
    progress: bool = True,
) -> StreamStats:
    """Stream ``frames`` through ``infer`` into ``encode`` with the three stages overlapped (module doc).

    An error in any stage stops all three and is raised here; so is Ctrl-C, unless ``live``.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    s = _Stream(queue_size)
    bar = tqdm(total=total, desc="predict", unit="frame", disable=not progress)
    start = time.perf_counter()
    decoder = threading.Thread(target=s.decode, args=(frames, max_frames), name="decode", daemon=True)
    encoder = threading.Thread(target=s.encode, args=(encode, bar), name="encode", daemon=True)
    decoder.start()
    encoder.start()
    try:
        with s.ctrl_c_ends_reading() if live else contextlib.nullcontext():
            s.infer(infer)
            encoder.join()
    except BaseException:
        s.stop.set()
        raise
    finally:
        s.stop.set()
        decoder.join()
        encoder.join()
        bar.close()
    if s.errors:
        raise s.errors[0]
    s.stats.wall = (s.stats.done[-1] if s.stats.done else time.perf_counter()) - start
    return s.stats
