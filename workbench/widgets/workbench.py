"""Workbench: the panels composed around one EditSession, and how to open one.

The interactive loop: ErrorBrowser -> select -> TargetPicker -> Edit -> the session edits,
scores and records -> MetricsPanel, ProbePanel and AttributionView update in place.

Handlers stay thin: a button calls one method of this controller (guarded so that errors
appear in the message area), the method calls the session, then the panels refresh.
Methods called from code (``wb.edit()``) raise on bad input instead.
"""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import ipywidgets as W
import torch

from .attribution_view import AttributionRequest, AttributionView
from .common import MessageArea, css, log
from .edit_panel import EditPanel
from .error_browser import ErrorBrowser
from .localization_panel import LocalizationPanel, LocalizeActions
from .session_view import SessionView
from ..session.opening import default_checkpoint, open_session, resolve_checkpoint

__all__ = ["Workbench", "default_checkpoint", "open_session", "resolve_checkpoint"]


class _Controller:
    """Shared actions of the workbench and the comparison: selection, target, edit stack."""

    views: list[SessionView]
    browser: ErrorBrowser
    panel: EditPanel
    messages: MessageArea

    def _init_common(self, views: list[SessionView], groups: Sequence[str], config: Any) -> None:
        self.views = views
        self.selected: int | None = None
        self.target: int | None = None
        self.timings: dict[str, float] = {}
        self._change_times: dict[str, float] = {}
        self.panel = EditPanel(groups, {
            "edit": self._guarded("Edit", self.edit), "undo": self._guarded("Undo", self.undo),
            "redo": self._guarded("Redo", self.redo), "reset": self._guarded("Reset", self.reset),
            "save": self._guarded("Save history", self.save_history),
            "load": self._guarded("Load history", self.load_history)}, config=config,
            card=getattr(self.views[0].session, "card", None),
            note=getattr(getattr(self.views[0].session, "editor_choice", None), "note", ""))
        self._sync_buttons()

    def _guarded(self, action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            with self.messages.guard(action):
                self.messages.clear()
                out = fn(*args)
                self.panel.set_phase(f"{action}: done", self.panel.progress.max)
                return out
            self.panel.set_phase(f"{action} failed (see message)", error=True)
            return None
        return run

    # -- selection --------------------------------------------------------------------------
    def select(self, index: int) -> None:
        """Select test image ``index`` in every panel (a thumbnail or flipped-strip click)."""
        n = len(self.views[0].labels)
        if isinstance(index, bool) or not 0 <= int(index) < n:
            raise ValueError(f"index {index!r} out of range: the split has {n} images (0..{n - 1})")
        self.selected = int(index)
        self.browser.select(self.selected, notify=False)
        for v in self.views:
            v.select(self.selected)
        self.target = self.views[0].picker.target
        for v in self.views[1:]:
            if self.target is not None:
                v.picker.choose_silently(self.target)
        self._after_select()

    def set_target(self, target: int) -> None:
        """Use class ``target`` as the edit's target label (in every view)."""
        n = len(self.views[0].classes)
        if isinstance(target, bool) or not 0 <= int(target) < n:
            raise ValueError(f"target {target!r} out of range: classes are 0..{n - 1}")
        self.target = int(target)
        for v in self.views:
            v.picker.choose_silently(self.target)
        self._after_select()

    def _after_select(self) -> None:
        pass

    # -- edit stack -------------------------------------------------------------------------
    def edit(self) -> list:
        """Edit the selected image towards the target with the panel's settings, in every view.

        Raises:
            ValueError: nothing selected, no target, or invalid editor settings (nothing changes).
        """
        if self.selected is None:
            raise ValueError("no image selected: click 'select' under a misclassified image first")
        if self.target is None:
            raise ValueError("no target label: click one of the class buttons first")
        cfg = self.panel.config.resolved()  # validates before anything changes
        t0 = time.perf_counter()
        results = []
        for k, v in enumerate(self.views):
            self.panel.set_phase(f"editing{' ' + v.title if v.title else ''}…", 1 + k)
            results.append(v.edit(self.selected, self.target, cfg))
        self.panel.set_phase("updating panels…", self.panel.progress.max - 1)
        t1 = time.perf_counter()
        self._after_change(any(r.success for r in results))
        self.timings = {**self.views[0].timings, **self._change_times, "after_change": time.perf_counter() - t1,
                        "total": time.perf_counter() - t0}
        return results

    def undo(self) -> None:
        """Undo the last edit in every view (ValueError when there is nothing to undo)."""
        self._stack("undo")

    def redo(self) -> None:
        """Redo the last undone edit in every view."""
        self._stack("redo")

    def reset(self) -> None:
        """Back to the base weights in every view."""
        self._stack("reset")

    def _stack(self, what: str) -> None:
        if what in ("undo", "redo"):
            ok = [v.session.can_undo if what == "undo" else v.session.can_redo for v in self.views]
            if not all(ok):
                raise ValueError(f"nothing to {what}: " + ("no edit is applied" if what == "undo"
                                                            else "no edit was undone since the last edit"))
        for v in self.views:
            getattr(v.session, what)()
            v.after_history_change(what)
        self._after_change(True)

    def save_history(self, folder: str | Path) -> list[Path]:
        """Save each session's history (a comparison writes ``<folder>/<view title>``)."""
        if not str(folder).strip():
            raise ValueError("type a folder path into the 'history' box first")
        out = []
        for v in self.views:
            target = Path(folder) if len(self.views) == 1 else Path(folder) / _slug(v.title)
            out.append(v.session.save(target))
        self.messages.show(f"saved the edit history to {', '.join(map(str, out))}", "success")
        return out

    def load_history(self, folder: str | Path) -> None:
        """Load a saved history into the session(s); on any problem nothing changes."""
        if not str(folder).strip():
            raise ValueError("type the folder of a saved history into the 'history' box first")
        for v in self.views:
            v.session.load_history(Path(folder) if len(self.views) == 1 else Path(folder) / _slug(v.title))
            v.after_history_change("load history")
        self._after_change(True)

    def _after_change(self, changed: bool) -> None:
        t0 = time.perf_counter()
        if changed:
            self.browser.set_errors(*self.views[0].errors())
        self._sync_buttons()
        self._change_times = {"browser": time.perf_counter() - t0}

    def _sync_buttons(self) -> None:
        s = [v.session for v in self.views]
        self.panel.set_history_buttons(all(x.can_undo for x in s), all(x.can_redo for x in s))

    # -- display ----------------------------------------------------------------------------
    widget: W.Widget

    def _repr_mimebundle_(self, **kw: Any):
        return self.widget._repr_mimebundle_(**kw)


def _display_note(session: Any) -> str:
    """How the images are shown, when they are not plain pixels (``DataBundle.display``)."""
    mode = getattr(session.bundle, "display", "pixels") if session.bundle is not None else "pixels"
    return {"denormalized": "; images shown denormalized",
            "min-max": "; images shown min-max scaled (normalisation unknown: pass mean/std)"}.get(mode, "")


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in title.strip()) or "model"


