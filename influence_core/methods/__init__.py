"""Influence methods: one module per method, each a subclass of `InfluenceMethod` that registers itself.

Scores everywhere: lower = more detrimental (see `base` for the sign convention).
"""

import importlib
import pkgutil

from .base import (METHODS, InfluenceMethod, NoSettings, PredictionMethod, ScoringContext, class_probabilities, get_method,
                   stream_inner_products, training_logits)

# Import every module of this package so each method registers itself: adding a method = adding a file.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "InfluenceMethod", "NoSettings", "PredictionMethod", "ScoringContext", "class_probabilities", "get_method",
           "stream_inner_products", "training_logits"]
