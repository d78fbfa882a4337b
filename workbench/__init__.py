"""Editable Workbench: fix a network's mistakes one example at a time."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .device import default_device

__version__ = "0.1.0"
__all__ = ["default_device", "__version__"]


def __getattr__(name: str) -> Any:
    """``default_device`` is imported on first use: ``import workbench`` does not import torch,
    so a notebook can show a progress line before the slow imports (``workbench.widgets.show``)."""
    if name == "default_device":
        from .device import default_device

        return default_device
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
