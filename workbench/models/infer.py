"""How to rebuild a model that was not built from a spec: :func:`infer_spec`."""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn

from .spec import ModelSpec

__all__ = ["infer_spec"]


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _matches(spec: ModelSpec, model: nn.Module) -> bool:
    try:
        with torch.device("meta"):
            other = spec.build()
    except Exception:  # noqa: BLE001 - a candidate that cannot be built simply does not match
        return False
    return _shapes(other) == _shapes(model)


def _data_kwargs(model: nn.Module, channels_key: str) -> dict[str, Any]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    head = linears[-1].out_features if linears else (convs[-1].out_channels if convs else None)  # SqueezeNet: a conv
    kw: dict[str, Any] = {"num_classes": head} if head is not None else {}
    if convs and convs[0].in_channels != 3:
        kw[channels_key] = convs[0].in_channels
    return kw


def infer_spec(model: nn.Module) -> ModelSpec | None:
    """How to rebuild ``model``: the spec it was built from; else the project's ResNets, a
    torchvision builder or model class, a timm model or a Hugging Face config whose weights
    have the same names and shapes; else its own importable class (a ``factory`` spec, which
    reopening builds only with ``trust_code=True``); else None."""
    known = ModelSpec.of(model)
    if known is not None:
        return known
    from .builders import HFImageClassifier, hf_settings
    from .resnet import ResNet

    if isinstance(model, ResNet):  # small_resnet takes every field of config()
        return ModelSpec("arch", "small-resnet", model.config())
    if isinstance(model, HFImageClassifier):
        hf = ModelSpec("hf", *hf_settings(model))
        return hf if _matches(hf, model) else None
    mod = type(model).__module__
    if mod.startswith("timm.models"):
        arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
        if arch and _matches(ModelSpec("timm", str(arch), _data_kwargs(model, "in_chans")), model):
            return ModelSpec("timm", str(arch), _data_kwargs(model, "in_chans"))
    if mod.startswith("torchvision.models"):
        import torchvision.models as tvm

        kw = _data_kwargs(model, "in_channels")
        for name in tvm.list_models():
            if getattr(tvm.get_model_builder(name), "__module__", "") == mod:
                spec = ModelSpec("torchvision", name, dict(kw))
                if _matches(spec, model):
                    return spec
        if getattr(tvm, type(model).__name__, None) is type(model):  # e.g. VisionTransformer(image_size=28, ...)
            for kw in ({}, _ctor_args_from_attributes(model)):
                spec = ModelSpec("torchvision", type(model).__name__, kw)
                if _matches(spec, model):
                    return spec
    qualname = type(model).__qualname__
    if mod not in ("__main__", "builtins") and not mod.startswith("torch.nn") and "." not in qualname:
        target = f"{mod}:{qualname}"
        for kw in ({}, _ctor_args_from_attributes(model)):
            # the model's own class, already imported and run by whoever built it
            spec = ModelSpec("factory", target, kw, trust_code=True)
            if _matches(spec, model):
                return spec
    return None


def _ctor_args_from_attributes(model: nn.Module) -> dict[str, Any]:
    """Constructor arguments read back from same-named attributes (plain values only), e.g.
    torchvision's ``VisionTransformer(image_size=, patch_size=, hidden_dim= ...)``."""
    try:
        params = inspect.signature(type(model)).parameters
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for name in params:
        v = model.__dict__.get(name)
        if isinstance(v, (bool, int, float, str)) or (isinstance(v, (list, tuple)) and
                                                       all(isinstance(e, (int, float)) for e in v)):
            out[name] = list(v) if isinstance(v, tuple) else v
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if "num_layers" in params and isinstance(layers, nn.Module):  # torchvision's VisionTransformer
        out["num_layers"] = len(list(layers.children()))
        attn = getattr(next(iter(layers.children()), None), "self_attention", None)
        if "num_heads" in params and isinstance(attn, nn.MultiheadAttention):
            out["num_heads"] = attn.num_heads
    return out
