"""ONNX export of a multi-head model, with a torch-vs-ONNX-Runtime parity check.

The graph takes ``input`` (N x 3 x H x W) and returns one output per chosen head, named after it. With
``dynamic=True`` the batch and the spatial size are dynamic; H and W stay multiples of the model's
output stride (expressed to the exporter as ``stride * Dim(...)``, see specs/environment.md 7).
BatchNorm is folded into the convs first (eval graph). The default exporter is torch's dynamo-based
one (needs ``onnxscript``); ``legacy=True`` uses the TorchScript-based one.

Precision: the exported graph is fp32. :func:`quantize_int8` derives an int8 graph from it by static
post-training quantisation with ``onnxruntime.quantization`` (QDQ format by default, per-channel
symmetric int8 weights, uint8 activations, MinMax ranges from a few calibration inputs); it is always a
separate file, and :func:`int8_accuracy` measures what it costs against fp32 torch (max |logit diff|,
argmax agreement). On CPUs with AVX512-VNNI / AVX-VNNI, ONNX Runtime runs its convs as u8s8 int8 GEMMs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from multiseg.errors import MultisegError
from multiseg.models.fold import fold_batchnorm
from multiseg.models.multihead import HeadsAsTuple, MultiHeadSegmenter

DEFAULT_OPSET = 18
#: ``--dtype`` of ``multiseg export`` and of ``multiseg bench --backend onnxruntime``.
ORT_DTYPES = ("fp32", "int8")
#: ``onnxruntime.quantization`` formats: Q/DQ pairs around float ops (fused by ORT), or QLinear* ops.
QUANT_FORMATS = ("qdq", "qoperator")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


@dataclass
class ParityResult:
    """Max absolute difference between torch and ONNX Runtime logits for one input shape."""

    shape: tuple[int, ...]
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values())


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as err:
        raise MultisegError(f"ONNX export needs {module!r}: pip install 'multiseg[onnx]'") from err


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
    _require("onnx")
    if not legacy:
        _require("onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    decompose_prelu_(net)
    wrapper = HeadsAsTuple(net, heads).eval()
    stride = model.output_stride
    h, w = sample_size
    if h % stride or w % stride:
        raise MultisegError(f"export: sample size {h}x{w} is not a multiple of the output stride {stride}")
    example = torch.randn(1, 3, h, w)
    names = list(wrapper.head_order)
    # The exporter logs one warning per torchvision op it cannot register; torchvision is not a dependency.
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    old_level = registration_log.level
    registration_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if legacy:
                _export_legacy(wrapper, example, path, names, dynamic, opset)
            else:
                _export_dynamo(wrapper, example, path, names, stride if dynamic else None, opset)
    finally:
        registration_log.setLevel(old_level)
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


def ort_session(
    path: str | Path,
    threads: int | None = None,
    spinning: bool | None = None,
    optimization: str = "all",
):  # noqa: ANN201 - onnxruntime is optional
    """An ONNX Runtime CPU session for ``path``.

    ``threads``: intra-op threads (inter-op 1, sequential execution); None = ORT's default.
    ``spinning``: ``session.intra_op.allow_spinning``; None = ORT's default (on). Off lets idle worker
    threads sleep between ops instead of busy-waiting. On the project's 2-core hosts shared with
    training jobs, off was 5-45 % faster at 2 threads (ENet and ESPNet most: many short ops); on a
    momentarily idle host spinning can be faster. ``benchmarks/bench_models.py`` times both.
    ``optimization``: graph optimisation level, ``all`` (default: includes the NCHWc layout transformer
    on x86), ``extended``, ``basic`` or ``disabled``.
    """
    _require("onnxruntime")
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise MultisegError(f"onnxruntime: optimization {optimization!r} is not one of {', '.join(levels)}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.graph_optimization_level = levels[optimization]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_settings_text(threads: int | None, spinning: bool | None, optimization: str = "all") -> str:
    """How :func:`ort_session` was configured, for protocol lines."""
    spin = "ORT default (on)" if spinning is None else ("on" if spinning else "off")
    pool = f"intra-op threads {threads}, inter-op 1" if threads else "ORT default thread pools"
    return f"ORT {optimization.upper()} graph optimisations, {pool}, sequential, spinning {spin}"


# ---------------------------------------------------------------- int8


def calibration_inputs(
    size: tuple[int, int], count: int, images: str | Path | None = None, seed: int = 0, skip: int = 0
) -> list[np.ndarray]:
    """``count`` float32 1x3xHxW inputs for int8 calibration or its accuracy check.

    With ``images`` (a folder, searched recursively, e.g. the demo world's ``cityscapes/leftImg8bit``):
    its images in name order after the first ``skip``, resized to ``size`` and ImageNet-normalised as
    in training. Without: standard-normal noise from ``seed`` (what ``multiseg bench`` times).
    """
    h, w = size
    if images is None:
        rng = np.random.default_rng(seed)
        return [rng.standard_normal((1, 3, h, w), dtype=np.float32) for _ in range(count)]
    import cv2

    from multiseg.data.io import read_image
    from multiseg.data.pipeline import normalize_on_device

    folder = Path(images)
    files = (
        sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    )
    files = files[skip : skip + count]
    if len(files) < count:
        raise MultisegError(
            f"int8 calibration: {folder} has {len(files)} images ({', '.join(IMAGE_SUFFIXES)}) "
            f"after the first {skip}, {count} needed"
        )
    out = []
    for f in files:
        rgb = cv2.resize(read_image(f), (w, h), interpolation=cv2.INTER_LINEAR)
        chw = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        out.append(normalize_on_device(chw).numpy())
    return out


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Sequence[np.ndarray],
    quant_format: str = "qdq",
    per_channel: bool = True,
) -> Path:
    """Static int8 quantisation of the fp32 ONNX file ``fp32_path`` into ``out_path`` (a new file).

    ``onnxruntime.quantization``: the graph is pre-processed (shape inference, ORT basic optimisation),
    activation ranges come from running ``calibration`` (MinMax), weights are symmetric int8 (per output
    channel with ``per_channel``), activations asymmetric uint8: the u8s8 combination ORT runs with
    VNNI instructions on x86. ``quant_format`` ``qdq`` writes QuantizeLinear/DequantizeLinear pairs that
    ORT fuses into QLinear kernels when it loads the graph; ``qoperator`` writes QLinearConv etc. directly.
    """
    _require("onnxruntime")
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if quant_format not in QUANT_FORMATS:
        raise MultisegError(f"int8: format {quant_format!r} is not one of {', '.join(QUANT_FORMATS)}")
    if not calibration:
        raise MultisegError("int8: at least one calibration input is needed")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if fp32_path.resolve() == out_path.resolve():
        raise MultisegError("int8: the quantised graph must not overwrite the fp32 one")
    out_path.parent.mkdir(parents=True, exist_ok=True)

    class _Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([{"input": x} for x in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    quant_log = logging.getLogger()
    old_level = quant_log.level
    quant_log.setLevel(logging.ERROR)  # ORT's quantiser logs advice and per-tensor notes at WARNING
    try:
        with tempfile.TemporaryDirectory(prefix="multiseg-int8-") as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            q.quantize_static(
                str(pre), str(out_path), _Reader(),
                quant_format=q.QuantFormat.QDQ if quant_format == "qdq" else q.QuantFormat.QOperator,
                per_channel=per_channel, activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                calibrate_method=q.CalibrationMethod.MinMax,
            )  # fmt: skip
    finally:
        quant_log.setLevel(old_level)
    return out_path


def int8_text(quant_format: str, calib_count: int, calib_images: str | Path | None) -> str:
    """How :func:`quantize_int8` was applied, for protocol lines."""
    source = f"images of {calib_images}" if calib_images else "random N(0,1) inputs"
    return (
        f"int8 = static ORT quantisation ({quant_format.upper()}, per-channel symmetric s8 weights, "
        f"u8 activations, MinMax ranges from {calib_count} {source})"
    )


@dataclass
class Int8Accuracy:
    """What int8 costs against the fp32 torch model on held-out inputs, per head."""

    inputs: int
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    argmax_agreement: dict[str, float] = field(default_factory=dict)
    logit_abs_max: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        return "; ".join(
            f"{h} max |logit diff| {self.max_abs_diff[h]:.2e} (fp32 |logit| <= {self.logit_abs_max[h]:.2g}), "
            f"argmax agreement {100 * self.argmax_agreement[h]:.2f} %"
            for h in self.max_abs_diff
        )


@torch.inference_mode()
def int8_accuracy(
    model: MultiHeadSegmenter,
    int8_path: str | Path,
    inputs: Sequence[np.ndarray],
    heads: Sequence[str] | None = None,
) -> Int8Accuracy:
    """Max |logit diff| and the fraction of pixels with the same argmax, int8 ORT vs fp32 eval torch."""
    session = ort_session(int8_path)
    wanted = list(heads) if heads is not None else model.head_names
    names = [o.name for o in session.get_outputs()]
    model.eval()
    result = Int8Accuracy(inputs=len(inputs))
    same: dict[str, int] = dict.fromkeys(wanted, 0)
    total: dict[str, int] = dict.fromkeys(wanted, 0)
    for x in inputs:
        expected = model(torch.from_numpy(x), heads=wanted)
        got = dict(zip(names, session.run(None, {"input": x}), strict=True))
        for h in wanted:
            ref, q = expected[h].numpy(), np.asarray(got[h])
            result.max_abs_diff[h] = max(result.max_abs_diff.get(h, 0.0), float(np.abs(ref - q).max()))
            result.logit_abs_max[h] = max(result.logit_abs_max.get(h, 0.0), float(np.abs(ref).max()))
            same[h] += int((ref.argmax(1) == q.argmax(1)).sum())
            total[h] += ref.shape[0] * ref.shape[2] * ref.shape[3]
    result.argmax_agreement = {h: same[h] / total[h] for h in wanted}
    return result


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
    from multiseg.bench import HEAD_SETS

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


def _median_ms(session, feed: dict[str, np.ndarray], runs: int = 3) -> float:  # noqa: ANN001
    import time

    session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def int8_path_for(onnx_path: Path) -> tuple[Path, Path]:
    """(fp32 file, int8 file) of ``export --dtype int8 --onnx FILE``: FILE is int8, the fp32 one beside it."""
    return onnx_path.with_name(f"{onnx_path.stem}.fp32{onnx_path.suffix or '.onnx'}"), onnx_path


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
    timed = {"fp32": _median_ms(ort_session(path, threads, spinning=False), feed)}
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
        timed["int8"] = _median_ms(ort_session(int8_path, threads, spinning=False), feed)
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
    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
        chosen = None if heads_arg is None else [h.split(":")[0].strip() for h in heads_arg.split(",")]
    else:
        heads = parse_heads(heads_arg)
        model = create_model(args.model, heads=heads, head_mode=getattr(args, "head_mode", "decoder"))
        chosen = None
    return export_report(
        args.onnx, model, chosen, size,
        dynamic=not getattr(args, "static", False), legacy=getattr(args, "legacy", False),
        opset=getattr(args, "opset", DEFAULT_OPSET), dtype=getattr(args, "dtype", "fp32"),
        quant_format=getattr(args, "quant_format", "qdq"), calib_images=getattr(args, "calib_images", None),
        calib_count=getattr(args, "calib_count", 8), threads=getattr(args, "threads", None),
    )  # fmt: skip
