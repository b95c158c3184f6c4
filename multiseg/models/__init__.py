"""The six efficient segmentation networks, each one shared encoder plus one head per dataset.

``create_model(name, heads=..., head_mode=...)`` builds any of them; ``list_models()`` names them.
"""

from multiseg.models.fold import fold_batchnorm
from multiseg.models.inference import inference_model
from multiseg.models.multihead import Architecture, HeadsAsTuple, MultiHeadSegmenter
from multiseg.models.registry import (
    DEFAULT_HEADS,
    HEAD_MODES,
    create_model,
    list_models,
    load_encoder_weights,
    model_from_checkpoint,
    register_model,
)

__all__ = [
    "DEFAULT_HEADS",
    "HEAD_MODES",
    "Architecture",
    "HeadsAsTuple",
    "MultiHeadSegmenter",
    "create_model",
    "fold_batchnorm",
    "inference_model",
    "list_models",
    "load_encoder_weights",
    "model_from_checkpoint",
    "register_model",
]
