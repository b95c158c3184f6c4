"""Name -> architecture registry, and the factory that turns a name plus a head table into a model.

An *architecture* (see :class:`multiseg.models.multihead.Architecture`) knows how to build one shared
encoder and, for each dataset, a decoder or a last conv. :func:`create_model` wraps it into a
:class:`~multiseg.models.multihead.MultiHeadSegmenter`. Each architecture file registers itself with
:func:`register_model`; :func:`list_models` imports them all so the registry is complete.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from multiseg.data.taxonomy import Taxonomy, load_taxonomy, restrict, taxonomy_from_dict
from multiseg.errors import MultisegError
from multiseg.files import load_torch_file
from multiseg.models.multihead import Architecture, MultiHeadSegmenter

#: Modules that register architectures when imported, in the order ``multiseg models`` lists them.
_ARCHITECTURE_MODULES = ("enet", "erfnet", "espnet", "edanet", "gunet", "igumnet")

_REGISTRY: dict[str, Callable[..., Architecture]] = {}

#: The paper's two main datasets; the default head table of :func:`create_model`.
DEFAULT_HEADS: dict[str, int] = {"cityscapes": 19, "gtsdb": 44}

HEAD_MODES = ("decoder", "last_conv", "universal")

A = TypeVar("A", bound=Callable[..., Architecture])


def register_model(name: str) -> Callable[[A], A]:
    """Class decorator: make an :class:`Architecture` constructor available to :func:`create_model`."""

    def decorate(factory: A) -> A:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def _import_all() -> None:
    for module in _ARCHITECTURE_MODULES:
        importlib.import_module(f"multiseg.models.{module}")


def list_models() -> list[str]:
    """The registered model names, the paper's six first in their usual order."""
    _import_all()
    order = {name: i for i, name in enumerate(_ARCHITECTURE_MODULES)}
    return sorted(_REGISTRY, key=lambda n: (order.get(n, len(order)), n))


def get_architecture(name: str, **kwargs: Any) -> Architecture:
    """Build the architecture registered as ``name``; an unknown name is a :class:`MultisegError`."""
    _import_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MultisegError(f"unknown model {name!r}{hint} (known: {', '.join(list_models())})")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as err:  # an unknown or misspelt architecture option
        raise MultisegError(f"model {name!r}: {err}") from err


def _check_heads(heads: Mapping[str, int]) -> dict[str, int]:
    if not heads:
        raise MultisegError("heads: at least one head (dataset name -> number of classes) is needed")
    checked: dict[str, int] = {}
    for head, classes in heads.items():
        if not isinstance(head, str) or not head.isidentifier():
            raise MultisegError(f"heads: head name {head!r} must be a Python identifier (e.g. 'cityscapes')")
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise MultisegError(f"heads: {head!r} needs a positive class count, got {classes!r}")
        checked[head] = classes
    return checked


