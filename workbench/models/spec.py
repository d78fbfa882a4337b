"""How to rebuild a model: :class:`ModelSpec`, recorded in every model card.

Three kinds, written as the CLI's ``--model`` takes them:

- ``torchvision:resnet18[:num_classes=10,in_channels=1]``: a torchvision builder
  (``torchvision.models.get_model``, no pretrained weights). ``in_channels`` is the
  workbench's own keyword: the first convolution is rebuilt to take that many channels
  (e.g. 1 for Fashion-MNIST).
- ``pkg.module:factory[:key=value,...]``: any importable callable returning an
  ``nn.Module`` (a class or a function); e.g. ``torchvision.models:VisionTransformer:...``.
- ``small-resnet`` / ``resnet18``: the project's own architectures
  (:data:`~workbench.models.registry.ARCHITECTURES`), keyword arguments as their ``config()``.

Values after ``key=`` are Python literals (``10``, ``0.5``, ``True``, ``(16, 32)``, ``'a'``),
else plain strings. Rebuilding imports the named module only (no pickles, no code in the
card): a factory must be importable where the model is reopened.

Example:
    >>> spec = ModelSpec.parse("torchvision:resnet18:num_classes=10,in_channels=1")
    >>> model = spec.build()
    >>> ModelSpec.of(model) == spec
    True
"""
from __future__ import annotations

import ast
import importlib
import inspect
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

KINDS = ("arch", "torchvision", "factory")
_BUILT: "weakref.WeakKeyDictionary[nn.Module, ModelSpec]" = weakref.WeakKeyDictionary()

__all__ = ["KINDS", "ModelSpec", "infer_spec", "parse_kwargs"]


def parse_kwargs(text: str) -> dict[str, Any]:
    """``"num_classes=10,in_channels=1"`` -> ``{"num_classes": 10, "in_channels": 1}``."""
    out: dict[str, Any] = {}
    depth, part, parts = 0, "", []
    for ch in text:  # split on commas outside brackets: widths=(16,32),blocks=(1,1)
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    for p in (p.strip() for p in parts):
        if not p:
            continue
        if "=" not in p:
            raise ValueError(f"model argument {p!r} is not key=value (e.g. num_classes=10)")
        k, v = (s.strip() for s in p.split("=", 1))
        if not k.isidentifier():
            raise ValueError(f"model argument name {k!r} is not a Python identifier")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
        if isinstance(out[k], tuple):
            out[k] = list(out[k])  # JSON-friendly, as cards store them
    return out


