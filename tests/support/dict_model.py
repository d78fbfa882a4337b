"""A user's own model whose ``forward`` returns a dict, importable as
``tests.support.dict_model:DictNet`` (the repository root is on ``sys.path`` under pytest)."""
from __future__ import annotations

import torch
import torch.nn as nn


class DictNet(nn.Module):
    """``(B, in_channels, H, W) -> {"logits": (B, num_classes), "embedding": (B, width)}``."""

    def __init__(self, num_classes: int = 4, in_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {"logits": self.fc(h), "embedding": h}
