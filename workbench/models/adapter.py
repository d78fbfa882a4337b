"""What the core needs from a model, written down once: :class:`ModelAdapter`.

The contract (any ``nn.Module`` meets it; nothing else is read from the model, and no
attribute is probed):

* ``model(x)`` takes ``x: (N, C, H, W) float32`` (normalised images) and returns
  ``(N, num_classes)`` logits: a tensor, or an object or mapping holding it under ``logits``
  (a Hugging Face ``ImageClassifierOutput``, ``{"logits": ...}``). The core calls a model only
  through :func:`~workbench.models.outputs.forward_logits` (and the split's suffix), which
  takes the logits out (:mod:`workbench.models.outputs`); :func:`check_logits` says clearly
  when the output holds no logits.
* **Groups** name what an edit may change. A group is

  - a dotted module path from ``model.named_modules()``: ``"layer3"``, ``"layer3.1"``,
    ``"fc"``, ``"encoder.layers.encoder_layer_5"``;
  - a parameter's own name (``"class_token"``, for parameters held by the model itself);
  - an alias: the project's ResNets name their stages ``stem``, ``chain1`` ... ``head``
    (the paper's Table 2 subsets), which are plain module paths there;
  - ``"all"``: every parameter;
  - or a list/tuple of the above, joined in order without duplicates.

  The inferred groups (:meth:`ModelAdapter.group_names`) are the aliases, then the module
  paths the rules of :mod:`workbench.models.groups` find (through wrappers, into containers
  of blocks: ``features.9``, ``stages.2``, ``vit.layers.1``), then ``"all"``; with
  ``every=True`` every named submodule that holds parameters is listed too. The project's
  ResNets list their stages only. :meth:`ModelAdapter.default_group` is the middle block of
  the model's trunk (``layer3`` of a ResNet, ``blocks.6`` of a 12-block ViT).
* **Shape facts**: ``input_shape`` ``(C, H, W)`` and ``num_classes`` are known for the
  project's ResNets and are None for other models (the data set supplies them, or they are
  given to the adapter).
* **Prefix / suffix**: :meth:`ModelAdapter.split` returns a
  :class:`~workbench.models.graph.Split` for a set of edited names: ``prefix(x)`` computes
  everything the edited names cannot change (the values that cross the cut) and
  ``suffix(carry, params)`` the rest. The project's ResNets are a chain of stages
  (``forward(x, start=, stop=)``); any other model is cut with ``torch.fx``, and where
  tracing fails the split is the full forward (``split.kind == "full"``, ``split.note``
  says why).

Example:
    >>> a = ModelAdapter(torchvision.models.resnet18(num_classes=10))
    >>> a.group_names()[:5]
    ['conv1', 'bn1', 'layer1', 'layer1.0', 'layer1.1']
    >>> a.default_group()
    'layer3'
    >>> a.params("layer3.1")[:2]
    ['layer3.1.conv1.weight', 'layer3.1.bn1.weight']
"""
from __future__ import annotations

import difflib
from typing import Mapping, Sequence, Union

import torch
import torch.nn as nn

from .graph import Split, split_for
from .groups import group_paths, trunk
from .outputs import LOGITS_KEY, check_logits, describe_output, forward_logits, logits_of
from .resnet import ResNet

__all__ = ["ALL", "Group", "LOGITS_KEY", "ModelAdapter", "adapt", "check_logits", "describe_output",
           "forward_logits", "logits_of"]

#: A group: a name (module path, parameter name, alias or ``"all"``) or a sequence of names.
Group = Union[str, Sequence[str]]

ALL = "all"


