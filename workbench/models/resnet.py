"""ResNets whose stages are the paper's editable groups.

A model is a sequence of named stages: ``stem``, ``chain1`` ... ``chainK``, ``head``.
``forward(x, start=..., stop=...)`` runs a contiguous slice of them, which is what the
fast evaluator uses to cache the frozen prefix and rerun only the suffix.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Head(nn.Module):
    """Global average pool + linear classifier."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet(nn.Module):
    """A ResNet made of a 3x3 stem, residual chains and a linear head.

    Args:
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR).
        num_classes: number of output classes.
        widths: channels of each chain, e.g. ``(64, 128, 256, 512)``.
        blocks: basic blocks per chain, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        input_size: spatial size of the (square) input, recorded for input validation.
    Input: ``(N, in_channels, input_size, input_size)`` float32, normalised.
    Output: ``(N, num_classes)`` logits.

    Example:
        >>> m = ResNet(1, 10, (16, 32, 64, 64), (1, 1, 1, 1), input_size=28)
        >>> m(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int],
                 blocks: Sequence[int], input_size: int = 32) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError("widths and blocks must be non-empty and of equal length")
        self.in_channels, self.num_classes, self.input_size = in_channels, num_classes, input_size
        self.widths, self.blocks = tuple(widths), tuple(blocks)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        cin = widths[0]
        self.chain_names: list[str] = []
        for i, (w, b) in enumerate(zip(widths, blocks), start=1):
            layers = [BasicBlock(cin, w, 1 if i == 1 else 2)] + [BasicBlock(w, w) for _ in range(b - 1)]
            setattr(self, f"chain{i}", nn.Sequential(*layers))
            self.chain_names.append(f"chain{i}")
            cin = w
        self.head = Head(cin, num_classes)

    @property
    def stage_names(self) -> list[str]:
        """Ordered stage names: ``["stem", "chain1", ..., "head"]``."""
        return ["stem", *self.chain_names, "head"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.input_size, self.input_size)

    def forward(self, x: torch.Tensor, start: str | None = None, stop: str | None = None) -> torch.Tensor:
        """Run stages from ``start`` (inclusive) up to ``stop`` (exclusive).

        ``x`` is the image when ``start`` is None, else the activation entering ``start``.
        With ``stop`` given, returns the activation entering ``stop`` instead of logits.
        """
        names = self.stage_names
        i0 = 0 if start is None else names.index(start)
        i1 = len(names) if stop is None else names.index(stop)
        for name in names[i0:i1]:
            x = getattr(self, name)(x)
        return x

    def groups(self) -> "OrderedDict[str, list[str]]":
        """Editable groups: stage name -> parameter names, plus ``"all"``."""
        out: OrderedDict[str, list[str]] = OrderedDict()
        for name in self.stage_names:
            out[name] = [f"{name}.{p}" for p, _ in getattr(self, name).named_parameters()]
        out["all"] = [n for n, _ in self.named_parameters()]
        return out

    def config(self) -> dict:
        """Constructor arguments (stored in checkpoint cards)."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes,
                "widths": list(self.widths), "blocks": list(self.blocks), "input_size": self.input_size}


def cifar_resnet18(num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> ResNet:
    """The paper's CIFAR ResNet-18: 3x3 stem, four chains of two blocks (64..512), linear head."""
    return ResNet(in_channels, num_classes, (64, 128, 256, 512), (2, 2, 2, 2), input_size)


def small_resnet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 widths: Sequence[int] = (16, 32, 64, 128), blocks: Sequence[int] = (1, 1, 1, 1)) -> ResNet:
    """The CPU default for 28x28 grayscale: four chains of one block each."""
    return ResNet(in_channels, num_classes, widths, blocks, input_size)