class Workbench(LocalizeActions, _Controller):
    """Error browser, target picker, editor, metrics, attribution and probe on one session.

    Args:
        session: an ``EditSession`` with an evaluator.
        note: a line shown in the message area at start (e.g. a model fallback).
        page_size: thumbnails per page in the error browser.
        attribution_method: the AttributionView's initial method.
        probe_views: augmented views per kind for the generalization probe (0 = off).

    Example:
        >>> wb = Workbench.from_checkpoint()          # assets/models/fashion-editable
        >>> wb                                        # displays in Jupyter
        >>> wb.select(wb.browser.page_items[0].index); wb.set_target(wb.views[0].picker.true); wb.edit()
    """

    def __init__(self, session, *, note: str = "", page_size: int = 10, attribution_method: str = "Saliency",
                 probe_views: int = 16, name: str = "") -> None:
        self.messages = MessageArea()
        self.name = name or (session.checkpoint.name if getattr(session, "checkpoint", None) else "model")
        self.header = css(W.HTML(), "wb-header")
        self.model_path = W.Text(value=str(getattr(session, "checkpoint", "") or ""), description="model",
                                 layout=W.Layout(width="460px"))
        self.open_button = css(W.Button(description="Open model", layout=W.Layout(width="110px")), "wb-open")
        self.open_button.on_click(lambda _b: self._guarded("Open model", self.open)(self.model_path.value))
        self.root = css(W.VBox(), "wb-workbench")
        self.widget = self.root
        self._build(session, page_size, attribution_method, probe_views)
        slow = session.evaluator.fast_path if session.evaluator.fast_path.startswith("full forward") else ""
        note = "; ".join(n for n in (note, slow) if n)  # an untraceable model is scored by full forwards
        if note:
            self.messages.show(note, "warning")
            log.warning(note)

    def _build(self, session, page_size: int, attribution_method: str, probe_views: int) -> None:
        self.session = session
        view = SessionView(session, on_select=self.select, on_target=self.set_target, probe_views=probe_views)
        ev = session.evaluator
        errors, confusion = view.errors()
        self.browser = ErrorBrowser(view.images, view.classes, on_select=self.select, page_size=page_size,
                                    errors=errors, confusion=confusion,
                                    title="Misclassified test images (current weights)")
        cams = session.cam_layers()
        self.attribution = AttributionView(cams, self.messages, method=attribution_method,
                                           layer=session.config.layers if session.config.layers in cams
                                           else cams[-1])
        self._init_common([view], session.group_names(), session.config)
        self.localization = LocalizationPanel(view.classes, {
            "localize": self._guarded("Where is it stored?", self.localize),
            "page": self._guarded("Localize this page", self.localize_page),
            "edit_group": self._guarded("Edit this group", self.edit_localized_group)}, session.group_names())
        self._refresh_localization(True)
        card = getattr(session, "card", {}) or {}
        err = card.get("test_error")
        self.header.value = (f"<h3 style='margin:4px 0'>Editable Workbench: {html.escape(self.name)}</h3>"
                             f"<div style='color:#555'>{len(view.labels)} {session.split} images, base test error "
                             f"{ev.base_error:.2%}" + (f" (card: {err:.2%} on the full split)" if err else "")
                             + f", device {session.device}" + _display_note(session) + "</div>")

        def section(title: str, *body: W.Widget) -> W.Widget:
            return W.VBox([W.HTML(f"<h4 style='margin:8px 0 2px 0'>{title}</h4>"), *body],
                          layout=W.Layout(border_top="1px solid #ccc", padding="2px"))

        wrap = W.Layout(flex_flow="row wrap")
        self.root.children = [
            self.header, W.HBox([self.model_path, self.open_button]), self.messages.widget,
            section("1. Pick a mistake", self.browser.widget),
            W.HBox([section("2. Pick the target label", view.picker.widget),
                    section("3. Edit", self.panel.widget, view.status, view.metrics.widget)], layout=wrap),
            W.HBox([section("Attribution (selected image)", self.attribution.widget),
                    section("Edit generalization", view.probe.widget)], layout=wrap),
            section("Where is it stored? (critical neurons of the selected image's prediction)",
                    self.localization.widget),
        ]

    @property
    def view(self) -> SessionView:
        return self.views[0]

    @classmethod
    def from_checkpoint(cls, folder: str | Path | None = None, *, limit: int | None = None, device: Any = None,
                        bundle: Any = None, **kw: Any) -> Workbench:
        """Open a workbench on a model folder (default: ``assets/models/fashion-editable``, else
        ``fashion-baseline`` with a visible note).

        Args:
            folder: model folder (``model.safetensors`` + ``card.json``).
            limit: use only the first ``limit`` test images (faster start; None = all).
            device: default CUDA when present, else CPU.
            kw: go to :class:`Workbench` (``page_size``, ``attribution_method``, ``probe_views``).
        Raises:
            FileNotFoundError, ValueError: missing folder, corrupted or mismatched checkpoint.
        """
        session, note = open_session(folder, limit=limit, device=device, bundle=bundle)
        return cls(session, note=note, **kw)

    @classmethod
    def from_model(cls, model: Any, data: Any, *, classes: Sequence[str] | None = None, limit: int | None = None,
                   device: Any = None, name: str = "", session_kw: dict[str, Any] | None = None,
                   **kw: Any) -> Workbench:
        """Open a workbench on any ``nn.Module`` classifier and its data, in one call (no model folder).

        Args:
            model: e.g. a torchvision model just trained in a notebook (edited in place).
            data: a torch ``Dataset`` of ``(image, label)``, ``(x, y)`` tensors, an ImageFolder
                path or a ``DataBundle`` (see :func:`workbench.data.as_bundle`).
            classes: class names (default: the data set's ``classes``, else ``"0"``, ``"1"`` ...).
            session_kw: go to :class:`~workbench.session.EditSession` (``mean=``, ``std=``, ``config=``,
                ``calibration=`` ...).
            kw: go to :class:`Workbench`.

        A model without tuned step sizes (anything but the project's ResNets) gets a calibrated one
        first (:meth:`EditSession.prepare_editor`), shown in the message area.
        """
        from ..session import EditSession

        session = EditSession(model, data, classes=classes, limit=limit, device=device, **(session_kw or {}))
        session.prepare_editor()  # a model without tuned step sizes is calibrated before the panel shows them
        return cls(session, name=name or type(model).__name__, note=session.editor_note, **kw)

    @classmethod
    def compare(cls, baseline_folder: str | Path | None = None, editable_folder: str | Path | None = None,
                *, limit: int | None = None, device: Any = None, **kw: Any):
        """A :class:`~workbench.widgets.compare.Comparison` of two models, the same edits applied to both
        (defaults: ``assets/models/fashion-baseline`` and ``fashion-editable``)."""
        from .compare import Comparison

        return Comparison.from_checkpoints(baseline_folder, editable_folder, limit=limit, device=device, **kw)

    def open(self, folder: str | Path, *, limit: int | None = None, **kw: Any) -> None:
        """Replace the model by another folder (``kw`` go to ``EditSession.from_checkpoint``).

        Raises on failure (the Open button shows the error); the workbench is then unchanged.
        """
        session, note = open_session(folder, limit=limit if limit is not None else self.session.limit,
                                     device=self.session.device, **kw)
        self.name = Path(session.checkpoint).name if session.checkpoint else "model"
        self.selected, self.target = None, None
        self._build(session, self.browser.page_size, self.attribution.method.value, self.view.probe_views)
        self.messages.show(note or f"opened {session.checkpoint}", "warning" if note else "success")

    # -- hooks ------------------------------------------------------------------------------
    def _after_select(self) -> None:
        self._request_attribution()
        self._refresh_localization(False)

    def _after_change(self, changed: bool) -> None:
        super()._after_change(changed)
        t1 = time.perf_counter()
        if changed and self.selected is not None:
            self._request_attribution()
        self._change_times["attribution"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        self._refresh_localization(changed)
        self._change_times["localization"] = time.perf_counter() - t2

    def _request_attribution(self) -> None:
        if self.selected is None or self.target is None:
            return
        s, i = self.session, self.selected
        base = s.params_at(0) if s.history else None
        orig, tgt = int(s.evaluator.base_preds[i]), int(self.target)  # the base model's prediction
        labels = {f"original: {self.view.classes[orig]}": orig, f"target: {self.view.classes[tgt]}": tgt}
        black = None  # IG / Occlusion baseline: a black image, normalised like the inputs
        if s.bundle is not None:
            black = s.bundle.normalize(torch.zeros(s.bundle.input_shape, dtype=torch.uint8))
        self.attribution.set_request(AttributionRequest(
            s.model, base, None, s.image(i), self.view.images[i], labels,
            title=f"#{i}: base weights vs current ({len(s.history)} edit(s))", baseline=black))
