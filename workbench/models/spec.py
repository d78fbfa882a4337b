"""How to rebuild a model: :class:`ModelSpec`, recorded in every model card.

The kinds, written as the CLI's ``--model`` takes them:

- ``torchvision:resnet18[:num_classes=10,in_channels=1]``: torchvision's registry
  (``torchvision.models.get_model_builder``) or one of its model classes
  (``torchvision:VisionTransformer:image_size=28,...``), no pretrained weights.
  ``in_channels`` is the workbench's own keyword: the first convolution is rebuilt to take
  that many channels (e.g. 1 for Fashion-MNIST).
- ``timm:resnet18[:k=v,...]``: timm's registry, random weights (``in_channels`` -> ``in_chans``);
  ``timm:create_model:model_name=resnet18[,k=v,...]`` is the same model.
- ``hf:FOLDER`` (a local folder holding ``config.json``) or ``hf:<model type>[:k=v,...]``: a
  Hugging Face image classifier built from its config (``num_classes`` -> ``num_labels``).
- ``small-resnet`` / ``resnet18``: the project's own architectures
  (:data:`~workbench.models.registry.ARCHITECTURES`), keyword arguments as their ``config()``.
- ``pkg.module:factory[:k=v,...]``: any importable function or class returning an ``nn.Module``.
  It runs code of its author's choosing, so it is built only with ``trust_code=True``
  (:mod:`.safety`); the others are built without asking.

Values after ``key=`` are literals (``10``, ``0.5``, ``True``, ``(16, 32)``, ``'a'``, see
:mod:`.literals`), else plain strings. Building never unpickles nor downloads anything, and every
build is counted on the meta device first and refused above the size bound.

Example:
    >>> spec = ModelSpec.parse("torchvision:resnet18:num_classes=10,in_channels=1")
    >>> model = spec.build()
    >>> ModelSpec.of(model) == spec
    True
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch.nn as nn

from . import builders
from .literals import parse_literal
from .safety import CLOSED_SET, check_factory_name, check_size, count_parameters, on_meta, refuse_untrusted

KINDS = ("arch", "torchvision", "timm", "hf", "factory")
_REGISTRY_KINDS = ("torchvision", "timm", "hf")
_BUILT: "weakref.WeakKeyDictionary[nn.Module, ModelSpec]" = weakref.WeakKeyDictionary()

__all__ = ["KINDS", "ModelSpec", "parse_kwargs"]


def _split_args(text: str) -> list[str]:
    depth, part, parts, quote = 0, "", [], ""
    for ch in text:  # split on commas outside brackets and quotes: widths=(16,32),blocks=(1,1)
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        else:
            depth += ch in "([{"
            depth -= ch in ")]}"
        if ch == "," and depth == 0 and not quote:
            parts.append(part)
            part = ""
        else:
            part += ch
    return parts + [part]


def parse_kwargs(text: str) -> dict[str, Any]:
    """``"num_classes=10,in_channels=1"`` -> ``{"num_classes": 10, "in_channels": 1}``; a value
    that is not a literal stays a string (``act=relu`` -> ``"relu"``)."""
    out: dict[str, Any] = {}
    for p in (p.strip() for p in _split_args(text)):
        if not p:
            continue
        if "=" not in p:
            raise ValueError(f"model argument {p!r} is not key=value (e.g. num_classes=10)")
        k, v = (s.strip() for s in p.split("=", 1))
        if not k.isidentifier():
            raise ValueError(f"model argument name {k!r} is not a Python identifier")
        try:
            out[k] = parse_literal(v)
        except ValueError:
            out[k] = v
    return out


@dataclass(frozen=True)
class ModelSpec:
    """A recipe for an ``nn.Module``: ``kind`` (one of :data:`KINDS`), ``name`` and ``kwargs``.

    ``trust_code`` allows building a ``factory`` spec (code its author chose); it is never
    stored in cards and takes no part in comparisons.
    """

    kind: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    trust_code: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; use one of {KINDS}")
        if not isinstance(self.kwargs, dict) or not all(isinstance(k, str) and k.isidentifier() for k in self.kwargs):
            raise ValueError(f"the arguments of {self.kind} {self.name!r} must be an object of keyword arguments, "
                             f"got {self.kwargs!r}")
        if self.kind == "factory":
            check_factory_name(self.name)

    # ------------------------------------------------------------------ text and cards
    @classmethod
    def parse(cls, text: str, *, trust_code: bool = False) -> "ModelSpec":
        """Parse a ``--model`` value (see the module docstring); ``trust_code`` lets a
        ``module:factory`` be built."""
        from .registry import ARCHITECTURES

        text = text.strip()
        if not text:
            raise ValueError(f"empty --model; e.g. torchvision:resnet18, timm:resnet18 or small-resnet")
        head, _, rest = text.partition(":")
        if head in _REGISTRY_KINDS:
            name, _, args = rest.partition(":")
            if not name:
                raise ValueError(f"{head}: needs a model name, e.g. {head}:resnet18")
            kwargs = parse_kwargs(args)
            if head == "timm" and name == "create_model":  # timm:create_model:model_name=resnet18,... -> timm:resnet18
                name = _timm_model_name(kwargs)
            if head == "hf" and Path(name).expanduser().is_dir():
                name, config = builders.hf_spec_from_folder(Path(name).expanduser())
                kwargs = {**config, **kwargs}
            return cls(head, name, kwargs, trust_code)
        if head in ARCHITECTURES:
            return cls("arch", head, parse_kwargs(rest), trust_code)
        if not rest:
            raise ValueError(f"unknown model {text!r}: give one of {CLOSED_SET}, or a module:factory[:k=v,...] "
                             "with trust_code=True / --trust-code")
        fn, _, args = rest.partition(":")
        if not fn:
            raise ValueError(f"{text!r} names no factory after the module; write module:factory")
        return cls("factory", f"{head}:{fn}", parse_kwargs(args), trust_code)

    def __str__(self) -> str:
        args = ",".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        prefix = f"{self.kind}:{self.name}" if self.kind in _REGISTRY_KINDS else self.name
        return prefix + (f":{args}" if args else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, trust_code: bool = False) -> "ModelSpec":
        return cls(str(d["kind"]), str(d["name"]), dict(d.get("kwargs") or {}), trust_code)

    @classmethod
    def from_card(cls, card: Mapping[str, Any], *, trust_code: bool = False) -> "ModelSpec":
        """The spec a card records: ``builder`` (kind and name) with ``model_config`` (the
        keyword arguments), or the project arch of older cards (``arch`` + ``model_config``)."""
        if card.get("builder"):
            b = card["builder"]
            kw = card.get("model_config") or b.get("kwargs") or {}
            kind, name = str(b["kind"]), str(b["name"])
            if kind == "factory" and builders.torchvision_class(name):  # older cards: a torchvision model class
                kind, name = "torchvision", name.partition(":")[2]
            if kind in ("factory", "timm") and name in ("timm:create_model", "create_model") and isinstance(kw, dict):
                kw = dict(kw)  # timm's own factory, named as a module:factory: the closed-set timm builder
                kind, name = "timm", _timm_model_name(kw)
            return cls(kind, name, dict(kw) if isinstance(kw, dict) else kw, trust_code)
        if "arch" not in card or "model_config" not in card:
            raise ValueError("the card records no 'builder' (nor 'arch'/'model_config'): it does not say how "
                             "to rebuild the model; it was not written by workbench's save_model")
        return cls("arch", str(card["arch"]), dict(card["model_config"]), trust_code)

    @classmethod
    def of(cls, model: nn.Module) -> "ModelSpec | None":
        """The spec ``model`` was built from by :meth:`build`, if it was."""
        return _BUILT.get(model)

    # ------------------------------------------------------------------ building
    def check_trusted(self) -> None:
        """Refuse a ``factory`` spec unless ``trust_code`` (before anything is imported)."""
        if self.kind == "factory" and not self.trust_code:
            raise refuse_untrusted(self.name)

    def accepts(self, key: str) -> bool:
        """Whether the builder takes keyword ``key`` (for defaults such as ``num_classes``)."""
        if self.kind in _REGISTRY_KINDS:
            return builders.accepts(self.kind, self.name, key)
        return _takes(self._callable(), key)

    def with_defaults(self, **defaults: Any) -> "ModelSpec":
        """A copy with ``defaults`` added where the builder takes them and they are not set
        (under any of the library's names for them, e.g. timm's ``in_chans``)."""
        kw = dict(self.kwargs)
        for k, v in defaults.items():
            names = (k, *builders.ALIASES.get(self.kind, {}).get(k, ()))
            if v is not None and not any(n in kw for n in names) and self.accepts(k):
                kw[k] = v
        return dataclasses.replace(self, kwargs=kw)

    def count_parameters(self) -> int | None:
        """Parameters and buffers of the model, counted on the meta device (None if it cannot run there)."""
        self.check_trusted()
        return count_parameters(self._make)

    def build(self) -> nn.Module:
        """A new model (random weights). Raises ValueError naming what is wrong: an untrusted
        factory, a name outside the registries, bad arguments, a model above the size bound."""
        self.check_trusted()
        if not on_meta():
            check_size(count_parameters(self._make), str(self))
        model = self._make()
        _BUILT[model] = self
        return model

    def _make(self) -> nn.Module:
        try:
            if self.kind in _REGISTRY_KINDS:
                model = builders.build(self.kind, self.name, dict(self.kwargs))
            else:
                model = self._callable()(**self.kwargs)
        except TypeError as err:
            raise ValueError(f"cannot build {self}: {err}") from err
        if not isinstance(model, nn.Module):
            raise ValueError(f"{self} returned a {type(model).__name__}, not a torch.nn.Module")
        return model

    def _callable(self) -> Callable[..., Any]:
        if self.kind == "arch":
            from .registry import ARCHITECTURES

            if self.name not in ARCHITECTURES:
                raise ValueError(f"unknown architecture {self.name!r}; choose one of {sorted(ARCHITECTURES)}")
            return ARCHITECTURES[self.name]
        self.check_trusted()
        return _import_factory(self.name)


def _timm_model_name(kwargs: dict[str, Any]) -> str:
    """Pop ``model_name`` out of ``timm.create_model``'s arguments (ValueError if there is none)."""
    name = kwargs.pop("model_name", None)
    if not isinstance(name, str) or not name:
        raise ValueError("timm:create_model needs model_name=<a timm model>, e.g. "
                         "timm:create_model:model_name=resnet18,in_chans=1 (or simply timm:resnet18:in_chans=1)")
    return name


def _takes(fn: Callable[..., Any], key: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == key or p.kind == p.VAR_KEYWORD for p in params)


def _import_factory(target: str) -> Callable[..., Any]:
    check_factory_name(target)
    mod_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {mod_name!r} for model factory {target!r} ({err}); install "
                         "it or put it on PYTHONPATH") from err
    obj = module.__dict__.get(attr)  # one name defined in the module: never an attribute path
    if obj is None:
        raise ValueError(f"module {mod_name!r} has no {attr!r} (model factory {target!r})")
    if not callable(obj):
        raise ValueError(f"{target!r} is not callable")
    return obj

