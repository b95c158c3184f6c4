"""multiseg: efficient real-time semantic segmentation trained on several street-scene datasets at once."""

__version__ = "0.2.0"
