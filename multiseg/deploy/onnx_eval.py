"""``multiseg eval --backend onnxruntime [--dtype int8]``: the deployed graph, scored as the torch model is.

The run's checkpoint is exported (dynamic batch and size, BN folded), quantised for ``int8`` (static,
calibrated on real frames: by default the first ``calib_count`` training images of the run's Cityscapes),
and evaluated by ONNX Runtime with :func:`multiseg.evaluate.evaluator.evaluate`: same data, same rules,
same report. Beside every head's scores the report gives the share of pixels whose class the graph
predicts as the fp32 torch model does (argmax agreement, at the network's output resolution), so an
int8 graph's cost is measured on a trained network and real images rather than random weights and noise.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from multiseg.data.pipeline import SkippedFiles
from multiseg.deploy.predict import OrtBackend, export_for_ort, ort_trace_size
from multiseg.deploy.quantize import calibration_inputs, int8_text, quantize_int8
from multiseg.errors import MultisegError
from multiseg.evaluate.evaluator import (
    EvalOptions,
    evaluate,
    format_table,
    load_run,
    override_data,
    prepare_out_dir,
    resolution_note,
    write_report,
)
from multiseg.models import MultiHeadSegmenter, inference_model
from multiseg.train.config import TrainConfig
from multiseg.train.data import dataset_root


class OrtSegmenter(nn.Module):
    """An ONNX Runtime session behind the torch model's interface, counting argmax agreement with it."""

    def __init__(self, backend: OrtBackend, reference: MultiHeadSegmenter) -> None:
        super().__init__()
        self.backend = backend
        self.reference = inference_model(reference)
        self.num_classes = dict(reference.num_classes)
        self.output_stride = reference.output_stride
        self.name = reference.name
        self.same: dict[str, int] = dict.fromkeys(self.num_classes, 0)
        self.pixels: dict[str, int] = dict.fromkeys(self.num_classes, 0)

    def forward(self, x: torch.Tensor, heads: list[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = list(heads) if heads is not None else list(self.num_classes)
        got = self.backend(x.cpu())
        expected = self.reference(x.cpu(), heads=wanted)
        for h in wanted:
            self.same[h] += int((got[h].argmax(1) == expected[h].argmax(1)).sum())
            self.pixels[h] += got[h].shape[0] * got[h].shape[2] * got[h].shape[3]
        return {h: got[h].to(x.device) for h in wanted}

    def agreement(self) -> dict[str, float]:
        """Per head: the share of pixels where the graph's class is the fp32 torch model's."""
        return {h: self.same[h] / self.pixels[h] for h in self.num_classes if self.pixels[h]}


def calibration_folder(cfg: TrainConfig, images: Path | None) -> Path:
    """The calibration images: ``images``, else the run's Cityscapes training frames."""
    if images is not None:
        return images
    if "cityscapes" not in cfg.datasets:
        raise MultisegError("--dtype int8: this run has no Cityscapes; give --calib-images DIR")
    return dataset_root(cfg, "cityscapes") / "leftImg8bit" / "train"


def run_onnx_eval(
    path: Path,
    opts: EvalOptions,
    out: Path | None,
    dtype: str = "fp32",
    calib_images: Path | None = None,
    calib_count: int = 64,
    onnx: Path | None = None,
) -> str:
    """Export (or take ``onnx``, an fp32 graph of the checkpoint) and quantise, evaluate with ONNX Runtime,
    write the usual report plus the agreement, and the scored graph beside it."""
    if dtype not in ("fp32", "int8"):
        raise MultisegError(f"--dtype {dtype!r}: expected fp32 or int8")
    if opts.tta is not None:
        raise MultisegError("--tta is not available with --backend onnxruntime")
    if onnx is not None and not Path(onnx).is_file():
        raise MultisegError(f"--onnx {onnx}: no such file")
    model, cfg, ckpt, run_dir = load_run(path)
    cfg = override_data(cfg, opts.data)
    tag = f"eval-{opts.split}-{'fullres' if opts.full_res else 'trainres'}-onnxruntime-{dtype}"
    out = prepare_out_dir(out if out is not None else (run_dir or ckpt.parent) / tag)
    fit = (cfg.resize_width, cfg.resize_height)
    with tempfile.TemporaryDirectory(prefix="multiseg-onnx-eval-") as tmp:
        if dtype == "int8":  # the calibration frames are checked before any export work
            size = ort_trace_size(model.output_stride, fit)
            folder = calibration_folder(cfg, calib_images)
            calibration = calibration_inputs(size, calib_count, folder)
        if onnx is None:
            graph = export_for_ort(model, model.head_names, fit, Path(tmp), "model.fp32.onnx")
            note = "ONNX Runtime fp32 (dynamic graph, BN folded)"
        else:
            graph, note = Path(onnx), f"ONNX Runtime fp32 ({Path(onnx).name})"
        if dtype == "int8":
            graph = quantize_int8(graph, Path(tmp) / "model.int8.onnx", calibration)
            note = f"ONNX Runtime {int8_text('qdq', calib_count, folder)}"
        segmenter = OrtSegmenter(OrtBackend(graph, model.head_names, model.output_stride), model)
        start = time.perf_counter()
        skipped = SkippedFiles()
        results = evaluate(segmenter, cfg, replace(opts, plain=True), torch.device("cpu"), skipped)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        resolution = f"{resolution_note(cfg, opts.full_res)}; {note}"
        agreement = segmenter.agreement()
        meta = {
            "checkpoint": str(ckpt), "model": model.name, "heads": dict(model.num_classes),
            "split": opts.split, "full_res": opts.full_res, "resolution": resolution, "device": "cpu",
            "backend": "onnxruntime",
            "dtype": dtype, "argmax_agreement_with_torch_fp32": agreement, "seconds": round(seconds, 2),
            "skipped_files": sorted(skipped.counts),
        }  # fmt: skip
        write_report(results, meta, out, resolution)
        scored = ""
        if graph.parent == Path(tmp):  # a graph made here goes beside the report, once that is written
            shutil.copyfile(graph, out / graph.name)
            reuse = " (score it again with --onnx)" if dtype == "fp32" else ""
            scored = f", {graph.name}: the scored graph{reuse}"
    agree = ", ".join(f"{h} {100 * a:.2f} %" for h, a in agreement.items())
    lines = [
        format_table(results, resolution),
        f"argmax agreement with the fp32 torch model (network resolution): {agree}",
        f"evaluated in {seconds:.1f} s",
        f"report: {out} (eval.json, eval.csv, iou_*.png, confusion_*.png{scored})",
    ]
    if skipped.counts:
        lines.append(skipped.report())
    return "\n".join(lines)
