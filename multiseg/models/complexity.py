"""Parameter and multiply-accumulate counts, the numbers ``multiseg models`` and ``multiseg bench`` print.

MACs are torch's own count (:class:`torch.utils.flop_counter.FlopCounterMode`, halved): convolutions,
transposed convolutions and matrix products only, the same convention as the specs' reference figures
(BN, activations, pooling, interpolation and GUM's ``grid_sample`` are not counted). 1 GMAC is 2 GFLOP.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_macs(model: nn.Module, inputs: Tensor, **forward_kwargs: object) -> int:
    """Conv/transposed-conv/linear multiply-accumulates of one eval-mode ``model(inputs)`` call."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(inputs, **forward_kwargs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


#: Parameter counts of the reference implementations at 19 classes, single head (specs/models.md 10).
REFERENCE_PARAMS: dict[str, int] = {
    "enet": 364_311,
    "erfnet": 2_066_642,
    "espnet": 363_462,
    "edanet": 689_485,
}


def models_table(size: tuple[int, int] = (512, 1024), num_classes: int = 19) -> str:
    """The ``multiseg models`` table: every registered model with one head of ``num_classes`` classes."""
    from multiseg.models.registry import create_model, list_models

    h, w = size
    header = (
        f"{'model':<9} {'stride':>6} {'params':>11} {'encoder':>11} {'decoder':>9} "
        f"{'GMACs':>7} {'reference':>10} {'diff':>7}"
    )
    lines = [header, "-" * len(header)]
    for name in list_models():
        model = create_model(name, heads={"cityscapes": num_classes}).eval()
        counts = model.num_parameters()
        s = model.output_stride
        size_ok = h % s == 0 and w % s == 0
        gmacs = f"{count_macs(model, torch.zeros(1, 3, h, w)) / 1e9:7.2f}" if size_ok else f"{'n/a':>7}"
        ref = REFERENCE_PARAMS.get(name) if num_classes == 19 else None
        ref_text = f"{ref:>10,}" if ref else f"{'-':>10}"
        diff = f"{100 * (counts['total'] - ref) / ref:>+6.2f}%" if ref else f"{'-':>7}"
        lines.append(
            f"{name:<9} {s:>6} {counts['total']:>11,} {counts['encoder']:>11,} {counts['decoder']:>9,} "
            f"{gmacs} {ref_text} {diff}"
        )
    lines.append(
        f"{num_classes} classes, one head (decoder mode); GMACs at {h}x{w} = multiply-accumulates of Conv2d, "
        "ConvTranspose2d and Linear layers counted with forward hooks; reference = the published "
        "implementation's count (ERFNet's includes its 2,451-parameter encoder-only classifier, which "
        "multiseg leaves to the training engine)."
    )
    return "\n".join(lines)
