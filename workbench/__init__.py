"""Editable Workbench: fix a network's mistakes one example at a time."""
from .device import default_device

__version__ = "0.1.0"
__all__ = ["default_device", "__version__"]
