"""The "Where is it stored?" actions: a part of the one :class:`~workbench.widgets.controller.Controller`
(``controller.localization``; ``localize`` and ``use_group`` are also the controller's own).

The critical-neuron search for the selected image, the group to edit that it points to, and the
selection's cached result shown again whenever the selection or the weights change.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .controller_core import ControllerCore

__all__ = ["LocalizationActions"]


class LocalizationActions:
    """Localization of the selection, on the ``controller`` that composes this part."""

    def __init__(self, controller: ControllerCore) -> None:
        self.controller = controller

    def localize(self, quick: bool | None = None) -> Any:
        """The critical-neuron search for the selection (``quick``: default the view's setting)."""
        c = self.controller
        index = c.selection.index if c.selection is not None else None
        if index is None:
            raise ValueError("no image selected: click 'select' under an image first")
        res = c.session.localize(index, quick=c.callbacks.localize_quick() if quick is None else quick)
        c.callbacks.localized(index, res)
        return res

    def use_group(self, group: str | None) -> str:
        """Edit ``group`` from now on (the group holding most removed neurons)."""
        if group is None:
            raise ValueError("no localization shown: click 'Where is it stored?' first")
        groups = self.controller.session.group_names()
        if group not in groups:
            raise ValueError(f"group {group!r} is not one of the model's groups {groups}")
        self.controller.callbacks.group(group)
        return group

    def show_cached(self) -> None:
        """Show the selection's cached result (None: not searched yet, or no test image selected)."""
        c = self.controller
        index = c.selection.index if c.selection is not None else None
        res = c.session.cached_localization(index, quick=c.callbacks.localize_quick()) \
            if index is not None else None
        c.callbacks.localized(index, res)
