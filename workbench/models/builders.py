"""The registry builders of :class:`~workbench.models.spec.ModelSpec`: torchvision, timm and
Hugging Face configs. Each looks its name up in the library's own registry and builds random
weights: nothing is downloaded, and no code named by a card runs.

timm and transformers are optional: a spec that needs one says how to install it.

Example:
    >>> build("timm", "resnet18", {"num_classes": 10, "in_chans": 1})      # doctest: +SKIP
    >>> build("hf", "resnet", {"num_channels": 1, "hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 10})
    HFImageClassifier(...)                                                 # doctest: +SKIP
"""
from __future__ import annotations

import re
from typing import Any, Callable

import torch.nn as nn

from .hf_builders import (HF_DROPPED, HF_REFUSED, MAX_CONFIG_BYTES, HFImageClassifier, build_hf, hf_config_class,
                          hf_settings, hf_spec_from_folder)

__all__ = ["ALIASES", "HF_DROPPED", "HF_REFUSED", "HFImageClassifier", "MAX_CONFIG_BYTES", "accepts", "build",
           "hf_settings", "hf_spec_from_folder", "set_in_channels", "torchvision_class"]

# Keyword arguments a card may not pass to timm.create_model: each loads weights from a file or the hub.
TIMM_REFUSED = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict", "checkpoint_path",
                "cache_dir")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# The workbench's names for the data's classes and channels -> each library's keywords (a default
# is not added where the spec already sets one of them).
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {"timm": {"in_channels": ("in_chans",)},
           "hf": {"num_classes": ("num_labels", "id2label"), "in_channels": ("num_channels",)}}


def _need(package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ValueError(f"this model needs the {package} package, which is not installed: pip install {package}") \
            from None


def build(kind: str, name: str, kw: dict[str, Any]) -> nn.Module:
    """A random-weight model from ``kind``'s registry (``torchvision``, ``timm`` or ``hf``)."""
    return {"torchvision": _torchvision, "timm": _timm, "hf": build_hf}[kind](name, dict(kw))


def accepts(kind: str, name: str, key: str) -> bool:
    """Whether ``kind:name`` takes the workbench keyword ``key`` (``num_classes``, ``in_channels``,
    ``input_size``): a default the data set can fill."""
    if kind == "torchvision":
        import inspect

        if key in ("num_classes", "in_channels"):
            return True
        try:
            params = inspect.signature(_tv_builder(name)).parameters
        except (TypeError, ValueError):
            return False
        return key in params
    if kind == "timm":
        return key in ("num_classes", "in_channels")
    if kind == "hf":
        if key == "num_classes":
            return True
        cfg = hf_config_class(name)
        return key == "in_channels" and hasattr(cfg(), "num_channels")
    return False


# ---------------------------------------------------------------------------- torchvision
def _tv_builder(name: str) -> Callable[..., Any]:
    import torchvision.models as tvm

    if not _NAME.fullmatch(name):
        raise ValueError(f"torchvision model name {name!r} is malformed; e.g. resnet18")
    cls = getattr(tvm, name, None) if name[:1].isupper() else None
    if isinstance(cls, type) and issubclass(cls, nn.Module):  # a model class, e.g. VisionTransformer
        return cls
    try:
        return tvm.get_model_builder(name)
    except ValueError:
        raise ValueError(f"torchvision has no model {name!r}; see torchvision.models.list_models() "
                         "(e.g. resnet18, mobilenet_v3_small, vit_b_16)") from None


def torchvision_class(target: str) -> bool:
    """Whether ``module:Name`` is a model class that ``torchvision.models`` exports and defines
    in that very module (e.g. ``torchvision.models.vision_transformer:VisionTransformer``)."""
    mod, _, attr = target.partition(":")
    if not mod.startswith("torchvision.models") or not attr.isidentifier():
        return False
    import torchvision.models as tvm

    cls = getattr(tvm, attr, None)
    return isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == mod


def _torchvision(name: str, kw: dict[str, Any]) -> nn.Module:
    in_channels = kw.pop("in_channels", None)
    if "weights" in kw and kw["weights"] is not None:
        raise ValueError("pretrained weights are not downloaded here; load them with --weights FILE")
    kw.pop("weights", None)
    builder = _tv_builder(name)
    model = builder(**kw) if isinstance(builder, type) else builder(weights=None, **kw)
    if in_channels is not None:
        set_in_channels(model, int(in_channels))
    return model


def set_in_channels(model: nn.Module, channels: int) -> None:
    """Rebuild the first ``Conv2d`` of ``model`` to take ``channels`` input channels."""
    for path, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.in_channels == channels:
                return
            new = nn.Conv2d(channels, m.out_channels, m.kernel_size, m.stride, m.padding,  # type: ignore[arg-type]
                            m.dilation, m.groups, m.bias is not None, m.padding_mode)  # type: ignore[arg-type]
            parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
            setattr(parent, path.rpartition(".")[2], new)
            return
    raise ValueError(f"{type(model).__name__} has no Conv2d whose input channels in_channels could set")


# ---------------------------------------------------------------------------- timm
def _timm(name: str, kw: dict[str, Any]) -> nn.Module:
    timm = _need("timm")
    if not _NAME.fullmatch(name) or not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r} (hub and local-file names are not opened here); see "
                         "timm.list_models() (e.g. resnet18, vit_tiny_patch16_224, test_vit)")
    bad = [k for k in TIMM_REFUSED if k in kw and kw[k] not in (None, False)]
    if bad:
        raise ValueError(f"timm:{name} argument {bad[0]!r} loads weights from a file or the hub: refused. Build the "
                         "model with random weights and load trained weights with --weights FILE")
    for k in TIMM_REFUSED:
        kw.pop(k, None)
    if "in_channels" in kw:
        kw["in_chans"] = kw.pop("in_channels")
    return timm.create_model(name, pretrained=False, **kw)
