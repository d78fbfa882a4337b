"""Captum wrappers: attribution maps for (weights, image, label) and before/after an edit.

captum is imported lazily, so this package imports without it.
"""
from .before_after_maps import AttributionSet, before_after, class_probabilities
from .gradcam_layers import LayerInfo, cam_layers, default_cam_layer, layer_outputs
from .methods import METHODS, REDUCTIONS, attribute, method_kwargs

__all__ = ["AttributionSet", "LayerInfo", "METHODS", "REDUCTIONS", "attribute", "before_after", "cam_layers", "class_probabilities",
           "default_cam_layer", "layer_outputs", "method_kwargs"]
