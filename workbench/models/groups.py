"""The inferred groups of a model and its trunk (the rules behind ``ModelAdapter.group_names``
and ``ModelAdapter.default_group``).

**Groups.** From the root, module by module (only modules holding parameters count):

* a *wrapper* (one child, no parameters of its own) stands for its child: ``Wrap(hf_model)``
  lists the groups of ``hf_model`` under ``hf.``; a wrapper of a single layer is listed itself;
* a *container* (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) with two or more
  children is listed, then each child (each block), not deeper: ``features``, ``features.0`` ...
  ``features.12``; ``stages``, ``stages.0`` ... ``stages.3``;
* any other module is listed; the root (and the model inside a wrapper at the root) and any
  module below which a container of repeated blocks (children of one class) lies have their
  children expanded by the same rules: ``vit``, ``vit.embeddings``, ``vit.layers``,
  ``vit.layers.0`` ... ``vit.layernorm``, ``classifier``;
* the root, and any group that holds every parameter, is left out (``"all"`` names it).

**Trunk.** The runs of repeated blocks are the children of each listed container, and
consecutive siblings alike in class and in their children's classes (a ResNet's ``layer1`` ...
``layer4``). The trunk is the run nearest the root among those of at least 3 members (else
of 2); a tie goes to the longer run, then to the earlier one. The default group is its middle
member, ``run[len(run) // 2]``, after dropping the head (the last group) from the run when
the run ends with it (a ``Sequential`` model): ``layer3`` of a ResNet, ``blocks.6`` of a 12-block ViT,
``features.6`` of MobileNetV3-small, ``stages.2`` of a ConvNeXt.
"""
from __future__ import annotations

import torch.nn as nn

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kids(m: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, c) for n, c in m.named_children() if any(True for _ in c.parameters())]


def _signature(m: nn.Module) -> tuple:
    return type(m), frozenset(type(c) for _, c in _kids(m))


def _is_container(m: nn.Module) -> bool:
    return isinstance(m, CONTAINERS) and len(_kids(m)) >= 2


def _reaches_blocks(m: nn.Module) -> bool:
    """A container of repeated blocks (children of one class) lies below ``m``."""
    for _, c in _kids(m):
        if _is_container(c):
            if len({type(k) for _, k in _kids(c)}) == 1:
                return True
        elif _reaches_blocks(c):
            return True
    return False


class _Walk:
    """One pass over the module tree: the listed paths and the runs of repeated blocks."""

    def __init__(self) -> None:
        self.runs: list[list[str]] = []

    def expand(self, path: str, m: nn.Module, top: bool = False) -> list[str]:
        kids = _kids(m)
        if len(kids) == 1 and not any(True for _ in m.parameters(recurse=False)):  # a wrapper
            name, child = kids[0]
            sub = self.expand(_join(path, name), child, top)
            return sub if len(sub) > 1 else [path or sub[0]]
        if _is_container(m):
            self.runs.append([_join(path, n) for n, _ in kids])
            return [path, *self.runs[-1]]
        if not kids or not (top or _reaches_blocks(m)):
            return [path]
        out: list[str] = [path]
        run: list[str] = []
        sig: tuple | None = None
        for name, child in kids:
            sub = self.expand(_join(path, name), child)
            out += sub
            listed = sub[0] == _join(path, name)
            if listed and run and _signature(child) == sig:
                run.append(sub[0])
                continue
            if len(run) >= 2:
                self.runs.append(run)
            run, sig = ([sub[0]], _signature(child)) if listed else ([], None)
        if len(run) >= 2:
            self.runs.append(run)
        return out


def group_paths(model: nn.Module) -> tuple[list[str], list[list[str]]]:
    """``(paths, runs)``: the inferred group paths of ``model`` in module order (see the module
    docstring; groups holding every parameter are left out) and its runs of repeated blocks."""
    walk = _Walk()
    paths = walk.expand("", model, top=True)
    every = {id(p) for p in model.parameters()}
    modules = dict(model.named_modules())
    out = [p for p in dict.fromkeys(paths) if p and {id(q) for q in modules[p].parameters()} != every]
    if not out:  # no container anywhere: the top-level children
        out = [n for n, _ in _kids(model) if {id(q) for q in modules[n].parameters()} != every]
    return out, [r for r in walk.runs if all(p in out for p in r)]


def trunk(runs: list[list[str]]) -> list[str] | None:
    """The trunk among ``runs`` (see the module docstring), or None when there is no run."""
    if not runs:
        return None
    pool = [r for r in runs if len(r) >= 3] or runs
    return min(pool, key=lambda r: (r[0].count("."), -len(r), runs.index(r)))
