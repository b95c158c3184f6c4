"""Fold inference-mode BatchNorm into the preceding convolution, for faster eval-only graphs.

In eval mode ``BN(conv(x)) = conv'(x)`` with ``w' = w * g / sqrt(v + eps)`` (per output channel) and
``b' = (b - m) * g / sqrt(v + eps) + beta``. :func:`fold_batchnorm` applies that to every
``Conv2d``/``ConvTranspose2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential``, and
calls ``fold_batchnorm()`` on modules that know how to fold themselves (a BN over a concat of a conv
and a pooling, for instance). BN layers that follow no conv (ESPNet's BN-PReLU over concatenations, its
residual ESP modules) are left in place.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel ``(scale, shift)`` an eval-mode BatchNorm applies: ``y = x * scale + shift``."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` into ``conv`` in place (``conv`` gains a bias if it had none)."""
    fold_conv_affine(conv, *bn_scale_shift(bn))


@torch.no_grad()
def fold_conv_affine(conv: nn.Conv2d | nn.ConvTranspose2d, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Fold a per-output-channel ``y * scale + shift`` into ``conv`` in place."""
    weight = conv.weight
    if isinstance(conv, nn.ConvTranspose2d):
        # weight is (in, out / groups, kh, kw): output channels on dim 1, per group.
        groups = conv.groups
        w = weight.view(groups, weight.shape[0] // groups, weight.shape[1], *weight.shape[2:])
        w.mul_(scale.view(groups, 1, -1, 1, 1))
    else:
        weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    new_bias = bias * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def _fold_sequential(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for a, b in zip(names, names[1:], strict=False):
        first, second = seq._modules[a], seq._modules[b]
        if isinstance(first, nn.Conv2d | nn.ConvTranspose2d) and type(second) is nn.BatchNorm2d:
            fold_conv_bn(first, second)
            seq._modules[b] = nn.Identity()


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` (or ``model`` itself if ``inplace``) with BN folded into convs.

    The result is for inference only: its outputs equal the eval-mode outputs of ``model`` up to float
    rounding, and training it would train a different (BN-free) network.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        fold = getattr(module, "fold_batchnorm", None)
        if callable(fold) and module is not model:
            fold()
        elif isinstance(module, nn.Sequential):
            _fold_sequential(module)
    return model


def count_batchnorm(model: nn.Module) -> int:
    """Number of BatchNorm2d layers left in ``model`` (to report how much folding achieved)."""
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
