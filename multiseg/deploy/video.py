"""``multiseg predict CHECKPOINT SOURCE --out OUT.mp4``: an overlay video of a video file, a folder of
frames or a camera, streamed.

SOURCE is read by :mod:`.video_io`, frames stream through the model in :mod:`.stream` (decode, infer and
encode overlapped, at most a few frames in memory) and the overlay is written to a temporary file beside
OUT that is renamed when the video is complete, so an error or Ctrl-C leaves no half-written video (a
camera, which runs until stopped, ends on Ctrl-C and keeps what it recorded).

What is drawn: the unified map (:mod:`multiseg.evaluate.unified`) of every head when they give one,
else the one head chosen with ``--heads NAME``, blended on the frame as in the image outputs, with the
live FPS in the corner. The output has the source's size and frame rate (a folder of frames: 10 fps)
unless ``--out-size``/``--fps`` say otherwise; ``--every N`` keeps every Nth frame and divides the
default frame rate by N, so the video keeps its duration. The network sees each frame fit-resized to
the run's size (``--size``, ``--full-size`` as for images), and the class maps are upsampled back to
the output size before the argmax.

Backends: torch runs the checkpoint with its BatchNorm folded into the convolutions (the same outputs up
to rounding, fewer layers) under ``inference_mode``; ``--backend onnxruntime`` runs an ONNX export of it.
The printed summary gives the frames, the model's FPS alone and end to end, and the per-frame time of
each stage (:class:`~multiseg.deploy.stream.StreamStats`). The stages: decode (read, resize to the
output size), infer (resize to the network size, normalise, the network), encode (the class maps
upsampled to the output size and argmaxed, the unified map, colour, blend, caption, write). The
upsampling is the encoder's so that it runs beside the next frame's network, not after it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from multiseg.data.pipeline import normalize_on_device
from multiseg.deploy.predict import (
    Backend,
    OrtBackend,
    PredictOptions,
    TorchBackend,
    choose_heads,
    export_for_ort,
    load_for_predict,
    network_size,
    output_style,
    overlay,
    run_predict,
)
from multiseg.deploy.stream import run_stream
from multiseg.deploy.video_io import CONTAINERS, camera_index, is_video_name, open_source, open_writer
from multiseg.errors import MultisegError
from multiseg.evaluate.unified import can_unify, unified_from_labels, unified_palette_lut
from multiseg.evaluate.upsample import upsample_argmax
from multiseg.files import atomic_path
from multiseg.models import MultiHeadSegmenter
from multiseg.models.universal import UNIVERSAL


@dataclass
class VideoOptions(PredictOptions):
    """What ``multiseg predict`` was asked for, with the options only a video has."""

    every: int = 1  # keep every Nth frame
    max_frames: int | None = None
    out_size: tuple[int, int] | None = None  # (width, height); None: the source's
    fps: float | None = None  # None: the source's, divided by ``every``
    codec: str | None = None  # a FOURCC; None: the container's default (CONTAINERS)

    def video_only(self) -> list[str]:
        """The video-only options set away from their defaults (an error for images)."""
        given = {
            "--every": self.every != 1, "--max-frames": self.max_frames is not None,
            "--out-size": self.out_size is not None, "--fps": self.fps is not None,
            "--codec": self.codec is not None,
        }  # fmt: skip
        return [name for name, set_ in given.items() if set_]


def predict_images_or_video(checkpoint: Path, inputs: Sequence[Path], out: Path, opts: VideoOptions) -> str:
    """``multiseg predict``: a video when asked for one (:func:`wants_video`), else images (predict.py)."""
    if wants_video(inputs, out):
        return run_video_predict(checkpoint, inputs, out, opts)
    if given := opts.video_only():
        raise MultisegError(f"{', '.join(given)}: only for a video --out (e.g. --out overlay.mp4)")
    return run_predict(checkpoint, inputs, out, opts)


def wants_video(inputs: Sequence[Path], out: Path) -> bool:
    """Whether ``multiseg predict`` is asked for a video: ``--out`` names one (a video or camera SOURCE
    with an output folder is a user error)."""
    if is_video_name(out):
        return True
    sources = [str(s) for s in inputs]
    if any(camera_index(s) is not None or (is_video_name(s) and Path(s).is_file()) for s in sources):
        raise MultisegError(
            f"{sources[0] if len(sources) == 1 else 'SOURCE'} is a video or a camera: give --out a video "
            f"file name ({', '.join(CONTAINERS)}), e.g. --out overlay.mp4"
        )
    return False


def what_to_draw(model: MultiHeadSegmenter, heads: list[str]) -> str:
    """``"unified"`` when the heads give a unified map (and are several), ``"universal"`` for a universal
    model, else the one head."""
    if len(heads) == 1:
        return heads[0]
    if UNIVERSAL in heads:  # a universal model's unified map: its universal argmax
        return UNIVERSAL
    if can_unify({h: model.num_classes[h] for h in heads}):
        return "unified"
    raise MultisegError(
        f"heads {heads} give no unified map (it needs a 19-class cityscapes or a v1.2 vistas head): "
        "choose the one to draw with --heads NAME"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_infer(
    backend: Backend, device: torch.device, net_size: tuple[int, int]
) -> Callable[[np.ndarray], tuple[dict[str, torch.Tensor], float]]:
    """frame (RGB, output size) -> (each head's logits at network size, seconds in the network)."""

    def infer(frame: np.ndarray) -> tuple[dict[str, torch.Tensor], float]:
        same = (frame.shape[1], frame.shape[0]) == net_size
        net_in = frame if same else cv2.resize(frame, net_size, interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(net_in.transpose(2, 0, 1)))[None]
        x = normalize_on_device(x.to(device))
        _sync(device)
        start = time.perf_counter()
        logits = backend(x)
        _sync(device)
        return logits, time.perf_counter() - start

    return infer


def class_map(logits: dict[str, torch.Tensor], show: str, height_width: tuple[int, int]) -> np.ndarray:
    """The drawn map's class ids (uint8, 255 = none) at the output size, from each head's logits."""
    labels = {h: upsample_argmax(v[0], height_width) for h, v in logits.items()}
    if show != "unified":
        return labels[show].to(torch.uint8).cpu().numpy()
    ids = unified_from_labels(labels)
    return torch.where(ids < 0, torch.full_like(ids, 255), ids).to(torch.uint8).cpu().numpy()


def draw_caption(image: np.ndarray, text: str) -> None:
    """``text`` in white on a dark box in the top-left corner, sized to the frame (in place)."""
    if not text:
        return
    scale = max(0.35, image.shape[0] / 700)
    thickness = max(1, round(scale * 1.5))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(3, round(4 * scale))
    cv2.rectangle(image, (0, 0), (w + 2 * pad, h + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(
        image, text, (pad, h + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA
    )


def make_encode(
    writer: cv2.VideoWriter, palette: np.ndarray, show: str
) -> Callable[[np.ndarray, dict[str, torch.Tensor], str], None]:
    """Class map at the frame's size, coloured and blended on the frame, the live FPS drawn, written."""

    def encode(frame: np.ndarray, logits: dict[str, torch.Tensor], caption: str) -> None:
        image = overlay(frame, palette[class_map(logits, show, frame.shape[:2])])
        draw_caption(image, caption)
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    return encode


def _resized(frames: Iterator[np.ndarray], size: tuple[int, int]) -> Iterator[np.ndarray]:
    for frame in frames:
        yield (
            frame
            if (frame.shape[1], frame.shape[0]) == size
            else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        )


def _check(opts: VideoOptions, inputs: Sequence[Path], out: Path) -> None:
    if len(inputs) != 1:
        raise MultisegError(
            f"a video takes one SOURCE (a video file, a frame folder or a camera index), not {len(inputs)}"
        )
    if opts.every < 1:
        raise MultisegError(f"--every {opts.every}: expected a whole number >= 1")
    if opts.max_frames is not None and opts.max_frames < 1:
        raise MultisegError(f"--max-frames {opts.max_frames}: expected a whole number >= 1")
    if opts.fps is not None and not 0 < opts.fps <= 1000:
        raise MultisegError(f"--fps {opts.fps}: expected a frame rate in (0, 1000]")
    if opts.submission:
        raise MultisegError("--submission is for Cityscapes test images, not videos")
    if out.is_dir():
        raise MultisegError(f"--out {out} is a folder; give a video file name, e.g. {out / 'overlay.mp4'}")


@dataclass
class _Model:
    """What runs on every frame: the backend, where, at what size, and what is drawn in which colours."""

    backend: Backend
    device: torch.device
    net_size: tuple[int, int]
    show: str
    palette: np.ndarray


def _prepare(checkpoint: Path, opts: VideoOptions, out_size: tuple[int, int], workdir: Path) -> _Model:
    from multiseg.train.device import resolve_device

    model, fit_default = load_for_predict(checkpoint)
    heads = choose_heads(model, opts.heads, False)
    show = what_to_draw(model, heads)
    palette = unified_palette_lut() if show == "unified" else output_style(model, show).palette
    fit = None if opts.full_size else (opts.size or fit_default)
    if opts.backend == "onnxruntime":
        onnx = opts.onnx or export_for_ort(model, heads, fit, workdir)
        backend: Backend = OrtBackend(onnx, heads, model.output_stride)
        device = torch.device("cpu")
    elif opts.backend == "torch":
        device = resolve_device(opts.device)
        backend = TorchBackend(model, heads, device, plain=opts.plain)
    else:
        raise MultisegError(f"--backend {opts.backend!r}: expected torch or onnxruntime")
    return _Model(backend, device, network_size(*out_size, fit), show, palette)


def run_video_predict(checkpoint: Path, inputs: Sequence[Path], out: Path, opts: VideoOptions) -> str:
    """``multiseg predict`` on a video, a folder of frames or a camera; returns the summary lines.

    The source and the output are checked first (cheap), then the model is loaded.
    """
    out = Path(out)
    _check(opts, inputs, out)
    source = open_source(inputs[0])
    try:
        out_size = opts.out_size or source.size
        fps = opts.fps or source.fps / opts.every
        with atomic_path(out) as partial, tempfile.TemporaryDirectory(prefix="multiseg-onnx-") as tmp:
            writer = open_writer(partial, out, fps, out_size, opts.codec)
            try:
                m = _prepare(checkpoint, opts, out_size, Path(tmp))
                stats = run_stream(
                    _resized(source.frames(opts.every), out_size),
                    make_infer(m.backend, m.device, m.net_size),
                    make_encode(writer, m.palette, m.show),
                    max_frames=opts.max_frames, live=source.live, total=_total(source.total, opts),
                )  # fmt: skip
            finally:
                writer.release()
    finally:
        source.close()
    threads = f", {torch.get_num_threads()} threads" if m.device.type == "cpu" else ""
    skipped = f" (1 in {opts.every} of {source.decoded} decoded)" if opts.every > 1 else ""
    codec = opts.codec or CONTAINERS.get(out.suffix.lower())
    width, height = out_size
    lines = [
        f"video: {stats.written} frames written of {stats.read} read{skipped}, {width}x{height} at "
        f"{fps:g} fps, {m.show} overlay -> {out} ({codec}); network input {m.net_size[0]}x{m.net_size[1]} "
        f"({opts.backend}, {m.device.type}{threads})",
        stats.summary(),
    ]
    if stats.interrupted:
        lines.append(f"stopped by Ctrl-C: the {stats.written} frames read before are in the video")
    return "\n".join(lines)


def _total(total: int | None, opts: VideoOptions) -> int | None:
    if total is None:
        return opts.max_frames
    kept = -(-total // opts.every)
    return kept if opts.max_frames is None else min(kept, opts.max_frames)
