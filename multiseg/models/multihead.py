"""The multi-head segmenter: one encoder shared by every dataset, one head per dataset.

Contract between the pieces an :class:`Architecture` builds:

* **encoder** ``(x) -> dict[str, Tensor]``: every tensor has the batch on dim 0 (features, skips,
  pooling indices), so a head's samples are picked with one ``index_select`` per tensor.
* **decoder** (``head_mode="decoder"``) ``(features, size) -> logits`` at ``size``.
* **shared decoder** (``head_mode="last_conv"``) ``(features, size) -> dict[str, Tensor]``, class
  agnostic, then a per-dataset **last conv** ``(shared, size) -> logits``.
* **universal** (``head_mode="universal"``): one decoder over the classes of a universal taxonomy;
  each dataset's output is read out of it (:mod:`multiseg.models.universal`: log summed
  probabilities), and the head name ``"universal"`` returns the universal logits themselves.

The encoder runs once per batch. With ``heads={"cityscapes": idx_a, "gtsdb": idx_b}`` each head runs
only on its own samples; in ``last_conv`` mode the shared decoder runs once on the union of those
samples and each last conv on its own rows of it.

Distributed training: a head that gets no sample in a step is not run at all, so its parameters get
no gradient on that rank. The module tree is plain (``encoder``, ``shared_decoder``, ``heads``), and
the training engine must cope with unused heads (e.g. ``find_unused_parameters=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiseg.data.taxonomy import Taxonomy
from multiseg.errors import MultisegError
from multiseg.models.universal import UNIVERSAL, UniversalReadout

Features = dict[str, Tensor]
HeadSelection = Sequence[str] | Mapping[str, Tensor | None] | None


class ComposedDecoder(nn.Module):
    """A per-dataset decoder made of a class-agnostic body and the class-emitting last layer."""

    def __init__(self, body: nn.Module, last: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.last = last

    def forward(self, feats: Features, size: tuple[int, int]) -> Tensor:
        return self.last(self.body(feats, size), size)


class Architecture:
    """Builds the parts of one network; subclasses keep their reconstructed choices as attributes.

    Subclasses set :attr:`output_stride` and implement :meth:`build_encoder`,
    :meth:`build_shared_decoder` and :meth:`build_last_conv`. :meth:`build_decoder` defaults to
    body + last conv, which is exact wherever the per-dataset decoder of the paper *is* a class-agnostic
    body followed by one class-emitting layer (ENet, ERFNet, EDANet); others override it.
    """

    #: Input height and width must be multiples of this.
    output_stride: int = 8
    #: Whether training may use channels_last under bf16 autocast on CPU. torch 2.13's oneDNN weight
    #: gradient of bf16 channels_last convs with dilation >= 3 is non-finite (or crashes) for many
    #: channel counts below 64; models with such convs set this to False and train in NCHW there.
    #: ``tests/test_models.py`` checks every model that keeps it True.
    cpu_bf16_channels_last: bool = True
    #: Whether inference runs faster in channels_last (BN folded, fp32, CPU, batch 1 at 512x1024;
    #: ``benchmarks/bench_models.py``). :func:`multiseg.models.inference.inference_model` follows it.
    inference_channels_last: bool = True

    def build_encoder(self) -> nn.Module:
        raise NotImplementedError

    def build_shared_decoder(self) -> nn.Module:
        raise NotImplementedError

    def build_last_conv(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def build_decoder(self, num_classes: int) -> nn.Module:
        return ComposedDecoder(self.build_shared_decoder(), self.build_last_conv(num_classes))


def select_batch(feats: Features, index: Tensor | None) -> Features:
    """Rows ``index`` of every tensor in ``feats`` (all of them for ``None``)."""
    if index is None:
        return feats
    return {key: value.index_select(0, index.to(value.device)) for key, value in feats.items()}


class MultiHeadSegmenter(nn.Module):
    """Shared encoder plus one head per dataset; see the module docstring for the forward contract.

    Attributes:
        encoder: the shared part; its ``state_dict`` is what encoder pretraining saves and loads.
        shared_decoder: the decoder shared by all heads in ``last_conv`` mode, else ``None``.
        heads: ``nn.ModuleDict`` dataset -> decoder (``decoder`` mode) or last conv (``last_conv``).
        num_classes: dataset -> number of output classes.
        output_stride: input height and width must be multiples of this (unless ``pad_to_stride``).
    """

    def __init__(
        self,
        arch: Architecture,
        heads: Mapping[str, int],
        head_mode: str = "decoder",
        pad_to_stride: bool = False,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.name: str = getattr(arch, "name", type(arch).__name__)
        self.head_mode = head_mode
        self.pad_to_stride = pad_to_stride
        self.output_stride = arch.output_stride
        self.cpu_bf16_channels_last = arch.cpu_bf16_channels_last
        self.inference_channels_last = arch.inference_channels_last
        #: The memory format the input is put in first (channels_last in inference_model's form).
        self.input_memory_format = torch.contiguous_format
        self.num_classes: dict[str, int] = dict(heads)
        self.config: dict[str, Any] = {}
        self.encoder = arch.build_encoder()
        self.readout: UniversalReadout | None = None
        if head_mode == "universal":
            if taxonomy is None:
                raise MultisegError("head_mode 'universal' needs a taxonomy")
            self.readout = UniversalReadout(taxonomy, heads)
            self.shared_decoder = None
            self.heads = nn.ModuleDict({UNIVERSAL: arch.build_decoder(taxonomy.num_classes)})
        elif head_mode == "decoder":
            self.shared_decoder: nn.Module | None = None
            self.heads = nn.ModuleDict({h: arch.build_decoder(c) for h, c in heads.items()})
        elif head_mode == "last_conv":
            self.shared_decoder = arch.build_shared_decoder()
            self.heads = nn.ModuleDict({h: arch.build_last_conv(c) for h, c in heads.items()})
        else:
            raise MultisegError(f"head_mode {head_mode!r} is not one of decoder, last_conv, universal")

    @property
    def head_names(self) -> list[str]:
        return list(self.num_classes)

    def output_classes(self, head: str) -> int:
        """Channels of output ``head``: a dataset head's classes, or the universal classes."""
        if head == UNIVERSAL and self.readout is not None:
            return self.readout.taxonomy.num_classes
        return self.num_classes[head]

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts: ``total``, ``encoder`` and ``decoder`` (everything after the encoder)."""
        total = sum(p.numel() for p in self.parameters())
        encoder = sum(p.numel() for p in self.encoder.parameters())
        return {"total": total, "encoder": encoder, "decoder": total - encoder}

    def _selection(self, heads: HeadSelection) -> dict[str, Tensor | None]:
        if heads is None:
            chosen: dict[str, Tensor | None] = dict.fromkeys(self.num_classes)
        elif isinstance(heads, Mapping):
            chosen = dict(heads)
            for head, index in chosen.items():
                if index is not None and (index.dtype != torch.long or index.dim() != 1):
                    raise MultisegError(f"head {head!r}: sample indices must be a 1-D LongTensor")
        elif isinstance(heads, str):
            chosen = {heads: None}
        else:
            chosen = dict.fromkeys(heads)
        known = [*self.num_classes, UNIVERSAL] if self.readout is not None else list(self.num_classes)
        unknown = [h for h in chosen if h not in known]
        if unknown:
            raise MultisegError(f"unknown head {unknown[0]!r}; this model has {', '.join(self.head_names)}")
        return chosen

    def _padding(self, x: Tensor) -> tuple[int, int]:
        if x.dim() != 4:
            raise MultisegError(f"input must be N x C x H x W, got shape {tuple(x.shape)}")
        h, w = x.shape[-2], x.shape[-1]
        s = self.output_stride
        pad_h, pad_w = (-h) % s, (-w) % s
        if (pad_h or pad_w) and not self.pad_to_stride:
            raise MultisegError(
                f"input size {h}x{w} is not a multiple of {self.name}'s output stride {s} "
                f"(e.g. {h + pad_h}x{w + pad_w} is); resize or crop it, or create the model with "
                "pad_to_stride=True"
            )
        return pad_h, pad_w

    def forward(self, x: Tensor, heads: HeadSelection = None) -> dict[str, Tensor]:
        """Logits at input resolution for every head, or for the heads (and samples) asked for.

        Args:
            x: N x 3 x H x W images.
            heads: ``None`` (all heads, all samples), a list of head names (all samples), or a mapping
                head -> LongTensor of sample indices into the batch (``None`` meaning all samples).
                A universal model also answers ``"universal"`` (its universal logits).

        Returns:
            head name -> logits of shape (len(index) or N, num_classes[head], H, W).
        """
        chosen = self._selection(heads)
        pad_h, pad_w = self._padding(x)
        if self.input_memory_format != torch.contiguous_format:
            x = x.contiguous(memory_format=self.input_memory_format)
        height, width = x.shape[-2], x.shape[-1]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        size = (x.shape[-2], x.shape[-1])
        feats = self.encoder(x)
        if self.readout is not None:
            out = self._run_universal(chosen, feats, size)
        elif self.shared_decoder is None:
            out = {h: self._run_decoder(h, feats, idx, size) for h, idx in chosen.items()}
        else:
            out = self._run_last_convs(chosen, feats, size)
        if pad_h or pad_w:
            out = {h: v[..., :height, :width] for h, v in out.items()}
        return out

    def _empty(self, head: str, feats: Features, size: tuple[int, int]) -> Tensor:
        ref = next(iter(feats.values()))
        return ref.new_zeros((0, self.output_classes(head), *size), dtype=ref.dtype)

    def _run_decoder(self, head: str, feats: Features, index: Tensor | None, size: tuple[int, int]) -> Tensor:
        if index is not None and index.numel() == 0:
            return self._empty(head, feats, size)
        return self.heads[head](select_batch(feats, index), size)

    @staticmethod
    def _union(chosen: dict[str, Tensor | None]) -> Tensor | None:
        """The sorted sample indices any chosen head needs (``None``: the whole batch)."""
        indices = [i for i in chosen.values() if i is not None]
        if len(indices) < len(chosen):  # some head wants the whole batch
            return None
        return torch.unique(torch.cat([i.reshape(-1) for i in indices]))

    def _run_universal(
        self, chosen: dict[str, Tensor | None], feats: Features, size: tuple[int, int]
    ) -> dict[str, Tensor]:
        """One universal decoder on the samples any head needs; each dataset head read out of it."""
        assert self.readout is not None
        union = self._union(chosen)
        if union is not None and union.numel() == 0:
            return {h: self._empty(h, feats, size) for h in chosen}
        logits = self.heads[UNIVERSAL](select_batch(feats, union), size)
        if all(index is None for index in chosen.values()):  # one softmax for every read-out
            heads = [h for h in chosen if h != UNIVERSAL]
            out = self.readout.read_out(logits, heads)
            return {h: logits if h == UNIVERSAL else out[h] for h in chosen}
        out: dict[str, Tensor] = {}
        for head, index in chosen.items():
            if index is not None and index.numel() == 0:
                out[head] = self._empty(head, feats, size)
                continue
            rows = None if union is None or index is None else torch.searchsorted(union, index)
            mine = logits if rows is None else logits.index_select(0, rows)
            out[head] = mine if head == UNIVERSAL else self.readout(mine, head)
        return out

    def _run_last_convs(
        self, chosen: dict[str, Tensor | None], feats: Features, size: tuple[int, int]
    ) -> dict[str, Tensor]:
        assert self.shared_decoder is not None
        union = self._union(chosen)
        out: dict[str, Tensor] = {}
        if union is not None and union.numel() == 0:
            return {h: self._empty(h, feats, size) for h in chosen}
        shared = self.shared_decoder(select_batch(feats, union), size)
        for head, index in chosen.items():
            if index is not None and index.numel() == 0:
                out[head] = self._empty(head, feats, size)
                continue
            rows = None if union is None or index is None else torch.searchsorted(union, index)
            out[head] = self.heads[head](select_batch(shared, rows), size)
        return out


class HeadsAsTuple(nn.Module):
    """Export wrapper: ``x -> tuple`` of the chosen heads' logits, in the given order (ONNX, tracing)."""

    def __init__(self, model: MultiHeadSegmenter, heads: Sequence[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.head_order = list(heads) if heads is not None else model.head_names
        model._selection(self.head_order)  # validates the names

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x, heads=self.head_order)
        return tuple(out[h] for h in self.head_order)