class ModelAdapter:
    """Groups, shape facts and prefix/suffix splits of one ``nn.Module``.

    Args:
        model: any ``nn.Module`` classifier (see the module docstring for the contract).
        aliases: extra group names -> module paths or parameter names, e.g.
            ``{"late": ("layer3", "layer4")}`` (the project's ResNets add their stages).
        input_shape: ``(C, H, W)`` the model takes (default: known for the project's ResNets).
        num_classes: the number of logits (default: known for the project's ResNets).

    The adapter reads the module tree once, at construction: build a new one after
    replacing submodules (:func:`adapt` does this for you).
    """

    def __init__(self, model: nn.Module, *, aliases: Mapping[str, Sequence[str]] | None = None,
                 input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        own: dict[str, tuple[str, ...]] = {}
        self.stages: tuple[str, ...] | None = None
        if isinstance(model, ResNet):
            self.stages = tuple(model.stage_names)
            own = {s: (s,) for s in self.stages}
            input_shape = input_shape or model.input_shape
            num_classes = num_classes or model.num_classes
        self.input_shape: tuple[int, ...] | None = tuple(int(v) for v in input_shape) if input_shape else None
        self.num_classes: int | None = int(num_classes) if num_classes is not None else None
        self._modules: dict[str, nn.Module] = dict(model.named_modules())
        self._params: dict[str, torch.Tensor] = dict(model.named_parameters())
        self._name_of: dict[int, str] = {id(p): n for n, p in self._params.items()}
        self.aliases: dict[str, tuple[str, ...]] = {**own}
        for name, paths in (aliases or {}).items():
            self.aliases[name] = (paths,) if isinstance(paths, str) else tuple(paths)
        for name, paths in self.aliases.items():
            for p in paths:
                self._names_under(p, via=name)  # validates the alias targets now

    # ----------------------------------------------------------------- groups
    def group_names(self, every: bool = False) -> list[str]:
        """The inferred groups: aliases, the module paths of :func:`~workbench.models.groups.group_paths`
        (the project's ResNets: their stages only), ``"all"``.

        With ``every`` also every named submodule holding parameters (``"layer3.1"``,
        ``"layer3.1.conv1"`` ...), in module order.
        """
        out = list(self.aliases)
        if self.stages is None:
            out += [p for p in group_paths(self.model)[0] if p not in out]
        if every:
            out += [p for p in self.module_paths() if p not in out]
        return [*out, ALL]

    def default_group(self, prefer: str | None = None) -> str:
        """The group edited when none is named: ``prefer`` where the model has that group (the
        project's tuned ``chain3``), else the middle member of the model's trunk, the run of
        repeated blocks nearest the root (:func:`~workbench.models.groups.trunk`): ``layer3`` of
        a ResNet, ``blocks.6`` of a 12-block ViT, ``stages.2`` of a ConvNeXt; the head (the last
        group) only when it is the only one. Without a trunk, the last group before the head;
        ``"all"`` for a model without groups.
        """
        names = self.group_names()[:-1]
        if prefer is not None and prefer in names:
            return prefer
        if self.stages is not None:
            run: list[str] | None = [s for s in self.stages[1:-1]] or list(self.stages)
        else:
            run = trunk(group_paths(self.model)[1])
        if run and len(run) > 1 and run[-1] == names[-1]:  # the head ends the run: never the default
            run = run[:-1]
        if run:
            return run[len(run) // 2]
        return names[-2] if len(names) >= 2 else (names[0] if names else ALL)

    def groups(self, every: bool = False) -> dict[str, list[str]]:
        """Group name -> its parameter names, for :meth:`group_names`."""
        return {g: self.params(g) for g in self.group_names(every)}

    def module_paths(self) -> list[str]:
        """Every named submodule that holds parameters, in ``named_modules()`` order."""
        return [p for p, m in self._modules.items() if p and any(True for _ in m.parameters())]

    def params(self, group: Group) -> list[str]:
        """Parameter names of ``group`` (order kept, no duplicates).

        Raises:
            ValueError: an unknown name (with the closest names), a name that holds no
                parameters, or an empty list. TypeError: a group that is not a str or list.
        """
        wanted = self._wanted(group)
        names: list[str] = []
        for g in wanted:
            if g == ALL:
                found = list(self._params)
            elif g in self.aliases:
                found = [n for p in self.aliases[g] for n in self._names_under(p, via=g)]
            else:
                found = self._names_under(g)
            names += [n for n in found if n not in names]
        return names

    def module(self, path: str) -> nn.Module:
        """The submodule at dotted ``path`` (ValueError with close names when absent)."""
        if not isinstance(path, str) or path not in self._modules or not path:
            raise ValueError(f"{type(self.model).__name__} has no module {path!r}{self._suggest(path)}")
        return self._modules[path]

    def with_model(self, model: nn.Module) -> "ModelAdapter":
        """An adapter of ``model`` (e.g. a copy) with this one's aliases and shape facts."""
        return ModelAdapter(model, aliases=self.aliases, input_shape=self.input_shape, num_classes=self.num_classes)

    # ----------------------------------------------------------------- splits
    def split(self, names: Sequence[str] | set[str]) -> Split:
        """The prefix/suffix split for edits of the parameter (or buffer) ``names``.

        See :func:`workbench.models.graph.split_for`.
        """
        return split_for(self.model, names)

    # ----------------------------------------------------------------- internals
    def _wanted(self, group: Group) -> list[str]:
        if isinstance(group, str):
            wanted = [group]
        elif isinstance(group, (list, tuple)) and all(isinstance(g, str) for g in group):
            wanted = list(group)
        else:
            raise TypeError(f"a group is a module path such as 'layer3', a list of them, or 'all'; got {group!r}")
        if not wanted:
            raise ValueError(f"no editable group given; choose from {self.group_names()}")
        return wanted

    def _names_under(self, path: str, via: str | None = None) -> list[str]:
        """Parameter names reachable from module path (or parameter name) ``path``."""
        where = f" (alias {via!r})" if via is not None and via != path else ""
        if path in self._params:
            return [path]
        if path not in self._modules or not path:
            example = next((p for p in self.module_paths() if "." in p), None)
            also = f", e.g. {example!r}" if example else ""
            raise ValueError(f"unknown layer group {path!r}{where}: {type(self.model).__name__} has no module or "
                             f"parameter of that name{self._suggest(path)}. Groups: {self.group_names()}; "
                             f"any dotted path from model.named_modules() works too{also}")
        ids = {id(p) for p in self._modules[path].parameters()}
        found = [n for n, p in self._params.items() if id(p) in ids]
        if not found:
            near = [p for p in self.module_paths() if p.startswith(path.rsplit(".", 1)[0])][:3] or self.group_names()[:3]
            raise ValueError(f"group {path!r}{where} ({type(self._modules[path]).__name__}) holds no parameters, "
                             f"so an edit cannot change it; choose a module with weights, e.g. {near}")
        return found

    def _suggest(self, path: object) -> str:
        if not isinstance(path, str):
            return ""
        pool = list(dict.fromkeys([*self.aliases, ALL, *(p for p in self._modules if p), *self._params]))
        close = difflib.get_close_matches(path, pool, n=3, cutoff=0.6)
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""

    def __repr__(self) -> str:
        return (f"ModelAdapter({type(self.model).__name__}, groups={self.group_names()}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes})")


def adapt(model: nn.Module | ModelAdapter) -> ModelAdapter:
    """The adapter of ``model`` (an adapter is returned as it is)."""
    return model if isinstance(model, ModelAdapter) else ModelAdapter(model)
