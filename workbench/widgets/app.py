"""The teaching page that ``scripts/app.sh`` serves: a header line, then the workbench; lesson and comparison as toggles.

:func:`app` opens it (as :func:`~workbench.widgets.show` does: a progress line at once, then
the page); :func:`app_from_env` reads the settings ``scripts/app.sh`` passes in
``WORKBENCH_APP_*`` variables. :class:`AppWorkbench` is the workbench with three toggles in
its header line: **Lesson** (a strip above the workbench that steps through
:data:`~workbench.widgets.lesson.STEPS` with Next and Back), **Baseline vs editable-trained**
(the :class:`~workbench.widgets.comparison.Comparison` of the two shipped models, opened the
first time it is asked for, in place of the workbench) and **Presentation mode**.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import ipywidgets as W

from ..paths import shipped_model
from .common import css
from .comparison import Comparison
from .lesson import Lesson
from .markup import HTML, markup
from .panels.lesson_bar import INTRO, LessonBar
from .workbench import Workbench

if TYPE_CHECKING:
    from ..session import EditSession
    from .lockstep import Lockstep

__all__ = ["ENV", "AppWorkbench", "app", "app_from_env"]

# scripts/app.sh's settings, read by app_from_env (every one optional)
ENV = {"model": "WORKBENCH_APP_MODEL", "limit": "WORKBENCH_APP_LIMIT", "presentation": "WORKBENCH_APP_PRESENTATION",
       "lesson": "WORKBENCH_APP_LESSON", "baseline": "WORKBENCH_APP_BASELINE", "editable": "WORKBENCH_APP_EDITABLE",
       "output": "WORKBENCH_APP_OUTPUT"}
VIEWS = ("workbench", "details", "compare", "localization")


class AppWorkbench(Workbench):
    """The workbench of the teaching page: lesson mode and the comparison as toggles.

    Args:
        session, kw: as :class:`~workbench.widgets.workbench.Workbench` (``presentation=True``: start
            in presentation mode).
        lesson: start with the lesson strip open.
        baseline, editable: the comparison's two model folders (default: the shipped
            ``fashion-baseline`` and ``fashion-editable``), opened on the same images as ``session``.
    """

    def __init__(self, session: EditSession, *, lesson: bool = False, baseline: str | Path | None = None,
                 editable: str | Path | None = None, **kw: Any) -> None:
        self.comparison_view: Comparison | None = None
        self.lockstep: Lockstep | None = None
        self.folders = (baseline if baseline is not None else shipped_model("fashion-baseline"),
                        editable if editable is not None else shipped_model("fashion-editable"))
        super().__init__(session, **kw)
        self.lesson = Lesson(self)
        self.lesson_bar = LessonBar(self._guarded_lesson(self._lesson_next), self._guarded_lesson(self.lesson.back))
        self.lesson_toggle = css(W.ToggleButton(value=False, description="Lesson", icon="graduation-cap",
                                                tooltip="a guided sequence of five steps"), "wb-lesson-toggle")
        self.compare_toggle = css(W.ToggleButton(value=False, description="Baseline vs editable-trained",
                                                 icon="columns", tooltip="the same edits on both shipped models"),
                                  "wb-compare-toggle")
        self.compare_box = css(W.VBox([], layout=W.Layout(display="none")), "wb-compare-box")
        self.lesson_toggle.observe(lambda ch: self.set_lesson(bool(ch["new"])), names="value")
        self.compare_toggle.observe(lambda ch: self._show_compare(bool(ch["new"])), names="value")
        self.tools.children = (self.lesson_toggle, self.compare_toggle, *self.tools.children)
        children = list(self.root.children)
        children.insert(children.index(self.header_row) + 1, self.lesson_bar.widget)
        self.root.children = (*children, self.compare_box)
        self._show_lesson()
        self.set_lesson(lesson)

    # -- the lesson --------------------------------------------------------------------
    def set_lesson(self, on: bool) -> None:
        """Show or hide the lesson strip (its position is kept)."""
        if self.lesson_toggle.value != on:
            self.lesson_toggle.value = on  # calls back here
            return
        self.lesson_bar.widget.layout.display = "" if on else "none"

    def _lesson_next(self) -> None:
        les = self.lesson
        if not les.at_end:  # the step's sentence shows while it runs (a step may take seconds)
            step = les.steps[les.position]
            self.lesson_bar.announce(les.position + 1, len(les.steps), step.title, step.sentence)
        les.next()

    def _guarded_lesson(self, action: Any) -> Any:
        def run() -> None:
            try:
                action()
            finally:
                self._show_lesson()
        return run

    def _show_lesson(self) -> None:
        les, n = self.lesson, len(self.lesson.steps)
        if les.position == 0:
            self.lesson_bar.show(0, n, "", INTRO, "")
            return
        step = les.steps[les.position - 1]
        self.lesson_bar.show(les.position, n, step.title, step.sentence, les.done[-1].result)

    # -- the comparison and the views ----------------------------------------------------
    def comparison(self) -> Lockstep:
        """The comparison's lockstep, opening both models on this page's images the first time."""
        if self.lockstep is None:
            self.compare_box.children = (HTML(markup("<i>Opening {} and {} on the same {:,} images…</i>",
                                                     Path(str(self.folders[0])).name, Path(str(self.folders[1])).name,
                                                     len(self.session.labels))),)
            s = self.session
            cmp = Comparison.from_checkpoints(self.folders[0], self.folders[1], limit=len(s.labels), device=s.device,
                                              bundle=s.bundle)
            self.comparison_view, self.lockstep = cmp, cmp.lockstep
            self.compare_box.children = (cmp.widget,)
            self._present_comparison(self.presentation)
        return self.lockstep

    def show(self, view: str) -> None:
        """Show a view: ``workbench``, ``details`` or ``localization`` (that tab of the workbench), ``compare``."""
        if view not in VIEWS:
            raise ValueError(f"there is no view {view!r}: use one of {VIEWS}")
        compare = view == "compare"
        if self.compare_toggle.value != compare:
            self.compare_toggle.value = compare  # its observer shows the view
        else:
            self._show_compare(compare)
        if view in ("details", "localization"):
            self.open_tab("Details of the last edit" if view == "details" else "Where is it stored?")

    def _show_compare(self, on: bool) -> None:
        """The comparison in place of the workbench (``on``), or the workbench."""
        if on:
            self.compare_box.layout.display = ""
            try:
                self.comparison()
            except Exception as err:  # noqa: BLE001 - shown in the page, in plain words
                self.messages.error(err, "Opening the comparison")
                self.compare_toggle.value = False  # its observer shows the workbench again
                return
        for w in (self.status, self.main, self.tabs):
            w.layout.display = "none" if on else ""
        self.compare_box.layout.display = "" if on else "none"

    @property
    def main(self) -> W.Widget:
        return next(c for c in self.root.children if "wb-main" in c._dom_classes)

    def set_presentation(self, on: bool) -> None:
        super().set_presentation(on)
        if self.present.value == on:
            self._present_comparison(on)

    def _present_comparison(self, on: bool) -> None:
        cmp = getattr(self, "comparison_view", None)
        if cmp is None:
            return
        (cmp.widget.add_class if on else cmp.widget.remove_class)("wb-present")
        for side in cmp.sides:
            side.attribution.widget.layout.display = "none" if on else ""
        cmp.browser.confusion_box.layout.display = "none" if on else ""
        cmp.browser.controls.layout.display = "none" if on else ""


def app(folder: str | Path | None = None, *, limit: int | None = None, presentation: bool = False,
        lesson: bool = False, baseline: str | Path | None = None, editable: str | Path | None = None,
        device: Any = None, bundle: Any = None, **kw: Any) -> AppWorkbench:
    """Display the teaching page for a model folder (default: the shipped editable-trained model):
    a progress line at once, then the header line and the workbench. ``presentation``: start in
    presentation mode; ``lesson``: with the lesson strip open; ``baseline`` / ``editable``: the
    comparison's models; ``limit``, ``device``, ``bundle``: as :func:`~workbench.widgets.show`.
    ``kw`` go to :class:`~workbench.widgets.workbench.Workbench`."""
    from .launch import show

    inspect.signature(Workbench).bind(None, **kw)  # a mistyped keyword fails before the model is loaded
    page = show(folder, limit=limit, device=device, bundle=bundle, workbench=AppWorkbench, presentation=presentation,
                lesson=lesson, baseline=baseline, editable=editable, **kw)
    assert isinstance(page, AppWorkbench)
    return page


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in ("", "0", "false", "no"):
        return False
    if value.strip().lower() in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name}={value!r} is not a yes/no value: set it to 1 or 0")


def app_from_env(environ: Mapping[str, str] | None = None) -> AppWorkbench:
    """:func:`app` with the settings in ``WORKBENCH_APP_*`` variables (see ``ENV``), as ``scripts/app.sh`` sets them.

    Raises:
        ValueError: a limit that is not a positive whole number, or a flag that is not 1 / 0.
    """
    env = os.environ if environ is None else environ
    limit_text = env.get(ENV["limit"], "").strip()
    if limit_text and not (limit_text.isdigit() and int(limit_text) > 0):
        raise ValueError(f"{ENV['limit']}={limit_text!r} is not a positive whole number: set it to the number of "
                         "test images to score (for example 2000), or leave it unset for all of them")
    output = env.get(ENV["output"]) or None
    return app(env.get(ENV["model"]) or None, limit=int(limit_text) if limit_text else None,
               presentation=_flag(env.get(ENV["presentation"]), ENV["presentation"]),
               lesson=_flag(env.get(ENV["lesson"]), ENV["lesson"]), baseline=env.get(ENV["baseline"]) or None,
               editable=env.get(ENV["editable"]) or None, **({"output_dir": output} if output else {}))
