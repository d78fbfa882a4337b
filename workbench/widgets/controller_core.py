"""What the parts of the one :class:`~workbench.widgets.controller.Controller` use of it.

The controller composes parts with one job each (the edit's strength, the edit stack and its
files, "Where is it stored?"). Each part is given the controller and calls only the public
members listed in :class:`ControllerCore`, so that the parts need not import ``controller.py``
(which imports them).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from ..session import EditRecord, EditSession
    from .events import Callbacks, Selection

__all__ = ["ControllerCore"]


class ControllerCore(Protocol):
    """The controller as its parts see it (see :class:`~workbench.widgets.controller.Controller`)."""

    session: EditSession
    callbacks: Callbacks
    name: str
    selection: Selection | None
    uploads: dict[str, torch.Tensor]
    pending: Any

    @property
    def images(self) -> torch.Tensor: ...

    def refresh_selection(self) -> None: ...

    def error_before_last(self) -> float: ...

    def show_reports(self, record: EditRecord | None) -> None: ...

    def explain(self) -> None: ...
