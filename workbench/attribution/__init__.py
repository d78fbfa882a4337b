"""Captum wrappers: attribution maps for (weights, image, label) and before/after an edit.

captum is imported lazily, so this package imports without it.
"""
from .compare import AttributionSet, before_after
from .methods import METHODS, REDUCTIONS, attribute, method_kwargs

__all__ = ["AttributionSet", "METHODS", "REDUCTIONS", "attribute", "before_after", "method_kwargs"]
