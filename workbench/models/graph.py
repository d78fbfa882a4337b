"""Prefix/suffix splits of a model: what an edit of some parameters cannot change, and the rest.

Three kinds, chosen by :func:`split_for`:

* ``"stages"``: the project's ResNets run a slice of their stages (``forward(x, start=,
  stop=)``); the carry is the activation entering the first edited stage.
* ``"graph"``: any other model is traced once with ``torch.fx.symbolic_trace`` (in eval
  mode) and its graph is cut before the first node that uses an edited parameter or buffer.
  The prefix returns every value that crosses the cut (skip connections, shapes, the input
  itself); the suffix takes them back as inputs. Both halves are ``fx.GraphModule`` built on
  the traced model, so they keep the model's own qualified parameter names
  (``layer3.0.conv1.weight``) and ``torch.func.functional_call`` takes the usual names.
* ``"full"``: the model could not be traced (data-dependent control flow, say); the carry
  is the input and the suffix is the full forward. ``note`` says why, once.

The traced graph is cached per model (weakly) and rebuilt when the module tree or any
parameter object changes. A split is only valid in eval mode (the trace bakes in Python
branches on ``self.training``); the editor and the evaluator always run in eval mode.

Tracing patches ``nn.Module.__call__`` for the whole process while it runs, so a model running
in another thread meanwhile would be traced into the graph. :data:`TRACE_LOCK` is held while
tracing; a thread that runs a model beside the main thread (the evaluator's background passes)
holds it for each batch.
"""
from __future__ import annotations

import operator
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
import torch.fx as fx
import torch.nn as nn
from torch.func import functional_call

from .outputs import logits_of
from .resnet import ResNet

Params = Mapping[str, torch.Tensor]
Carry = tuple
#: Held while ``torch.fx`` traces a model, and by background threads while they run one (see above).
TRACE_LOCK = threading.RLock()

_INPLACE_FUNCS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                  operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor,
                  operator.ilshift, operator.irshift, operator.setitem}
_VIEW_METHODS = {"view", "reshape", "flatten", "transpose", "permute", "squeeze", "unsqueeze", "expand",
                 "narrow", "select", "t", "contiguous", "view_as", "expand_as", "unflatten", "chunk",
                 "split", "unbind", "__getitem__", "detach"}


def _call(module: nn.Module, params: Params | None, args: tuple, kwargs: dict | None = None,
          names: frozenset[str] | None = None) -> Any:
    """``module(*args)`` with ``params`` overriding its tensors (only those in ``names``, if given)."""
    if params and names is not None:
        params = {n: v for n, v in params.items() if n in names}
    if not params:
        return module(*args, **(kwargs or {}))
    return functional_call(module, dict(params), args, kwargs or {})


def _names(module: nn.Module | None) -> frozenset[str]:
    if module is None:
        return frozenset()
    return frozenset(n for n, _ in module.named_parameters(remove_duplicate=False)) | \
        frozenset(n for n, _ in module.named_buffers(remove_duplicate=False))


