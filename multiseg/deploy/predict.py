"""``multiseg predict``: label maps, colour maps, overlays and the unified map for folders of images.

For every image (any size, any of the usual formats) and every head of the checkpoint, under ``--out``:

* ``<head>/color/<rel>.png``: the class map in the head's palette; ``<head>/overlay/<rel>.jpg``: it
  blended on the photo;
* raw labels: ``cityscapes/labelIds/<rel>.png`` (Cityscapes label ids, what the official evaluation
  and server read), ``cityscapes/trainIds``, ``gtsdb/trainIds`` (sign class ids, 43 = background),
  ``vistas/indices`` (Vistas config indices), ``lanes/trainIds``;
* ``unified/{color,overlay,ids}/<rel>``: the unified map (:mod:`multiseg.evaluate.unified`), and
  ``unified/legend.png`` plus ``<head>/legend.png``.

``<rel>`` is the image's path relative to the folder given (its file name for a file given), without
extension, so a Cityscapes ``leftImg8bit/test`` tree keeps its ``<city>/`` folders. Every output has
the image's own size: the image is fit-resized to the network size of the run (``resize_width`` x
``resize_height`` of its config, or ``--size``), padded to the output stride, and the logits are
bilinearly upsampled back before the argmax. Images are read by DataLoader workers and run in batches;
images of one batch with different network sizes run as separate sub-batches, so a prediction never
depends on its batch neighbours. An unreadable image is skipped with a counted warning, or stops the
run with ``strict``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from multiseg.data.base import hwc_to_chw
from multiseg.data.gtsdb import GtsdbDataset
from multiseg.data.io import IMAGE_EXTENSIONS, read_image
from multiseg.data.pipeline import normalize_on_device
from multiseg.data.transforms import fit_scale
from multiseg.data.vistas import LANES_PALETTE
from multiseg.errors import MultisegError
from multiseg.evaluate.report import legend_image
from multiseg.evaluate.unified import (
    UNIFIED_CLASSES,
    UNIFIED_PALETTE,
    can_unify,
    unified_from_labels,
    unified_palette_lut,
)
from multiseg.evaluate.upsample import upsample_argmax
from multiseg.labels import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    LANE_MARKING_CLASSES,
    VISTAS_V12_LABELS,
    cityscapes_train_id_to_id_lut,
)
from multiseg.models import MultiHeadSegmenter, inference_model
from multiseg.models.universal import UNIVERSAL

#: Raw label folder name of each known head (the class ids written there).
RAW_FOLDER = {
    "cityscapes": "trainIds", "gtsdb": "trainIds", "vistas": "indices", "lanes": "trainIds",
    "universal": "ids",
}  # fmt: skip
OVERLAY_ALPHA = 0.5


# -- inputs ---------------------------------------------------------------------------------------


def collect_images(inputs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Image files of the given files and folders (recursively), each with its output name ``rel``."""
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            found += [(p, p.relative_to(item).with_suffix("")) for p in files]
        elif item.is_file():
            found.append((item, Path(item.stem)))
        else:
            raise MultisegError(f"{item}: no such image file or folder")
    if not found:
        raise MultisegError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, inputs))}")
    rels = [rel for _, rel in found]
    if len(set(rels)) != len(rels):
        dup = next(r for r in rels if rels.count(r) > 1)
        raise MultisegError(f"two inputs would write the same outputs ({dup}); pass them in separate runs")
    return found


