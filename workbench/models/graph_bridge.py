"""From one cut of a traced model to a later one: the values crossing cut ``b`` computed from the
values crossing cut ``a`` (``a < b``), so that a cache kept at ``a`` serves an edit cut at ``b``
without running the layers before ``a`` again.

Every value that crosses ``b`` and was made before ``a`` also crosses ``a`` (it is used after
``b``), so the bridge takes ``a``'s carry as its inputs, runs the graph's nodes between the two
cuts, and returns ``b``'s carry in the order :class:`~workbench.models.graph.Split` uses.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.fx as fx

from .graph import Carry, Split, _writes_inputs, trace

__all__ = ["bridge"]

Bridge = Callable[[Carry], Carry]


def _crossing(nodes: list[fx.Node], cut: int) -> list[fx.Node]:
    before = set(nodes[:cut])
    return [n for n in nodes[:cut] if any(u not in before for u in n.users)]


def bridge(a: Split, b: Split) -> Bridge | None:
    """``carry_b = bridge(a, b)(carry_a)``, or None when ``a`` cannot serve ``b`` (not two graph
    cuts of the same trace with ``a`` before ``b``)."""
    if a.kind != "graph" or b.kind != "graph" or a.model is not b.model or not a.index < b.index:
        return None
    t = trace(b.model)
    if t.graph_module is None or t.splits.get(a.index) is not a or t.splits.get(b.index) is not b:
        return None
    key = (a.index, b.index)
    if key not in t.bridges:
        nodes = list(t.graph_module.graph.nodes)
        into, out = _crossing(nodes, a.index), _crossing(nodes, b.index)
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {n: g.placeholder(n.name) for n in into}
        for n in nodes[a.index:b.index]:
            env[n] = g.node_copy(n, lambda x: env[x])
        g.output(tuple(env[n] for n in out))
        module = fx.GraphModule(t.graph_module, g)
        clone = _writes_inputs(module)

        def run(carry: Carry, _m: fx.GraphModule = module, _clone: bool = clone) -> Carry:
            if _clone:  # the middle writes into one of its inputs: keep the cached carry intact
                carry = tuple(c.clone() if isinstance(c, torch.Tensor) else c for c in carry)
            return tuple(_m(*carry))

        t.bridges[key] = run
    return t.bridges[key]
