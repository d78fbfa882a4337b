"""A user's own model builder, importable as ``tests.support.cnn:make_cnn`` (the repository root is
on ``sys.path`` under pytest)."""
from __future__ import annotations

import torch.nn as nn


def make_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Module:
    """A plain nn.Sequential CNN: (B, in_channels, H, W) -> (B, num_classes)."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(2 * width, num_classes))
