"""EditPanel: Edit / Undo / Redo / Reset, the message line beside them, and the editor settings.

The settings (editor, learning rate, step budget, group) sit in a collapsed "Editor
settings" section (hidden in presentation mode). The panel owns the busy flag: while an
action runs every action button is disabled and a second click (or a re-entrant call) is
refused, so a double click cannot apply two edits.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, Sequence

import ipywidgets as W

from ...editing import DEFAULT_GROUP, DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT, EditorChoice, EditorConfig
from ..common import MessageArea, css
from ..markup import HTML, markup

__all__ = ["EditPanel", "EDITORS"]

EDITORS = {"RMSProp": "rmsprop", "RMSProp (official eps)": "rmsprop_official", "GD": "gd", "scaled GD": "scaled_gd",
           "sign (RProp)": "sign", "Momentum": "momentum", "Adam": "adam"}
_TIPS = {"edit": "Change the model's weights so that this image gets the target label",
         "undo": "Take back the last edit (the weights return exactly)", "redo": "Re-apply the edit you undid",
         "reset": "Back to the base model: every edit is taken back"}


class EditPanel:
    """Action buttons, their message line and the editor configuration.

    Args:
        groups: editable group names, in order.
        actions: name -> callable for ``edit``, ``undo``, ``redo``, ``reset``.
        config: initial :class:`EditorConfig` (method, lr, max steps, group).
        choose: the controller's ``choose_editor`` (the session's one resolver), called as
            ``choose(method=, layers=, max_steps=)`` when the method or group changes: it gives
            the learned editor where it applies, else the tuned default, else a calibrated one.
        note: where the initial editor's values came from (``EditorChoice.note``), shown under it.
    """

    def __init__(self, groups: Sequence[str], actions: dict[str, Callable[..., object]], *,
                 choose: Callable[..., EditorChoice], config: EditorConfig | None = None,
                 note: str = "") -> None:
        cfg = (config or EditorConfig()).resolved()
        self._choose = choose
        self.actions = actions
        self._lock = threading.Lock()
        st = {"description_width": "70px"}
        self.method = css(W.Dropdown(options=list(EDITORS.items()), value=cfg.method, description="editor",
                                     style=st, layout=W.Layout(width="200px")), "wb-editor")
        self.lr = css(W.FloatText(value=cfg.lr, description="step size", step=1e-4, style=st,
                                  tooltip="the editor's learning rate", layout=W.Layout(width="190px")), "wb-lr")
        self.max_steps = css(W.BoundedIntText(value=cfg.max_steps or DEFAULT_MAX_STEPS, min=1, max=MAX_STEPS_LIMIT,
                                              description="max steps", style=st, layout=W.Layout(width="150px")),
                             "wb-max-steps")
        layers = cfg.group if isinstance(cfg.group, str) else cfg.group[0]
        groups = list(groups)
        self.group = css(W.Dropdown(options=groups, value=layers if layers in groups else
                                    (DEFAULT_GROUP if DEFAULT_GROUP in groups else groups[0]),
                                    description="layers", style=st, layout=W.Layout(width="200px")), "wb-group")
        self._beta = cfg.beta
        self._chosen_lr = float(cfg.lr)  # type: ignore[arg-type]
        self.editor_note = css(HTML(note), "wb-editor-source")
        self._note = note
        self.method.observe(self._on_method, names="value")
        self.group.observe(self._on_group, names="value")
        self.lr.observe(self._on_lr, names="value")
        self.buttons: dict[str, W.Button] = {}
        self._enabled: dict[str, bool] = {"undo": False, "redo": False, "reset": False}
        for name, label, style in (("edit", "Edit", "success"), ("undo", "Undo", ""), ("redo", "Redo", ""),
                                   ("reset", "Reset", "warning")):
            b = css(W.Button(description=label, button_style=style, tooltip=_TIPS[name],
                             layout=W.Layout(width="90px" if name == "edit" else "76px")), f"wb-{name}")
            b.on_click(lambda _b, n=name: self.run(n))
            self.buttons[name] = b
        self.phase = css(HTML(""), "wb-phase")
        self.messages = MessageArea("edit")
        self.settings = W.VBox([W.HBox([self.method, self.lr, self.max_steps, self.group],
                                       layout=W.Layout(flex_flow="row wrap")), self.editor_note])
        self.advanced = css(W.Accordion(children=[self.settings], titles=("Editor settings",), selected_index=None),
                            "wb-advanced")
        self.widget = css(W.VBox([
            W.HBox([*(self.buttons[n] for n in ("edit", "undo", "redo", "reset")), self.phase],
                   layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.messages.widget, self.advanced]), "wb-edit-panel")
        self._apply_enabled()

    @property
    def config(self) -> EditorConfig:
        """The :class:`EditorConfig` the widgets describe (beta: the method's default)."""
        return EditorConfig(method=self.method.value, lr=float(self.lr.value), beta=self._beta,
                            max_steps=int(self.max_steps.value), layers=self.group.value)

    def edit_config(self) -> EditorConfig:
        """The editor an Edit click asks for: :attr:`config`, with lr and beta left to the
        session's resolver (learned, tuned or calibrated for this method and group, calibrated at
        the edit when it needs it) unless the user typed a step size of their own."""
        cfg = self.config
        if float(self.lr.value) != self._chosen_lr:
            return cfg
        return EditorConfig(method=cfg.method, lr=None, beta=None, max_steps=cfg.max_steps, layers=cfg.layers)

    def follow(self, used: EditorConfig, note: str) -> None:
        """After an edit: show the step size the session used (e.g. just calibrated) when the
        shown one was the resolver's choice for the same method and group, not one the user typed."""
        same = used.method == self.method.value and used.layers == self.group.value
        if not same or float(self.lr.value) != self._chosen_lr or used.lr is None:
            return
        self._chosen_lr, self._note, self._beta = float(used.lr), note or self._note, used.beta
        self.lr.value = float(used.lr)
        self._on_lr()

    def set_group(self, group: str) -> None:
        """Show ``group`` as the edit's group (its step size loads as when it is picked)."""
        self.group.value = group

    def _on_group(self, change) -> None:
        """A new group loads its lr/beta (learned or tuned), unless the user has typed an lr of their own."""
        if self.lr.value == self._chosen_lr:
            self._on_method()

    def _on_method(self, _change=None) -> None:
        """A new editor loads its lr and beta for the current group from the session's resolver:
        learned where the card has them for this method and group, else tuned, else calibrated."""
        try:
            choice = self._choose(method=self.method.value, layers=self.group.value,
                                  max_steps=int(self.max_steps.value))
        except ValueError as err:  # e.g. no data to calibrate with: say so, keep the step size shown
            self.messages.error(err, "Choosing the step size")
            return
        c = choice.config
        self._chosen_lr, self._note = float(c.lr), choice.note  # type: ignore[arg-type]
        self.lr.value, self._beta = float(c.lr), c.beta  # type: ignore[arg-type]
        self._on_lr()

    def _on_lr(self, _change=None) -> None:
        """The note under the editor says where lr came from (an lr typed by the user: as given)."""
        typed = self.lr.value != self._chosen_lr
        self.editor_note.value = markup("<small style='color:#555'>{}{}</small>", self._note,
                                        "; lr as typed" if typed else "")

    # -- running actions -----------------------------------------------------------------
    def run(self, name: str, *args: object) -> object:
        """Run action ``name`` unless another one is running (then refuse and return None)."""
        if not self._lock.acquire(blocking=False):  # test-and-set in one step: no window between
            self.messages.show("Busy: wait for the running action to finish.", "warning")
            self.set_phase("busy: wait for the running action to finish")
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
        try:
            yield
        finally:
            self._apply_enabled()

    def set_phase(self, text: str) -> None:
        """Show what is running now ("" when idle)."""
        self.phase.value = markup("<span style='color:#555'>{}</span>", text) if text else ""

    def set_history_buttons(self, can_undo: bool, can_redo: bool) -> None:
        """Enable Undo/Redo/Reset to match the session (applied after the busy state ends)."""
        self._enabled.update(undo=can_undo, redo=can_redo, reset=can_undo or can_redo)
        if not self.busy:
            self._apply_enabled()

    def _apply_enabled(self) -> None:
        for n, b in self.buttons.items():
            b.disabled = not self._enabled.get(n, True)