def network_size(width: int, height: int, fit: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) an image is resized to before the network (training's fit rule)."""
    if fit is None:
        return width, height
    scale = fit_scale(width, height, fit[0], fit[1], True)
    return max(1, round(width * scale)), max(1, round(height * scale))


class ImageFolder(Dataset):
    """Reads and fit-resizes images in DataLoader workers; a bad file gives an ``error`` item."""

    def __init__(self, files: list[tuple[Path, Path]], fit: tuple[int, int] | None) -> None:
        self.files, self.fit = files, fit

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, rel = self.files[index]
        try:
            image = read_image(path)
        except MultisegError as exc:
            return {"path": path, "rel": rel, "error": str(exc)}
        h, w = image.shape[:2]
        size = network_size(w, h, self.fit)
        net_in = image if size == (w, h) else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        tensor = torch.from_numpy(hwc_to_chw(net_in))
        return {"path": path, "rel": rel, "image": image, "input": tensor}


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


# -- backends -------------------------------------------------------------------------------------

Backend = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero-pad a normalised N x C x H x W batch bottom/right to multiples of ``stride`` (as the model)."""
    pad_h, pad_w = (-x.shape[-2]) % stride, (-x.shape[-1]) % stride
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


class TorchBackend:
    """The torch model on ``device`` in its fastest exact form (or plain): normalised batch -> logits."""

    def __init__(
        self, model: MultiHeadSegmenter, heads: list[str], device: torch.device, plain: bool = False
    ) -> None:
        self.model = inference_model(model.to(device), optimize=not plain)
        self.heads, self.device = heads, device

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        out = self.model(pad_to_stride(x.to(self.device), self.model.output_stride), heads=self.heads)
        return {k: v[..., :h, :w] for k, v in out.items()}


class OrtBackend:
    """An ONNX Runtime session of the model (exported with dynamic batch and size) on CPU."""

    def __init__(self, onnx_path: Path, heads: list[str], stride: int) -> None:
        from multiseg.deploy.runtime import ort_session

        self.session = ort_session(onnx_path)
        self.heads, self.stride = heads, stride
        outputs = [o.name for o in self.session.get_outputs()]
        if missing := [h for h in heads if h not in outputs]:
            raise MultisegError(
                f"{onnx_path}: ONNX outputs {outputs} lack the checkpoint's heads {missing}; "
                "export it from the same checkpoint"
            )
        self.outputs = outputs

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        got = self.session.run(self.heads, {"input": pad_to_stride(x, self.stride).cpu().numpy()})
        return {k: torch.from_numpy(np.asarray(v))[..., :h, :w] for k, v in zip(self.heads, got, strict=True)}


def ort_trace_size(stride: int, fit: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) an ONNX Runtime graph is traced (and int8-calibrated) at: the run's frame size
    ``fit`` = (width, height), default 1024x512, rounded down to the output stride."""
    w, h = fit if fit is not None else (1024, 512)
    return max(stride, h // stride * stride), max(stride, w // stride * stride)


def export_for_ort(
    model: MultiHeadSegmenter,
    heads: list[str],
    fit: tuple[int, int] | None,
    folder: Path,
    name: str = "model.onnx",
) -> Path:
    """Export the model to ``folder/name`` (dynamic batch and size, traced at :func:`ort_trace_size`)
    for ``--backend onnxruntime`` of ``predict`` and ``eval``."""
    from multiseg.deploy.export import export_onnx

    size = ort_trace_size(model.output_stride, fit)
    return export_onnx(model, folder / name, heads, sample_size=size, dynamic=True)


# -- outputs --------------------------------------------------------------------------------------


@dataclass
class HeadStyle:
    """How one head's class map is drawn and stored."""

    classes: tuple[str, ...]
    palette: np.ndarray  # 256 x 3 RGB
    raw_lut: np.ndarray | None = None  # class -> value of an extra raw PNG (Cityscapes label ids)


def _palette_lut(colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(colours)] = np.array(colours, np.uint8)
    return lut


def head_style(head: str, classes: int) -> HeadStyle:
    """Class names and palette of a head, by name (a generic palette for unknown heads)."""
    if head == "cityscapes":
        return HeadStyle(
            CITYSCAPES_CLASSES, _palette_lut(CITYSCAPES_PALETTE), cityscapes_train_id_to_id_lut()
        )
    if head == "gtsdb":
        return HeadStyle(GtsdbDataset.classes, _palette_lut(GtsdbDataset.palette))
    if head == "vistas" and classes == len(VISTAS_V12_LABELS) - 1:
        labels = VISTAS_V12_LABELS[:classes]
        return HeadStyle(tuple(lab.readable for lab in labels), _palette_lut([lab.color for lab in labels]))
    if head == "lanes":
        return HeadStyle((*LANE_MARKING_CLASSES, "other")[:classes], _palette_lut(LANES_PALETTE[:classes]))
    rng = np.random.default_rng(0)
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(classes)]
    return HeadStyle(tuple(f"class {i}" for i in range(classes)), _palette_lut(colours))


def output_style(model: MultiHeadSegmenter, head: str) -> HeadStyle:
    """:func:`head_style` of a model's output, the universal classes of a universal model included.

    Universal classes taken from Vistas keep Vistas' colours; the others (GTSDB signs, merged classes)
    get fixed random ones.
    """
    if head != UNIVERSAL or model.readout is None:
        return head_style(head, model.num_classes[head])
    names = model.readout.taxonomy.classes
    vistas = {lab.name: lab.color for lab in VISTAS_V12_LABELS}
    rng = np.random.default_rng(0)
    colours = [vistas.get(n, tuple(int(c) for c in rng.integers(0, 256, 3))) for n in names]
    return HeadStyle(tuple(names), _palette_lut(colours))


def _write(path: Path, image: np.ndarray) -> None:
    """Write a PNG/JPEG (RGB arrays converted to OpenCV's BGR); a failed write is a user error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), data):
        raise MultisegError(f"{path}: cannot write the output image")


def overlay(photo: np.ndarray, colour: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The colour map blended on the photo (both HxWx3 RGB uint8)."""
    return cv2.addWeighted(photo, 1 - alpha, colour, alpha, 0)


class OutputWriter:
    """Writes every file of one image (see the module docstring) under ``out``."""

    def __init__(
        self, out: Path, styles: dict[str, HeadStyle], unified: bool, submission: bool = False
    ) -> None:
        self.out, self.styles, self.unified, self.submission = out, styles, unified, submission
        self.unified_lut = unified_palette_lut()

    def legends(self) -> None:
        """``<head>/legend.png`` and ``unified/legend.png``."""
        if self.submission:
            return
        for head, st in self.styles.items():
            _write(self.out / head / "legend.png", legend_image(st.classes, st.palette[: len(st.classes)]))
        if self.unified:
            columns = 3
            _write(
                self.out / "unified" / "legend.png", legend_image(UNIFIED_CLASSES, UNIFIED_PALETTE, columns)
            )

    def write(self, rel: Path, photo: np.ndarray, labels: dict[str, np.ndarray]) -> None:
        """All outputs of one image from its per-head class maps (uint8, the photo's size)."""
        if self.submission:
            ids = self.styles["cityscapes"].raw_lut
            assert ids is not None
            _write(self.out / "cityscapes_submission" / f"{rel.name}.png", ids[labels["cityscapes"]])
            return
        for head, label in labels.items():
            st = self.styles[head]
            colour = st.palette[label]
            _write(self.out / head / "color" / f"{rel}.png", colour)
            _write(self.out / head / "overlay" / f"{rel}.jpg", overlay(photo, colour))
            _write(self.out / head / RAW_FOLDER.get(head, "trainIds") / f"{rel}.png", label)
            if st.raw_lut is not None:
                _write(self.out / head / "labelIds" / f"{rel}.png", st.raw_lut[label])
        if self.unified:
            uni = unified_from_labels({h: torch.from_numpy(v) for h, v in labels.items()}).numpy()
            uni = np.where(uni < 0, 255, uni).astype(np.uint8)
            colour = self.unified_lut[uni]
            _write(self.out / "unified" / "color" / f"{rel}.png", colour)
            _write(self.out / "unified" / "overlay" / f"{rel}.jpg", overlay(photo, colour))
            _write(self.out / "unified" / "ids" / f"{rel}.png", uni)


# -- the loop -------------------------------------------------------------------------------------


@dataclass
class PredictStats:
    """What a run did: images written and unreadable images skipped (with the first few reasons)."""

    written: int = 0
    skipped: int = 0
    first_errors: list[str] | None = None


def _labels_for(
    backend: Backend, items: list[dict[str, Any]], device: torch.device
) -> list[dict[str, np.ndarray]]:
    """Per-image class maps at the photo's size, running images of one network size together."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(tuple(item["input"].shape), []).append(i)
    result: list[dict[str, np.ndarray]] = [{} for _ in items]
    for indices in groups.values():
        batch = torch.stack([items[i]["input"] for i in indices]).to(device)
        logits = backend(normalize_on_device(batch))
        for row, i in enumerate(indices):
            size = items[i]["image"].shape[:2]
            result[i] = {
                h: upsample_argmax(v[row], size).to(torch.uint8).cpu().numpy() for h, v in logits.items()
            }
    return result


def predict_images(
    backend: Backend,
    files: list[tuple[Path, Path]],
    writer: OutputWriter,
    fit: tuple[int, int] | None,
    device: torch.device,
    batch_size: int = 4,
    workers: int = 1,
    strict: bool = False,
    progress: bool = True,
) -> PredictStats:
    """Run ``backend`` over ``files`` and write every output; see the module docstring."""
    loader = DataLoader(
        ImageFolder(files, fit), batch_size=batch_size, num_workers=workers, collate_fn=_collate
    )
    stats = PredictStats(first_errors=[])
    writer.legends()
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=not progress)
    for items in loader:
        good = []
        for item in items:
            if "error" not in item:
                good.append(item)
                continue
            if strict:
                raise MultisegError(f"unreadable image (--strict): {item['error']}")
            stats.skipped += 1
            assert stats.first_errors is not None
            stats.first_errors.append(item["error"])
            message = f"skipping unreadable image {stats.skipped}: {item['error']}"
            tqdm.write(f"multiseg predict: warning: {message}", file=sys.stderr)
        if good:
            for item, labels in zip(good, _labels_for(backend, good, device), strict=True):
                writer.write(item["rel"], item["image"], labels)
                stats.written += 1
        bar.update(len(items))
    bar.close()
    return stats


@dataclass
class PredictOptions:
    """What ``multiseg predict`` was asked for."""

    backend: str = "torch"
    onnx: Path | None = None
    heads: list[str] | None = None
    size: tuple[int, int] | None = None  # network fit (width, height); None: the run's resize size
    full_size: bool = False  # run the network at each image's own size
    batch_size: int = 4
    workers: int = 1
    strict: bool = False
    submission: bool = False
    device: str = "auto"
    plain: bool = False  # the plain eval-mode model instead of inference_model's (BN folded, layout)


def load_for_predict(path: Path) -> tuple[MultiHeadSegmenter, tuple[int, int]]:
    """The model of a run folder or checkpoint, and the network fit size (width, height) it trained with."""
    from multiseg.evaluate.evaluator import resolve_checkpoint
    from multiseg.models import model_from_checkpoint
    from multiseg.train.checkpoint import load_checkpoint

    ckpt, _ = resolve_checkpoint(path)
    blob = load_checkpoint(ckpt)
    cfg = blob.get("config") if isinstance(blob, dict) else None
    fit = (1024, 512)
    if isinstance(cfg, dict) and "resize_width" in cfg and "resize_height" in cfg:
        fit = (int(cfg["resize_width"]), int(cfg["resize_height"]))
    model = model_from_checkpoint(ckpt)
    model.pad_to_stride = True
    return model, fit


def choose_heads(model: MultiHeadSegmenter, wanted: list[str] | None, submission: bool) -> list[str]:
    """The heads to run: all, ``--heads``, or cityscapes for a submission; unknown names are a user error.

    A universal model's outputs also include ``universal`` (its universal argmax is its unified map).
    """
    if submission:
        wanted = ["cityscapes"]
    universal = [UNIVERSAL] if model.readout is not None else []
    if wanted is None:
        return model.head_names + universal
    if unknown := [h for h in wanted if h not in model.num_classes and h not in universal]:
        raise MultisegError(f"heads {unknown} are not in this checkpoint (it has {model.head_names})")
    return list(wanted)


def run_predict(checkpoint: Path, inputs: Sequence[Path], out: Path, opts: PredictOptions) -> str:
    """``multiseg predict``: check everything, then predict; returns the summary line."""
    from multiseg.evaluate.evaluator import prepare_out_dir
    from multiseg.evaluate.submission import check_submission_names, zip_folder
    from multiseg.train.device import resolve_device

    out = prepare_out_dir(out)
    model, fit_default = load_for_predict(checkpoint)
    heads = choose_heads(model, opts.heads, opts.submission)
    files = collect_images(inputs)
    if opts.submission:
        check_submission_names([p.name for p, _ in files])
    fit = None if opts.full_size else (opts.size or fit_default)
    device = resolve_device(opts.device) if opts.backend == "torch" else torch.device("cpu")
    styles = {h: output_style(model, h) for h in heads}
    # A universal model's unified map is its universal argmax (the "universal" output), not a merge.
    mergeable = model.readout is None and can_unify({h: model.num_classes[h] for h in heads})
    unified = not opts.submission and mergeable
    writer = OutputWriter(out, styles, unified, submission=opts.submission)
    with tempfile.TemporaryDirectory(prefix="multiseg-onnx-") as tmp:
        if opts.backend == "onnxruntime":
            onnx = opts.onnx or export_for_ort(model, heads, fit, Path(tmp))
            backend: Backend = OrtBackend(onnx, heads, model.output_stride)
        elif opts.backend == "torch":
            backend = TorchBackend(model, heads, device, plain=opts.plain)
        else:
            raise MultisegError(f"--backend {opts.backend!r}: expected torch or onnxruntime")
        stats = predict_images(
            backend, files, writer, fit, device, opts.batch_size, opts.workers, opts.strict
        )
    lines = [f"predicted {stats.written} images with heads {heads} ({opts.backend}) -> {out}"]
    if opts.submission:
        archive = zip_folder(out / "cityscapes_submission", out / "cityscapes_submission.zip")
        lines.append(f"Cityscapes submission (label ids, full resolution): {archive}")
    if stats.skipped:
        lines.append(f"warning: skipped {stats.skipped} unreadable images (first: {stats.first_errors[0]})")
    return "\n".join(lines)


def parse_fit(text: str, option: str = "--size") -> tuple[int, int]:
    """``"1024x512"`` (width x height) -> ``(1024, 512)``."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise MultisegError(f"{option} {text!r}: expected WIDTHxHEIGHT, e.g. 1024x512")
    return int(w), int(h)
