"""Architecture registry (names -> constructors) and the group helpers over :class:`ModelAdapter`."""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .adapter import Group, ModelAdapter, adapt
from .resnet import ResNet, cifar_resnet18, small_resnet
from .resnet9 import resnet9

ARCHITECTURES: dict[str, Callable[..., ResNet]] = {
    "small-resnet": small_resnet,
    "resnet18": cifar_resnet18,
    "resnet9": resnet9,
}


def build_model(arch: str, **kwargs: Any) -> ResNet:
    """Build an architecture by name (see :data:`ARCHITECTURES`)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


def group_names(model: nn.Module | ModelAdapter, every: bool = False) -> list[str]:
    """The model's inferred groups (``ModelAdapter.group_names``): e.g. ``stem``, ``chain1`` ...
    ``head``, ``all`` for the project's ResNets, ``conv1`` ... ``fc``, ``all`` for torchvision's."""
    return adapt(model).group_names(every)


def group_params(model: nn.Module | ModelAdapter, group: Group) -> list[str]:
    """Parameter names of one group, or of several groups joined (order kept, no duplicates).

    Raises ValueError for an unknown module path (naming close ones) or a group without
    parameters (see :class:`ModelAdapter`).
    """
    return adapt(model).params(group)


def first_group_stage(model: nn.Module | ModelAdapter, group: Group) -> str:
    """Where the frozen prefix of ``group`` ends: a stage name for the project's ResNets, the
    first edited graph node's target for traced models, ``""`` when the split is the full forward."""
    a = adapt(model)
    return a.split(a.params(group)).cut
