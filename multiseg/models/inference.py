"""The fastest exact torch form of a network for inference: the default of predict, eval and bench.

Two changes keep the outputs equal to the plain eval-mode model up to float rounding and cost nothing
at run time: BatchNorm folded into the convolutions before it (:func:`~multiseg.models.fold.
fold_batchnorm`), and, where it pays for that architecture, the channels_last memory format, so oneDNN
runs its convolutions without reordering every activation (``Architecture.inference_channels_last``,
set from ``benchmarks/bench_models.py`` measurements). ``optimize=False`` (``--plain`` on the command
line) gives the plain eval-mode model instead, the eager baseline the benchmarks compare against.
"""

from __future__ import annotations

import torch

from multiseg.models.fold import fold_batchnorm
from multiseg.models.multihead import MultiHeadSegmenter


def inference_model(model: MultiHeadSegmenter, optimize: bool = True) -> MultiHeadSegmenter:
    """An eval-mode copy of ``model`` in its fastest exact form, or ``model`` itself in eval mode.

    The copy takes the same NCHW input and returns the same dict of logits; with channels_last it
    converts the input itself, and its logits come back in channels_last strides (same values).
    """
    if not optimize:
        return model.eval()
    net = fold_batchnorm(model)
    if model.inference_channels_last:
        net = net.to(memory_format=torch.channels_last)
        net.input_memory_format = torch.channels_last
    return net


def layout_of(model: MultiHeadSegmenter) -> str:
    """``"channels_last"`` or ``"NCHW"``: the memory format ``model`` runs in, for protocol lines."""
    return "channels_last" if model.input_memory_format == torch.channels_last else "NCHW"
