"""The one place where the compute device is chosen."""
from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """CUDA when present (unless ``WORKBENCH_DEVICE`` says otherwise), else CPU."""
    env = os.environ.get("WORKBENCH_DEVICE")
    if env:
        return torch.device(env)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
