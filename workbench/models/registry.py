"""Architecture registry: names -> constructors, and group lookup."""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .resnet import ResNet, cifar_resnet18, small_resnet

ARCHITECTURES: dict[str, Callable[..., ResNet]] = {
    "small-resnet": small_resnet,
    "resnet18": cifar_resnet18,
}


def build_model(arch: str, **kwargs: Any) -> ResNet:
    """Build an architecture by name (see :data:`ARCHITECTURES`)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


def group_names(model: nn.Module) -> list[str]:
    """Names of the model's editable groups (``stem``, ``chain1`` ..., ``head``, ``all``)."""
    return list(_groups(model))


def group_params(model: nn.Module, group: str | list[str] | tuple[str, ...]) -> list[str]:
    """Parameter names of one group, or of several groups joined (order kept, no duplicates)."""
    groups = _groups(model)
    wanted = [group] if isinstance(group, str) else list(group)
    if not wanted:
        raise ValueError(f"no editable group given; choose from {list(groups)}")
    names: list[str] = []
    for g in wanted:
        if g not in groups:
            raise ValueError(f"unknown layer group {g!r}; this model has {list(groups)}")
        names += [n for n in groups[g] if n not in names]
    return names


def first_group_stage(model: nn.Module, group: str | list[str] | tuple[str, ...]) -> str:
    """The earliest stage touched by ``group`` (where the frozen prefix ends)."""
    params = set(group_params(model, group))
    for stage in model.stage_names:  # type: ignore[attr-defined,union-attr]
        if any(p.startswith(stage + ".") for p in params):
            return stage
    raise ValueError(f"group {group!r} has no parameters")


def _groups(model: nn.Module) -> dict[str, list[str]]:
    if not hasattr(model, "groups"):
        raise TypeError(f"{type(model).__name__} has no editable groups; use a workbench model "
                        "(workbench.models.build_model) or add a groups() method")
    return model.groups()  # type: ignore[operator]
