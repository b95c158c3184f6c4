"""Static int8 post-training quantisation of an exported fp32 ONNX graph, and what it costs in accuracy.

:func:`quantize_int8` derives an int8 graph from the fp32 one with ``onnxruntime.quantization`` (QDQ
format by default, per-channel symmetric int8 weights, uint8 activations, MinMax ranges from a few
calibration inputs); it is always a separate file, and :func:`int8_accuracy` measures what it costs
against fp32 torch (max |logit diff|, argmax agreement). On CPUs with AVX512-VNNI / AVX-VNNI, ONNX
Runtime runs its convs as u8s8 int8 GEMMs.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from multiseg.deploy.runtime import ort_session, require
from multiseg.errors import MultisegError
from multiseg.models.multihead import MultiHeadSegmenter

#: ``onnxruntime.quantization`` formats: Q/DQ pairs around float ops (fused by ORT), or QLinear* ops.
QUANT_FORMATS = ("qdq", "qoperator")
#: Layers left in float by default (``keep_float="edges"``): the first conv sees raw pixels and the
#: transposed convs write the upsampled score maps, where one quantisation step moves many output pixels.
#: Measured on a trained demo ERFNet (all val frames, 64 calibration frames): argmax agreement with fp32
#: 95.0 % (Cityscapes) / 92.6 % (Vistas) with every layer int8, 98.8 % / 98.7 % with these kept float.
KEEP_FLOAT = ("none", "edges")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


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
    keep_float: str = "edges",
) -> Path:
    """Static int8 quantisation of the fp32 ONNX file ``fp32_path`` into ``out_path`` (a new file).

    ``onnxruntime.quantization``: the graph is pre-processed (shape inference, ORT basic optimisation),
    activation ranges come from running ``calibration`` (MinMax), weights are symmetric int8 (per output
    channel with ``per_channel``), activations asymmetric uint8: the u8s8 combination ORT runs with
    VNNI instructions on x86. ``quant_format`` ``qdq`` writes QuantizeLinear/DequantizeLinear pairs that
    ORT fuses into QLinear kernels when it loads the graph; ``qoperator`` writes QLinearConv etc. directly.
    ``keep_float`` ``edges`` leaves the layers of :data:`KEEP_FLOAT`'s note in fp32; ``none`` quantises all.
    """
    require("onnxruntime")
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if quant_format not in QUANT_FORMATS:
        raise MultisegError(f"int8: format {quant_format!r} is not one of {', '.join(QUANT_FORMATS)}")
    if keep_float not in KEEP_FLOAT:
        raise MultisegError(f"int8: keep_float {keep_float!r} is not one of {', '.join(KEEP_FLOAT)}")
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
            excluded = edge_nodes(pre) if keep_float == "edges" else []
            q.quantize_static(
                str(pre), str(out_path), _Reader(),
                quant_format=q.QuantFormat.QDQ if quant_format == "qdq" else q.QuantFormat.QOperator,
                per_channel=per_channel, activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                calibrate_method=q.CalibrationMethod.MinMax, nodes_to_exclude=excluded,
            )  # fmt: skip
    finally:
        quant_log.setLevel(old_level)
    return out_path


def edge_nodes(onnx_path: Path) -> list[str]:
    """Names of the graph's first Conv (the one reading ``input``) and of every ConvTranspose."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    first = [n.name for n in graph.node if n.op_type == "Conv" and "input" in n.input][:1]
    return first + [n.name for n in graph.node if n.op_type == "ConvTranspose"]


def int8_text(quant_format: str, calib_count: int, calib_images: str | Path | None) -> str:
    """How :func:`quantize_int8` was applied, for protocol lines."""
    source = f"images of {calib_images}" if calib_images else "random N(0,1) inputs"
    return (
        f"int8 = static ORT quantisation ({quant_format.upper()}, per-channel symmetric s8 weights, "
        f"u8 activations, MinMax ranges from {calib_count} {source}; first conv and transposed convs fp32)"
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


def int8_path_for(onnx_path: Path) -> tuple[Path, Path]:
    """(fp32 file, int8 file) of ``export --dtype int8 --onnx FILE``: FILE is int8, the fp32 one beside it."""
    return onnx_path.with_name(f"{onnx_path.stem}.fp32{onnx_path.suffix or '.onnx'}"), onnx_path
