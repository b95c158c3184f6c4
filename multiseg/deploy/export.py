"""ONNX export of a multi-head model, with a torch-vs-ONNX-Runtime parity check.

The graph takes ``input`` (N x 3 x H x W) and returns one output per chosen head, named after it. With
``dynamic=True`` the batch and the spatial size are dynamic; H and W stay multiples of the model's
output stride (expressed to the exporter as ``stride * Dim(...)``, see specs/environment.md 7).
BatchNorm is folded into the convs first (eval graph). The default exporter is torch's dynamo-based
one (needs ``onnxscript``); ``legacy=True`` uses the TorchScript-based one.

The exported graph is fp32; :mod:`multiseg.deploy.quantize` derives int8 graphs from it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from multiseg.deploy.quantize import (
    calibration_inputs,
    int8_accuracy,
    int8_path_for,
    int8_text,
    quantize_int8,
)
from multiseg.deploy.runtime import median_ms, ort_session, ort_settings_text, require
from multiseg.errors import MultisegError
from multiseg.models.fold import fold_batchnorm
from multiseg.models.layers import ChannelAffine
from multiseg.models.multihead import HeadsAsTuple, MultiHeadSegmenter

DEFAULT_OPSET = 18
#: ``--dtype`` of ``multiseg export`` and of ``multiseg bench --backend onnxruntime``.
ORT_DTYPES = ("fp32", "int8")
#: Head tables of ``--heads one`` / ``--heads all`` (``multiseg bench``) and the class counts
#: ``multiseg export --heads NAME`` assumes for a bare name.
HEAD_SETS: dict[str, dict[str, int]] = {
    "one": {"cityscapes": 19},
    "all": {"cityscapes": 19, "gtsdb": 44, "vistas": 65, "lanes": 5},
}


@dataclass
class ParityResult:
    """Max absolute difference between torch and ONNX Runtime logits for one input shape."""

    shape: tuple[int, ...]
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values())


def export_onnx(
    model: MultiHeadSegmenter,
    path: str | Path,
    heads: Sequence[str] | None = None,
    sample_size: tuple[int, int] = (512, 1024),
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    fold_bn: bool = True,
    legacy: bool = False,
) -> Path:
    """Write ``model`` (chosen ``heads``, default all) as an ONNX file; returns its path."""
    require("onnx")
    if not legacy:
        require("onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    decompose_prelu_(net)
    affine_as_depthwise_conv_(net)
    wrapper = HeadsAsTuple(net, heads).eval()
    stride = model.output_stride
    h, w = sample_size
    if h % stride or w % stride:
        raise MultisegError(
            f"export: --size {h}x{w} is not a multiple of the output stride {stride} "
            f"(e.g. {-(-h // stride) * stride}x{-(-w // stride) * stride} is); change --size"
        )
    example = torch.randn(1, 3, h, w)
    names = list(wrapper.head_order)
    # The exporter logs one warning per torchvision op it cannot register (torchvision is not a
    # dependency), and onnx_ir one per empty attribute list it types as INTS (the right type here).
    quiet = [logging.getLogger(n) for n in ("torch.onnx._internal.exporter._registration", "onnx_ir")]
    old_levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if legacy:
                _export_legacy(wrapper, example, path, names, dynamic, opset)
            else:
                _export_dynamo(wrapper, example, path, names, stride if dynamic else None, opset)
    finally:
        for log, level in zip(quiet, old_levels, strict=True):
            log.setLevel(level)
    return path


class DecomposedPReLU(nn.Module):
    """``nn.PReLU`` from elementwise ops, which ONNX Runtime runs faster than its PRelu node.

    With every slope ``a <= 1`` it is ``max(x, a * x)`` (exact: ``a * x <= x`` for ``x >= 0`` and
    ``a * x >= x`` for ``x < 0``), else ``relu(x) + a * min(x, 0)``. Measured on ENet at 512x1024,
    2 threads: the PRelu node is about 10 % slower than the second form, which is about 10 % slower
    than the first.
    """

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.slope = nn.Parameter(prelu.weight.detach().reshape(1, -1, 1, 1).clone())
        self.two_ops = bool((self.slope <= 1).all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.two_ops:
            return torch.maximum(x, self.slope * x)
        return torch.relu(x) + self.slope * torch.clamp(x, max=0)


def decompose_prelu_(model: nn.Module) -> None:
    """Replace every ``nn.PReLU`` in ``model`` by :class:`DecomposedPReLU`, in place (export only)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.PReLU):
                setattr(module, name, DecomposedPReLU(child))


def affine_as_depthwise_conv_(model: nn.Module) -> None:
    """Replace every per-channel affine (:class:`ChannelAffine`) by a 1x1 depthwise conv, in place.

    Exact (one product and one sum per element either way). It matters to ONNX Runtime's NCHWc layout
    pass, which keeps a tensor in its blocked layout only through ops it knows: a Mul + Add pair after the
    downsamplers' max-pool branch drops the concatenation, and with it every residual block after it,
    back to NCHW; as a conv it stays blocked. ERFNet: 41 layout reorders per frame -> 11.
    """
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, ChannelAffine):
                channels = child.scale.numel()
                conv = nn.Conv2d(channels, channels, 1, groups=channels, bias=True)
                with torch.no_grad():
                    conv.weight.copy_(child.scale.view(channels, 1, 1, 1))
                    conv.bias.copy_(child.shift.view(channels))
                setattr(module, name, conv)