@dataclass(frozen=True)
class ModelSpec:
    """A recipe for an ``nn.Module``: ``kind`` (one of :data:`KINDS`), ``name`` and ``kwargs``."""

    kind: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; use one of {KINDS}")

    # ------------------------------------------------------------------ text and cards
    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        """Parse a ``--model`` value (see the module docstring)."""
        from .registry import ARCHITECTURES

        text = text.strip()
        if not text:
            raise ValueError("empty --model; e.g. torchvision:resnet18 or mypkg.models:make_cnn")
        if text.startswith("torchvision:"):
            _, name, args = (text.split(":", 2) + [""])[:3]
            if not name:
                raise ValueError("torchvision: needs a model name, e.g. torchvision:resnet18")
            return cls("torchvision", name, parse_kwargs(args))
        head, _, rest = text.partition(":")
        if head in ARCHITECTURES:
            return cls("arch", head, parse_kwargs(rest))
        if not rest:
            raise ValueError(f"unknown model {text!r}: give torchvision:<name>[:k=v,...], an importable "
                             f"module:factory[:k=v,...], or one of {sorted(ARCHITECTURES)}")
        fn, _, args = rest.partition(":")
        if not fn:
            raise ValueError(f"{text!r} names no factory after the module; write module:factory")
        return cls("factory", f"{head}:{fn}", parse_kwargs(args))

    def __str__(self) -> str:
        args = ",".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        prefix = {"torchvision": f"torchvision:{self.name}", "factory": self.name, "arch": self.name}[self.kind]
        return prefix + (f":{args}" if args else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        return cls(str(d["kind"]), str(d["name"]), dict(d.get("kwargs") or {}))

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> "ModelSpec":
        """The spec a card records: ``builder`` (kind and name) with ``model_config`` (the
        keyword arguments), or the project arch of older cards (``arch`` + ``model_config``)."""
        if card.get("builder"):
            b = card["builder"]
            return cls(str(b["kind"]), str(b["name"]), dict(card.get("model_config") or b.get("kwargs") or {}))
        if "arch" not in card or "model_config" not in card:
            raise ValueError("the card records no 'builder' (nor 'arch'/'model_config'): it does not say how "
                             "to rebuild the model; it was not written by workbench's save_model")
        return cls("arch", str(card["arch"]), dict(card["model_config"]))

    @classmethod
    def of(cls, model: nn.Module) -> "ModelSpec | None":
        """The spec ``model`` was built from by :meth:`build`, if it was."""
        return _BUILT.get(model)

    # ------------------------------------------------------------------ building
    def accepts(self, key: str) -> bool:
        """Whether the builder takes keyword ``key`` (for defaults such as ``num_classes``)."""
        if self.kind == "torchvision":
            return key in ("num_classes", "in_channels") or _takes(_tv_builder(self.name), key)
        return _takes(self._callable(), key)

    def with_defaults(self, **defaults: Any) -> "ModelSpec":
        """A copy with ``defaults`` added where the builder takes them and they are not set."""
        kw = dict(self.kwargs)
        for k, v in defaults.items():
            if v is not None and k not in kw and self.accepts(k):
                kw[k] = v
        return ModelSpec(self.kind, self.name, kw)

    def build(self) -> nn.Module:
        """A new model (random weights). Raises ValueError naming what is wrong."""
        try:
            if self.kind == "torchvision":
                model = _build_torchvision(self.name, dict(self.kwargs))
            else:
                model = self._callable()(**self.kwargs)
        except TypeError as err:
            raise ValueError(f"cannot build {self}: {err}") from err
        if not isinstance(model, nn.Module):
            raise ValueError(f"{self} returned a {type(model).__name__}, not a torch.nn.Module")
        _BUILT[model] = self
        return model

    def _callable(self) -> Callable[..., Any]:
        if self.kind == "arch":
            from .registry import ARCHITECTURES

            if self.name not in ARCHITECTURES:
                raise ValueError(f"unknown architecture {self.name!r}; choose one of {sorted(ARCHITECTURES)}")
            return ARCHITECTURES[self.name]
        return _import_factory(self.name)


def _takes(fn: Callable[..., Any], key: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == key or p.kind == p.VAR_KEYWORD for p in params)


def _import_factory(target: str) -> Callable[..., Any]:
    mod_name, _, attr = target.partition(":")
    if mod_name == "__main__" or not attr:
        raise ValueError(f"{target!r} is not importable: define the factory in a module (e.g. mypkg/models.py) "
                         "and give it as mypkg.models:make_model")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {mod_name!r} for model factory {target!r} ({err}); install "
                         "it or put it on PYTHONPATH") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {mod_name!r} has no {attr!r} (model factory {target!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{target!r} is not callable")
    return obj


def _tv_builder(name: str) -> Callable[..., Any]:
    import torchvision.models as tvm

    try:
        return tvm.get_model_builder(name)
    except ValueError:
        raise ValueError(f"torchvision has no model {name!r}; see torchvision.models.list_models() "
                         "(e.g. resnet18, mobilenet_v3_small, vit_b_16)") from None


def _build_torchvision(name: str, kw: dict[str, Any]) -> nn.Module:
    in_channels = kw.pop("in_channels", None)
    if "weights" in kw and kw["weights"] is not None:
        raise ValueError("pretrained weights are not downloaded here; load them with --weights FILE")
    kw.pop("weights", None)
    model = _tv_builder(name)(weights=None, **kw)
    if in_channels is not None:
        _set_in_channels(model, int(in_channels))
    return model


def _set_in_channels(model: nn.Module, channels: int) -> None:
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


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _matches(spec: ModelSpec, model: nn.Module) -> bool:
    try:
        with torch.device("meta"):
            other = spec.build()
    except Exception:  # noqa: BLE001 - a candidate that cannot be built simply does not match
        return False
    return _shapes(other) == _shapes(model)


def infer_spec(model: nn.Module) -> ModelSpec | None:
    """How to rebuild ``model``: the spec it was built from, else a torchvision builder or an
    importable class (with no required arguments) whose weights have the same names and
    shapes, else None."""
    known = ModelSpec.of(model)
    if known is not None:
        return known
    from .resnet import ResNet

    if isinstance(model, ResNet):  # small_resnet takes every field of config()
        return ModelSpec("arch", "small-resnet", model.config())
    mod = type(model).__module__
    if mod.startswith("torchvision.models"):
        import torchvision.models as tvm

        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        kw: dict[str, Any] = {"num_classes": linears[-1].out_features} if linears else {}
        if convs and convs[0].in_channels != 3:
            kw["in_channels"] = convs[0].in_channels
        for name in tvm.list_models():
            if getattr(tvm.get_model_builder(name), "__module__", "") == mod:
                spec = ModelSpec("torchvision", name, dict(kw))
                if _matches(spec, model):
                    return spec
    if mod not in ("__main__", "builtins") and not mod.startswith("torch.nn"):
        target = f"{mod}:{type(model).__qualname__}"
        for kw in ({}, _ctor_args_from_attributes(model)):
            spec = ModelSpec("factory", target, kw)
            if "<locals>" not in target and _matches(spec, model):
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