@dataclass(eq=False)
class Split:
    """A model cut in two for edits of some names.

    Attributes:
        kind: ``"stages"``, ``"graph"`` or ``"full"`` (see the module docstring).
        cut: where the suffix starts: a stage name, the first edited node's target, or ``""``.
        note: why the split is the full forward (empty otherwise).
        index: the cut's position (stage index or node index): later cuts rerun less.
    """

    kind: str
    cut: str
    note: str
    index: int
    model: nn.Module = field(repr=False)
    prefix_module: nn.Module | None = field(default=None, repr=False)
    suffix_module: nn.Module | None = field(default=None, repr=False)
    clone_carry: bool = False
    _stage: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # the halves of a graph cut hold only some of the model's tensors (same qualified names)
        self._prefix_names, self._suffix_names = _names(self.prefix_module), _names(self.suffix_module)

    def prefix(self, x: torch.Tensor, params: Params | None = None) -> Carry:
        """The values crossing the cut for images ``x: (N, C, H, W)``, as a tuple."""
        if self.kind == "stages":
            first = self.model.stage_names[0]  # type: ignore[union-attr,index]
            return (x,) if self._stage == first else (_call(self.model, params, (x,), {"stop": self._stage}),)
        if self.kind == "full":
            return (x,)
        out = _call(self.prefix_module, params, (x,), names=self._prefix_names)  # type: ignore[arg-type]
        return tuple(out)

    def suffix(self, carry: Carry, params: Params | None = None) -> torch.Tensor:
        """``(N, C)`` logits from the carry, with ``params`` (any names) overriding the model's.

        The output passes through :func:`~workbench.models.outputs.logits_of`: a model that
        returns ``{"logits": ...}`` or a Hugging Face output gives its logits here too.
        """
        if self.kind == "stages":
            return _call(self.model, params, (carry[0],), {"start": self._stage})
        if self.kind == "full":
            return logits_of(_call(self.model, params, (carry[0],)))
        if self.clone_carry:  # the suffix writes into one of its inputs: keep the caller's carry intact
            carry = tuple(c.clone() if isinstance(c, torch.Tensor) else c for c in carry)
        return logits_of(_call(self.suffix_module, params, carry, names=self._suffix_names))  # type: ignore[arg-type]

    def __call__(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        return self.suffix(self.prefix(x, params), params)


class _Trace:
    """A model's traced graph (or why tracing failed) and its splits by cut index."""

    def __init__(self, model: nn.Module) -> None:
        self.fingerprint = _fingerprint(model)
        self.error = ""
        self.graph_module: fx.GraphModule | None = None
        self.splits: dict[int, Split] = {}
        was = model.training
        model.eval()
        try:
            with TRACE_LOCK:
                self.graph_module = fx.symbolic_trace(model)
        except Exception as e:  # noqa: BLE001 - any failure means: no graph, use the full forward
            self.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        finally:
            model.train(was)


_TRACES: "weakref.WeakKeyDictionary[nn.Module, _Trace]" = weakref.WeakKeyDictionary()


def _fingerprint(model: nn.Module) -> tuple:
    return (tuple((n, id(m)) for n, m in model.named_modules()),
            tuple((n, id(p)) for n, p in model.named_parameters()),
            tuple((n, id(b)) for n, b in model.named_buffers()))


def trace(model: nn.Module) -> _Trace:
    """The cached trace of ``model`` (traced again when its modules or tensors were replaced)."""
    t = _TRACES.get(model)
    if t is None or t.fingerprint != _fingerprint(model):
        t = _Trace(model)
        _TRACES[model] = t
    return t


def split_for(model: nn.Module, names: Sequence[str] | set[str]) -> Split:
    """The split for edits of parameter/buffer ``names`` (non-empty) of ``model``.

    Raises:
        ValueError: ``names`` is empty or holds a name the model does not have.
    """
    names = set(names)
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    unknown = sorted(names - set(tensors))
    if not names or unknown:
        raise ValueError(f"cannot split {type(model).__name__} for names {unknown[:3] or '[]'}; "
                         "give parameter names from model.named_parameters()")
    if isinstance(model, ResNet):
        stages = list(model.stage_names)
        i = next(k for k, s in enumerate(stages) if any(n.startswith(s + ".") for n in names))
        return Split("stages", stages[i], "", i, model, _stage=stages[i])
    t = trace(model)
    if t.graph_module is None:
        return Split("full", "", f"the model could not be traced with torch.fx ({t.error}); "
                     "edits are scored with the full forward (correct, not faster)", 0, model)
    gm = t.graph_module
    ids = {id(tensors[n]) for n in names}
    nodes = list(gm.graph.nodes)
    cut = next((k for k, node in enumerate(nodes) if _touches(gm, node, ids)), None)
    if cut is None:
        return Split("full", "", "the traced graph never uses the edited parameters; "
                     "edits are scored with the full forward", 0, model)
    if cut not in t.splits:
        t.splits[cut] = _cut(gm, nodes, cut, model)
    return t.splits[cut]


def _touches(gm: fx.GraphModule, node: fx.Node, ids: set[int]) -> bool:
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        return any(id(v) in ids for v in (*mod.parameters(), *mod.buffers()))
    if node.op == "get_attr":
        obj: Any = gm
        for part in str(node.target).split("."):
            obj = getattr(obj, part)
        if isinstance(obj, nn.Module):
            return any(id(v) in ids for v in (*obj.parameters(), *obj.buffers()))
        return id(obj) in ids
    return False


def _cut(gm: fx.GraphModule, nodes: list[fx.Node], cut: int, model: nn.Module) -> Split:
    """Prefix = nodes[:cut] returning every value used after the cut; suffix = the rest."""
    before = set(nodes[:cut])
    crossing = [n for n in nodes[:cut] if any(u not in before for u in n.users)]
    pg = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in nodes[:cut]:
        env[n] = pg.node_copy(n, lambda a: env[a])
    pg.output(tuple(env[n] for n in crossing))
    sg = fx.Graph()
    env2: dict[fx.Node, fx.Node] = {n: sg.placeholder(n.name) for n in crossing}
    for n in nodes[cut:]:
        if n.op == "output":
            sg.output(fx.node.map_arg(n.args[0], lambda a: env2[a]))
        else:
            env2[n] = sg.node_copy(n, lambda a: env2[a])
    prefix, suffix = fx.GraphModule(gm, pg), fx.GraphModule(gm, sg)
    node = nodes[cut]
    return Split("graph", str(node.target), "", cut, model, prefix, suffix, _writes_inputs(suffix))


def _writes_inputs(gm: fx.GraphModule) -> bool:
    """Whether an in-place op of the graph may write into one of its inputs (or a view of one)."""
    aliased: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            aliased.add(n)
            continue
        first = n.args[0] if n.args else None
        if not isinstance(first, fx.Node) or first not in aliased:
            continue
        name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")
        inplace = bool(n.kwargs.get("inplace"))
        if n.op == "call_module":
            inplace = inplace or bool(getattr(gm.get_submodule(str(n.target)), "inplace", False))
        elif n.op == "call_function":
            inplace = inplace or n.target in _INPLACE_FUNCS
        elif n.op == "call_method":
            inplace = inplace or (name.endswith("_") and not name.endswith("__"))
        if inplace:
            return True
        if (n.op == "call_method" and name in _VIEW_METHODS) or \
                (n.op == "call_function" and name in _VIEW_METHODS | {"getitem", "flatten", "reshape"}):
            aliased.add(n)
    return False
