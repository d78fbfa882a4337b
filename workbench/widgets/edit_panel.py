"""EditPanel: editor settings, Edit / Undo / Redo / Reset, history save/load, progress.

The outcome of an edit is shown by each model's :class:`SessionView` status line.

The panel owns the busy flag: while an action runs every action button is disabled and a
second click (or a re-entrant call) is refused, so a double click cannot apply two edits.
"""
from __future__ import annotations

import contextlib
import html
import threading
from typing import Callable, Iterator, Sequence

import ipywidgets as W

from ..editing import DEFAULT_LAYERS, DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT, EditorConfig, default_for
from .common import css

__all__ = ["EditPanel", "EDITORS"]

EDITORS = {"RMSProp": "rmsprop", "GD": "gd", "scaled GD": "scaled_gd", "sign (RProp)": "sign",
           "Momentum": "momentum", "Adam": "adam"}


class EditPanel:
    """Editor configuration and the action buttons.

    Args:
        groups: editable group names (``model.groups()`` keys), in order.
        actions: name -> callable for ``edit``, ``undo``, ``redo``, ``reset``, ``save``,
            ``load`` (the last two take the folder path typed in ``history_path``).
        config: initial :class:`EditorConfig` (method, lr, max steps, group).
    """

    def __init__(self, groups: Sequence[str], actions: dict[str, Callable[..., object]], *,
                 config: EditorConfig | None = None) -> None:
        cfg = (config or EditorConfig()).resolved()
        self.actions = actions
        self._lock = threading.Lock()
        self.method = W.Dropdown(options=list(EDITORS.items()), value=cfg.method, description="editor",
                                 layout=W.Layout(width="190px"))
        self.lr = W.FloatText(value=cfg.lr, description="lr", step=1e-4, layout=W.Layout(width="160px"))
        self.max_steps = W.BoundedIntText(value=cfg.max_steps or DEFAULT_MAX_STEPS, min=1, max=MAX_STEPS_LIMIT,
                                          description="max steps", layout=W.Layout(width="150px"))
        layers = cfg.layers if isinstance(cfg.layers, str) else cfg.layers[0]
        groups = list(groups)
        self.group = W.Dropdown(options=groups, value=layers if layers in groups else
                                (DEFAULT_LAYERS if DEFAULT_LAYERS in groups else groups[0]),
                                description="group", layout=W.Layout(width="160px"))
        self._beta = cfg.beta
        for w, c in ((self.method, "wb-editor"), (self.lr, "wb-lr"), (self.max_steps, "wb-max-steps"),
                     (self.group, "wb-group")):
            css(w, c)
        self.method.observe(self._on_method, names="value")
        self.group.observe(self._on_group, names="value")
        self.buttons: dict[str, W.Button] = {}
        self._enabled: dict[str, bool] = {"undo": False, "redo": False}
        for name, label, style in (("edit", "Edit", "success"), ("undo", "Undo", ""), ("redo", "Redo", ""),
                                   ("reset", "Reset", "warning")):
            b = css(W.Button(description=label, button_style=style, layout=W.Layout(width="80px")), f"wb-{name}")
            b.on_click(lambda _b, n=name: self.run(n))
            self.buttons[name] = b
        self.history_path = W.Text(value="", placeholder="history folder", description="history",
                                   layout=W.Layout(width="300px"))
        for name, label in (("save", "Save history"), ("load", "Load history")):
            b = css(W.Button(description=label, layout=W.Layout(width="110px")), f"wb-{name}")
            b.on_click(lambda _b, n=name: self.run(n, self.history_path.value))
            self.buttons[name] = b
        self.progress = css(W.IntProgress(value=0, min=0, max=4, description="", bar_style="",
                                          layout=W.Layout(width="160px")), "wb-progress")
        self.phase = css(W.HTML(""), "wb-phase")
        self.widget = css(W.VBox([
            W.HBox([self.method, self.lr, self.max_steps, self.group], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([*(self.buttons[n] for n in ("edit", "undo", "redo", "reset")), self.progress, self.phase],
                   layout=W.Layout(flex_flow="row wrap", align_items="center")),
            W.HBox([self.history_path, self.buttons["save"], self.buttons["load"]]),
        ]), "wb-edit-panel")
        self._apply_enabled()

    @property
    def config(self) -> EditorConfig:
        """The :class:`EditorConfig` the widgets describe (beta: the method's default)."""
        return EditorConfig(method=self.method.value, lr=float(self.lr.value), beta=self._beta,
                            max_steps=int(self.max_steps.value), layers=self.group.value)

    def _on_group(self, change) -> None:
        """A new group loads its tuned lr/beta, unless the user has typed an lr of their own."""
        old = default_for(self.method.value, change["old"])
        if self.lr.value == float(old["lr"]):  # type: ignore[arg-type]
            self._on_method()

    def _on_method(self, _change=None) -> None:
        """A new editor loads its tuned lr and beta for the current group."""
        d = default_for(self.method.value, self.group.value)
        self.lr.value, self._beta = float(d["lr"]), d["beta"]  # type: ignore[arg-type]

    # -- running actions -----------------------------------------------------------------
    def run(self, name: str, *args: object) -> object:
        """Run action ``name`` unless another one is running (then refuse and return None)."""
        if not self._lock.acquire(blocking=False):  # test-and-set in one step: no window between
            self.set_phase("busy: wait for the running action to finish", error=True)
            return None
        try:
            with self.busy_state():
                return self.actions[name](*args)
        finally:
            self._lock.release()

    @property
    def busy(self) -> bool:
        """An action is running (the panel's lock is held)."""
        return self._lock.locked()

    @contextlib.contextmanager
    def busy_state(self) -> Iterator[None]:
        """Disable every button for the duration of the block."""
        for b in self.buttons.values():
            b.disabled = True
        self.progress.value, self.progress.bar_style = 0, "info"
        try:
            yield
        finally:
            self._apply_enabled()
            self.progress.bar_style = ""

    def set_phase(self, text: str, step: int | None = None, *, error: bool = False) -> None:
        """Show what is running now (and advance the progress bar to ``step``)."""
        if step is not None:
            self.progress.value = min(step, self.progress.max)
        color = "#b71c1c" if error else "#555"
        self.phase.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def set_history_buttons(self, can_undo: bool, can_redo: bool) -> None:
        """Enable Undo/Redo to match the session (applied after the busy state ends)."""
        self._enabled.update(undo=can_undo, redo=can_redo)
        if not self.busy:
            self._apply_enabled()

    def _apply_enabled(self) -> None:
        for n, b in self.buttons.items():
            b.disabled = not self._enabled.get(n, True)