def _export_legacy(
    wrapper: torch.nn.Module, example: torch.Tensor, path: Path, names: list[str], dynamic: bool, opset: int
) -> None:
    axes = None
    if dynamic:
        axes = {n: {0: "batch", 2: "height", 3: "width"} for n in ["input", *names]}
    torch.onnx.export(
        wrapper, (example,), str(path), input_names=["input"], output_names=names,
        dynamic_axes=axes, opset_version=opset, dynamo=False,
    )  # fmt: skip


def _export_dynamo(
    wrapper: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    names: list[str],
    stride: int | None,
    opset: int,
) -> None:
    """Dynamo export; with ``stride``, H and W are dynamic multiples of it (``stride * Dim``)."""
    shapes = None
    if stride is not None:
        dim = torch.export.Dim
        blocks = 8192 // stride
        shapes = (
            {
                0: dim("batch", min=1, max=256),
                2: stride * dim("h_blocks", min=1, max=blocks),
                3: stride * dim("w_blocks", min=1, max=blocks),
            },
        )
    program = torch.onnx.export(
        wrapper, (example,), input_names=["input"], output_names=names,
        dynamic_shapes=shapes, opset_version=opset, dynamo=True,
    )  # fmt: skip
    if program is None:  # pragma: no cover - torch returns the program with dynamo=True
        raise MultisegError("export: the dynamo exporter returned no program")
    program.save(str(path))


