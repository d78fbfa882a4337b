"""EditPanel: editor settings, Edit / Undo / Redo / Reset, history save/load, progress.

The outcome of an edit is shown by each model's :class:`SessionView` status line.

The panel owns the busy flag: while an action runs every action button is disabled and a
second click (or a re-entrant call) is refused, so a double click cannot apply two edits.
"""
from __future__ import annotations

import contextlib
import html
import threading
from typing import Any, Callable, Iterator, Mapping, Sequence

import ipywidgets as W

from ..editing import DEFAULT_LAYERS, DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT, EditorConfig, choose_editor
from .common import css

__all__ = ["EditPanel", "EDITORS"]

EDITORS = {"RMSProp": "rmsprop", "RMSProp (official eps)": "rmsprop_official", "GD": "gd", "scaled GD": "scaled_gd",
           "sign (RProp)": "sign", "Momentum": "momentum", "Adam": "adam"}


class EditPanel:
    """Editor configuration and the action buttons.

    Args:
        groups: editable group names (``model.groups()`` keys), in order.
        actions: name -> callable for ``edit``, ``undo``, ``redo``, ``reset``, ``save``,
            ``load`` (the last two take the folder path typed in ``history_path``).
        config: initial :class:`EditorConfig` (method, lr, max steps, group).
        card: the model's card: a new method or group loads the editor the model learned
            where it applies, else the tuned default (``editing.choose_editor``).
        note: where the initial editor's values came from (``EditorChoice.note``), shown under it.
    """

    def __init__(self, groups: Sequence[str], actions: dict[str, Callable[..., object]], *,
                 config: EditorConfig | None = None, card: Mapping[str, Any] | None = None,
                 note: str = "") -> None:
        cfg = (config or EditorConfig()).resolved()
        self._card = dict(card or {})
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
        self._chosen_lr = float(cfg.lr)  # type: ignore[arg-type]
        self.editor_note = css(W.HTML(html.escape(note)), "wb-editor-source")
        self._note = note
        for w, c in ((self.method, "wb-editor"), (self.lr, "wb-lr"), (self.max_steps, "wb-max-steps"),
                     (self.group, "wb-group")):
            css(w, c)
        self.method.observe(self._on_method, names="value")
        self.group.observe(self._on_group, names="value")
        self.lr.observe(self._on_lr, names="value")
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
            self.editor_note,
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
        """A new group loads its lr/beta (learned or tuned), unless the user has typed an lr of their own."""
        if self.lr.value == self._chosen_lr:
            self._on_method()

    def _on_method(self, _change=None) -> None:
        """A new editor loads its lr and beta for the current group: learned where the card has
        them for this method and group, else tuned."""
        choice = choose_editor(self._card, method=self.method.value, layers=self.group.value,
                               max_steps=int(self.max_steps.value))
        c = choice.config
        self._chosen_lr, self._note = float(c.lr), choice.note  # type: ignore[arg-type]
        self.lr.value, self._beta = float(c.lr), c.beta  # type: ignore[arg-type]
        self._on_lr()

    def _on_lr(self, _change=None) -> None:
        """The note under the editor says where lr came from (an lr typed by the user: as given)."""
        typed = self.lr.value != self._chosen_lr
        self.editor_note.value = html.escape(self._note + ("; lr as typed" if typed else ""))

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
