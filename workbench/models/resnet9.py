"""The ResNet-9 of Maini et al. (ICML 2023), as their official code lays it out.

Stages (each a module; the model is a :class:`~workbench.models.ResNet`, so the adapter,
the prefix cache and the dropout sites treat them as it treats ``stem``/``chainK``/``head``):

====== ================================================ ============ ================
stage  layers                                            channels     output (28 px)
====== ================================================ ============ ================
conv1  3x3 conv, BN, ReLU                                64           64 x 28 x 28
conv2  5x5 conv stride 2, BN, ReLU                       128          128 x 14 x 14
res1   x + (3x3 conv-BN-ReLU, twice)                     128          128 x 14 x 14
conv3  3x3 conv, BN, ReLU, 2x2 max pool                  256          256 x 7 x 7
res2   x + (3x3 conv-BN-ReLU, twice)                     256          256 x 7 x 7
conv4  3x3 conv without padding, BN, ReLU                128          128 x 5 x 5
head   global max pool, linear (no bias), times 0.2      classes      classes
====== ================================================ ============ ================

Channels are at ``width=1``; ``width`` scales every one (``width=0.5``: 32-64-128-64).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .resnet import Head, ResNet

FULL_CHANNELS = (64, 128, 256, 128)  # conv1, conv2/res1, conv3/res2, conv4 at width 1
HEAD_SCALE = 0.2  # the official head multiplies the logits by 0.2


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Residual(nn.Module):
    """``x + body(x)``; ``body`` keeps the shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MaxPoolHead(Head):
    """Global max pool, linear without bias, logits times :data:`HEAD_SCALE`. ``(N, C, H, W) -> (N, classes)``.

    A :class:`Head` (its ``fc`` is the classifier) built without ``Head``'s biased linear layer.
    """

    def __init__(self, cin: int, num_classes: int) -> None:
        nn.Module.__init__(self)
        self.fc = nn.Linear(cin, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.amax(x, dim=(2, 3)), 1)) * HEAD_SCALE


class ResNet9(ResNet):
    """The paper's ResNet-9 (module docstring). Input ``(N, in_channels, input_size, input_size)``,
    output ``(N, num_classes)`` logits; ``input_size`` must be at least 12 (``conv4`` has no padding).

    Example:
        >>> m = ResNet9(in_channels=1, num_classes=10, width=0.5, input_size=28)
        >>> m(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    STAGES = ("conv1", "conv2", "res1", "conv3", "res2", "conv4", "head")
    # Example-tied dropout where the paper's ResNet-18 has it (after layer2 and layer3): the
    # residual stages with the same channels (128, 256 at width 1) and resolutions (1/2, 1/4).
    PAPER_DROPOUT_SITES = ("res1", "res2")

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, input_size: int = 32) -> None:
        nn.Module.__init__(self)
        if not (isinstance(width, (int, float)) and not isinstance(width, bool) and 0 < width <= 8):
            raise ValueError(f"width must be a number in (0, 8] (1: the paper's 64-128-256-128 channels), got {width!r}")
        if input_size < 12:
            raise ValueError(f"input_size={input_size}: ResNet-9 needs images of at least 12x12 pixels")
        c1, c2, c3, c4 = (max(1, int(round(c * width))) for c in FULL_CHANNELS)
        self.in_channels, self.num_classes, self.input_size, self.width = in_channels, num_classes, input_size, width
        self.widths, self.blocks = (c1, c2, c3, c4), ()
        self.conv1 = conv_bn(in_channels, c1)
        self.conv2 = conv_bn(c1, c2, kernel=5, stride=2, padding=2)
        self.res1 = Residual(c2)
        self.conv3 = nn.Sequential(*conv_bn(c2, c3), nn.MaxPool2d(2))
        self.res2 = Residual(c3)
        self.conv4 = conv_bn(c3, c4, padding=0)
        self.head = MaxPoolHead(c4, num_classes)
        self.chain_names = list(self.STAGES[1:-1])

    @property
    def stage_names(self) -> list[str]:
        """``["conv1", "conv2", "res1", "conv3", "res2", "conv4", "head"]``."""
        return list(self.STAGES)

    def config(self) -> dict:
        """Constructor arguments (stored in checkpoint cards)."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "width": self.width,
                "input_size": self.input_size}


def resnet9(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: float = 1.0) -> ResNet9:
    """The paper's ResNet-9 (see :class:`ResNet9`); ``width`` scales the channels."""
    return ResNet9(in_channels, num_classes, width, input_size)