@torch.inference_mode()
def check_parity(
    model: MultiHeadSegmenter,
    path: str | Path,
    shapes: Sequence[tuple[int, int, int, int]],
    heads: Sequence[str] | None = None,
    seed: int = 0,
) -> list[ParityResult]:
    """Run the eval-mode torch model and the ONNX file on the same random inputs; max |diff| per head."""
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    wanted = list(heads) if heads is not None else model.head_names
    if names != wanted:
        raise MultisegError(f"export: {path} outputs {names}, expected {wanted}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    results = []
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        expected = model(x, heads=wanted)
        got = session.run(None, {"input": x.numpy()})
        diffs = {
            n: float(np.abs(expected[n].numpy() - np.asarray(g)).max())
            for n, g in zip(wanted, got, strict=True)
        }
        results.append(ParityResult(tuple(shape), diffs))
    return results


def parse_heads(text: str | None, known: dict[str, int] | None = None) -> dict[str, int]:
    """``"cityscapes:19,gtsdb:44"`` -> dict; a bare name takes its class count from ``known``."""
    table = dict(HEAD_SETS["all"]) if known is None else dict(known)
    heads: dict[str, int] = {}
    for item in (text or "cityscapes:19").split(","):
        name, _, classes = item.strip().partition(":")
        if classes:
            if not classes.isdigit():
                raise MultisegError(f"--heads: {item!r} is not name:classes")
            heads[name] = int(classes)
        elif name in table:
            heads[name] = table[name]
        else:
            raise MultisegError(f"--heads: give the class count of {name!r} as {name}:CLASSES")
    return heads


def parity_shapes(size: tuple[int, int], stride: int, dynamic: bool) -> list[tuple[int, int, int, int]]:
    """The export size at batch 1, plus (dynamic graphs) a batch of 2 at another valid size."""
    h, w = size
    shapes = [(1, 3, h, w)]
    if dynamic:
        other_h = max(stride, (h // 2) // stride * stride)
        other_w = (w // 2) // stride * stride + stride
        shapes.append((2, 3, other_h, other_w))
    return shapes


def export_report(
    onnx_path: Path,
    model: MultiHeadSegmenter,
    heads: Sequence[str] | None,
    size: tuple[int, int],
    dynamic: bool = True,
    legacy: bool = False,
    opset: int = DEFAULT_OPSET,
    dtype: str = "fp32",
    quant_format: str = "qdq",
    calib_images: str | Path | None = None,
    calib_count: int = 8,
    threads: int | None = None,
) -> str:
    """Export, check parity, time ORT runs; return the lines ``multiseg export`` prints.

    ``dtype="int8"``: the fp32 graph is written beside ``onnx_path`` (``NAME.fp32.onnx``) and checked as
    usual; ``onnx_path`` gets its int8 quantisation, whose accuracy against fp32 torch is printed on
    held-out inputs (the next ``calib_count`` images after the calibration ones, or other random inputs).
    """
    import time

    if dtype not in ORT_DTYPES:
        raise MultisegError(f"export: dtype {dtype!r} is not one of {', '.join(ORT_DTYPES)}")
    fp32_path, int8_path = int8_path_for(onnx_path) if dtype == "int8" else (onnx_path, None)
    start = time.perf_counter()
    path = export_onnx(model, fp32_path, heads, size, dynamic=dynamic, opset=opset, legacy=legacy)
    seconds = time.perf_counter() - start
    names = list(heads) if heads is not None else model.head_names
    lines = [
        f"exported {model.name} heads [{', '.join(names)}] to {path} in {seconds:.1f} s "
        f"({f'dynamic batch and HxW, multiples of {model.output_stride}' if dynamic else 'static shape'}, "
        f"opset {opset}, {'legacy' if legacy else 'dynamo'} exporter, BN folded, fp32)"
    ]
    for result in check_parity(model, path, parity_shapes(size, model.output_stride, dynamic), heads):
        diffs = ", ".join(f"{h} {d:.2e}" for h, d in result.max_abs_diff.items())
        lines.append(f"parity torch vs onnxruntime at {'x'.join(map(str, result.shape))}: max |diff| {diffs}")
    feed = {"input": torch.randn(1, 3, *size).numpy()}
    timed = {"fp32": median_ms(ort_session(path, threads, spinning=False), feed)}
    if int8_path is not None:
        start = time.perf_counter()
        calibration = calibration_inputs(size, calib_count, calib_images, seed=1)
        quantize_int8(path, int8_path, calibration, quant_format=quant_format)
        lines.append(
            f"quantised to {int8_path} in {time.perf_counter() - start:.1f} s: "
            f"{int8_text(quant_format, calib_count, calib_images)}"
        )
        held_out = calibration_inputs(size, 2, calib_images, seed=2, skip=calib_count)
        accuracy = int8_accuracy(model, int8_path, held_out, heads)
        lines.append(
            f"int8 accuracy vs fp32 torch on {accuracy.inputs} held-out inputs at 1x3x{size[0]}x{size[1]}: "
            f"{accuracy.text()}"
        )
        timed["int8"] = median_ms(ort_session(int8_path, threads, spinning=False), feed)
    lines.append(
        f"onnxruntime CPU run at 1x3x{size[0]}x{size[1]} ({ort_settings_text(threads, False)}), median of 3: "
        + ", ".join(f"{k} {ms:.1f} ms" for k, ms in timed.items())
    )
    return "\n".join(lines)


def run_export(args: argparse.Namespace, size: tuple[int, int]) -> str:
    """``multiseg export``: the model from ``--model`` or ``--checkpoint``, then :func:`export_report`."""
    from multiseg.models import create_model, model_from_checkpoint

    heads_arg: str | None = getattr(args, "heads", None)
    checkpoint: Path | None = getattr(args, "checkpoint", None)
    model_name: str | None = getattr(args, "model", None)
    chosen_note = ""
    if checkpoint is None and model_name is None:
        checkpoint, chosen_note = default_export_source()
        model_name = DEFAULT_EXPORT_MODEL
    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
        chosen = None if heads_arg is None else [h.split(":")[0].strip() for h in heads_arg.split(",")]
    else:
        heads = parse_heads(heads_arg)
        model = create_model(model_name, heads=heads, head_mode=getattr(args, "head_mode", "decoder"))
        chosen = None
    report = export_report(
        args.onnx, model, chosen, size,
        dynamic=not getattr(args, "static", False), legacy=getattr(args, "legacy", False),
        opset=getattr(args, "opset", DEFAULT_OPSET), dtype=getattr(args, "dtype", "fp32"),
        quant_format=getattr(args, "quant_format", "qdq"), calib_images=getattr(args, "calib_images", None),
        calib_count=getattr(args, "calib_count", 8), threads=getattr(args, "threads", None),
    )  # fmt: skip
    return f"{chosen_note}\n{report}" if chosen_note else report


#: What ``multiseg export`` exports with neither ``--model`` nor ``--checkpoint`` and no run to take.
DEFAULT_EXPORT_MODEL = "erfnet"


def default_export_source() -> tuple[Path | None, str]:
    """``multiseg export`` without ``--model`` or ``--checkpoint``: the newest run's checkpoint, or nothing.

    Looks in the default run folders (relative to the current folder): ``runs/demo``, where
    ``multiseg train`` without a config writes, and ``runs/train``, TrainConfig's ``out_dir``. The run
    whose newest checkpoint is the newest gives its ``best.pt`` (else ``last.pt``); with no run there,
    None: :data:`DEFAULT_EXPORT_MODEL` with random weights. The second value says which, in one line.
    """
    from multiseg.train.config import TrainConfig, demo_overrides

    folders = [Path(str(demo_overrides()["out_dir"])), Path(TrainConfig().out_dir)]
    found = [c for folder in folders for c in folder.glob("*/*.pt") if c.name in ("best.pt", "last.pt")]
    if not found:
        where = " or ".join(str(f) for f in folders)
        return None, (
            f"export: no --model or --checkpoint, and no run under {where}: "
            f"{DEFAULT_EXPORT_MODEL} (the default model) with random weights"
        )
    newest = max(found, key=lambda c: c.stat().st_mtime).parent
    ckpt = newest / "best.pt" if (newest / "best.pt").is_file() else newest / "last.pt"
    return ckpt, f"export: no --model or --checkpoint: the newest run's {ckpt.stem} checkpoint, {ckpt}"
