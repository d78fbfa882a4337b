"""How to rebuild a model that was not built from a spec: :func:`infer_spec`."""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn

from .spec import ModelSpec

__all__ = ["infer_spec", "rebuild_hint", "timm_architecture"]


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
    torchvision builder or model class, a timm model or a Hugging Face config (the wrapper
    the ``hf:`` builder makes, or one of transformers' image-classification classes as built
    with ``ViTForImageClassification(config)``) whose weights have the same names and shapes; else its own importable class (a ``factory`` spec, which
    reopening builds only with ``trust_code=True``); else None."""
    known = ModelSpec.of(model)
    if known is not None:
        return known
    from .hf_builders import HFImageClassifier, hf_class_name, hf_settings
    from .resnet import ResNet

    if isinstance(model, ResNet):  # small_resnet takes every field of config()
        return ModelSpec("arch", "small-resnet", model.config())
    if isinstance(model, HFImageClassifier) or hf_class_name(model):  # hf:<model type> or hf:<class name>
        hf = ModelSpec("hf", *hf_settings(model))
        return hf if _matches(hf, model) else None
    mod = type(model).__module__
    arch = timm_architecture(model)
    if arch:
        data = _data_kwargs(model, "in_chans")
        for kw in (data, {**data, **_timm_vit_args(model)}):
            if _matches(ModelSpec("timm", arch, kw), model):
                return ModelSpec("timm", arch, kw)
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


def timm_architecture(model: nn.Module) -> str | None:
    """The timm registry name a timm model was created as (its ``pretrained_cfg``), else None."""
    if not type(model).__module__.startswith("timm.models"):
        return None
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    return str(arch) if arch else None


def _timm_vit_args(model: nn.Module) -> dict[str, Any]:
    """A timm vision transformer's shape arguments read back from its modules (``img_size``,
    ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``), as far as its class
    takes them; ``{}`` for other models."""
    pe, blocks = getattr(model, "patch_embed", None), getattr(model, "blocks", None)
    if pe is None or not isinstance(blocks, nn.Sequential) or not len(blocks):
        return {}
    try:
        params = inspect.signature(type(model)).parameters
    except (TypeError, ValueError):
        return {}
    side = lambda v: v[0] if isinstance(v, (tuple, list)) and len(set(v)) == 1 else v  # noqa: E731
    first = blocks[0]
    embed = getattr(model, "embed_dim", None)
    fc1 = getattr(getattr(first, "mlp", None), "fc1", None)
    found = {"img_size": side(getattr(pe, "img_size", None)), "patch_size": side(getattr(pe, "patch_size", None)),
             "embed_dim": embed, "depth": len(blocks),
             "num_heads": getattr(getattr(first, "attn", None), "num_heads", None),
             "mlp_ratio": fc1.out_features / embed if isinstance(fc1, nn.Linear) and embed else None}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in found.items() if k in params and v is not None}


def rebuild_hint(model: nn.Module) -> str:
    """What to pass as ``builder=`` for a model :func:`infer_spec` cannot rebuild (for messages)."""
    arch = timm_architecture(model)
    if arch:
        known = ",".join(f"{k}={v!r}" for k, v in _data_kwargs(model, "in_chans").items())
        return (f"this timm {arch} was built with arguments that cannot be read back from it: pass the keyword "
                f"arguments you gave timm.create_model, builder='timm:{arch}:{known}{',' if known else ''}<the others "
                "as k=v, e.g. img_size=32,embed_dim=192>'")
    return ("pass builder='torchvision:<name>:num_classes=10' (a torchvision model), builder='timm:<name>:k=v', or "
            "builder='mypkg.models:make_model:width=32' with trust_code=True (an importable function or class "
            "that returns it); a model defined in a notebook cell cannot be rebuilt from its card, so move its "
            "class into a .py module")


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