def create_model(
    name: str,
    heads: Mapping[str, int] | None = None,
    head_mode: str = "decoder",
    encoder_weights: str | Path | None = None,
    pad_to_stride: bool = False,
    taxonomy: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MultiHeadSegmenter:
    """Build a multi-head segmenter.

    Args:
        name: a registered architecture (:func:`list_models`).
        heads: dataset name -> number of output classes; default ``{"cityscapes": 19, "gtsdb": 44}``.
        head_mode: ``"decoder"`` (one full decoder per dataset, the paper's default), ``"last_conv"``
            (one shared decoder, only the class-emitting last layer per dataset) or ``"universal"``
            (one decoder over a universal taxonomy, each head read out of it).
        encoder_weights: optional file holding an encoder state dict (:func:`load_encoder_weights`).
        pad_to_stride: pad inputs whose size is not a multiple of the output stride and crop the
            logits back, instead of raising :class:`MultisegError`.
        taxonomy: ``"universal"`` mode only: a :meth:`Taxonomy.to_dict` over exactly these heads;
            default: the shipped taxonomy, restricted to the heads (:func:`multiseg.data.taxonomy.restrict`).
        **kwargs: architecture options (the architecture class's constructor arguments).
    """
    if head_mode not in HEAD_MODES:
        raise MultisegError(f"head_mode {head_mode!r} is not one of {', '.join(HEAD_MODES)}")
    head_table = _check_heads(DEFAULT_HEADS if heads is None else heads)
    arch = get_architecture(name, **kwargs)
    tax = _taxonomy(head_table, taxonomy) if head_mode == "universal" else None
    model = MultiHeadSegmenter(
        arch, head_table, head_mode=head_mode, pad_to_stride=pad_to_stride, taxonomy=tax
    )
    model.config = {
        "name": name,
        "heads": dict(head_table),
        "head_mode": head_mode,
        "pad_to_stride": pad_to_stride,
        "kwargs": dict(kwargs),
    }
    if tax is not None:
        model.config["taxonomy"] = tax.to_dict()
    if encoder_weights is not None:
        load_encoder_weights(model, encoder_weights)
    return model


def _taxonomy(heads: Mapping[str, int], given: Mapping[str, Any] | None) -> Taxonomy:
    """The universal model's taxonomy: the one given, else the shipped one restricted to ``heads``."""
    if given is None:
        return restrict(load_taxonomy(), heads)
    try:
        return taxonomy_from_dict(given)
    except (KeyError, TypeError, ValueError) as err:
        raise MultisegError(f"taxonomy: not a taxonomy mapping ({err!r})") from None


def _describe_keys(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_encoder_weights(model: MultiHeadSegmenter, path: str | Path) -> None:
    """Load a saved encoder state dict into ``model.encoder``, strictly.

    The file is either ``torch.save(model.encoder.state_dict())`` or a dict with an ``"encoder"`` key
    holding such a state dict (e.g. a pretraining checkpoint). Missing or unexpected keys, or a shape
    mismatch, raise :class:`MultisegError` naming the first few.
    """
    path = Path(path)
    blob = load_torch_file(path, what="encoder weights file")
    state = blob.get("encoder", blob) if isinstance(blob, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MultisegError(f"encoder weights: {path} holds no state dict (nor an 'encoder' entry)")
    own = model.encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise MultisegError(
            f"encoder weights: {path} does not match the {model.name} encoder: "
            f"missing keys [{_describe_keys(missing)}], unexpected keys [{_describe_keys(unexpected)}]"
        )
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise MultisegError(
            f"encoder weights: {path}: shape mismatch for {_describe_keys(wrong)}; "
            f"{k} is {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        )
    model.encoder.load_state_dict(state, strict=True)


def model_from_checkpoint(path: str | Path) -> MultiHeadSegmenter:
    """Rebuild a model from a checkpoint holding ``{"model_config": model.config, "model": state_dict}``.

    ``model_config`` is what :func:`create_model` stores in ``model.config`` (name, heads, head mode and
    architecture options); ``"state_dict"`` and ``"config"`` are accepted as key aliases.
    """
    path = Path(path)
    blob = load_torch_file(path)
    if not isinstance(blob, Mapping):
        raise MultisegError(f"checkpoint: {path} is not a dict")
    config = blob.get("model_config", blob.get("config"))
    state = blob.get("model", blob.get("state_dict"))
    if not isinstance(config, Mapping) or "name" not in config or not isinstance(state, Mapping):
        raise MultisegError(f"checkpoint: {path} needs 'model_config' (with 'name') and 'model' entries")
    model = create_model(
        config["name"],
        heads=config.get("heads"),
        head_mode=config.get("head_mode", "decoder"),
        pad_to_stride=config.get("pad_to_stride", False),
        taxonomy=config.get("taxonomy"),
        **dict(config.get("kwargs", {})),
    )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise MultisegError(
            f"checkpoint: {path} does not match its model_config: missing keys "
            f"[{_describe_keys(result.missing_keys)}], "
            f"unexpected keys [{_describe_keys(result.unexpected_keys)}]"
        )
    return model
