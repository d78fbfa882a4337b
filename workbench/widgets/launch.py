"""Opening the workbench on a model folder: :func:`show`, a progress line, the slow steps side by side.

:func:`show` is the opener for a model folder (for a model in memory:
:meth:`~workbench.widgets.workbench.Workbench.from_model`). It displays a progress line at once, then does the two slow things of a start at
the same time: a thread loads the model and the test images and scores the base model
(torch works outside the GIL), while the kernel imports the widget libraries (plotly,
matplotlib, ipywidgets; pure Python). The imports start once the loading (Python as
well, so it would wait for the GIL) is done and the scoring has begun. The line says which
step is running and how many test images are scored; it is replaced by the workbench, or by
a plain-words error.

This module imports only the standard library at import time, so ``from workbench.widgets
import show`` is quick; the core (torch, the data, evaluation and training packages) is
imported before the thread starts, so the thread imports at most what a data set loads
lazily (torchvision for CIFAR-10), which the widget modules never import.
"""
from __future__ import annotations

import inspect
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .workbench import Workbench

__all__ = ["Progress", "show"]

# While the kernel imports (pure Python, holding the GIL), the scoring thread needs the GIL
# back after every torch call; at Python's default 5 ms switch interval it would wait up
# to 5 ms each time. 0.5 ms lets it run at nearly full speed; restored once imported.
SWITCH_INTERVAL = 0.0005


class Progress:
    """What the opening thread has done so far (written by it, read by the kernel's loop)."""

    STEPS = ("loading the model and the test images", "scoring the base model on the test images",
             "building the screen")

    def __init__(self, name: str) -> None:
        self.name = name
        self.t0 = time.perf_counter()
        self.step = 0
        self.done = self.total = 0
        self.libraries = False  # the widget libraries are imported
        self.marks: dict[str, float] = {}  # what was done -> seconds since the start

    def mark(self, what: str) -> None:
        self.marks[what] = time.perf_counter() - self.t0

    def images(self, done: int, total: int) -> None:
        """The evaluator's callback: ``done`` of ``total`` test images read."""
        if self.step == 0:
            self.mark("model and images loaded")
        self.step, self.done, self.total = max(self.step, 1), done, total

    def html(self) -> Any:
        """The progress line (:class:`~workbench.widgets.markup.Markup`; the folder's name escaped)."""
        from .markup import join, markup  # the widget libraries: imported by show() before the first call

        rows = []
        for k, what in enumerate(self.STEPS):
            mark = "✓" if k < self.step else "▸" if k == self.step else "·"
            extra = f": {self.done:,} / {self.total:,}" if k == 1 and self.total else ""
            style = "font-weight:bold" if k == self.step else "color:#777" if k > self.step else "color:#2e7d32"
            rows.append(markup("<div style='{}'>{} {}. {}{}</div>", style, mark, k + 1, what, extra))
        libs = "✓ widget libraries loaded" if self.libraries else "▸ loading the widget libraries (alongside)"
        return markup("<div class='wb-loading-text' style='font-size:1.05em;line-height:1.5'><b>Editable Workbench</b>"
                      " — starting {} ({:.0f} s){}<div style='color:#777'>{}</div></div>", self.name,
                      time.perf_counter() - self.t0, join(rows), libs)


def show(folder: str | Path | None = None, *, limit: int | None = None, device: Any = None, bundle: Any = None,
         workbench: type[Workbench] | None = None, **kw: Any) -> Workbench:
    """Display a progress line at once, open the model folder (default: the shipped
    ``fashion-editable``, else ``fashion-baseline`` with a visible note) and replace the line by
    the workbench. For notebooks and the Voila app. ``limit``: score the first ``limit`` test
    images only; ``bundle``: the data set (default: the card's). ``kw`` go to
    :class:`~workbench.widgets.workbench.Workbench` (or the subclass ``workbench``).
    Returns the workbench.

    Raises:
        FileNotFoundError, ValueError: what :func:`workbench.session.opening.open_session`
            raises, or a bad ``kw`` (TypeError); the same message is shown in the page, in
            plain words, in place of the progress line.
    """
    import ipywidgets as W
    from IPython.display import display

    from .markup import HTML

    progress = Progress(Path(str(folder)).name if folder is not None else "the default model")
    line = HTML(progress.html())
    box = W.VBox([line])
    box.add_class("wb-loading")
    display(box)

    from ..session.opening import open_session  # the core, torch included, before the thread
    from .. import data, evaluation, training  # noqa: F401 - imported here, not in the thread

    progress.mark("core imported")
    opened: dict[str, Any] = {}

    def work() -> None:
        try:
            opened["session"] = open_session(folder, limit=limit, device=device, bundle=bundle,
                                             progress=progress.images)
            progress.mark("base model scored")
        except BaseException as err:  # noqa: BLE001 - handed to the kernel's thread, which raises it
            opened["error"] = err

    thread = threading.Thread(target=work, name="workbench-open", daemon=True)
    try:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)  # the scoring thread waits less for the GIL between torch calls
        try:
            thread.start()
            while progress.step == 0 and thread.is_alive():  # loading is Python too: let it have the GIL
                thread.join(0.02)
            if "error" in opened:  # e.g. a missing folder: say so now, not after the imports
                raise opened["error"]
            from .workbench import Workbench  # the widget libraries, while the thread scores (torch, no GIL)
        finally:
            sys.setswitchinterval(interval)
        cls = workbench or Workbench
        inspect.signature(cls).bind(None, **kw)  # a mistyped keyword fails now, not after the scoring
        progress.libraries = True
        progress.mark("widget libraries imported")
        while thread.is_alive():
            line.value = progress.html()
            thread.join(0.25)
        if "error" in opened:
            raise opened["error"]
        session, note = opened["session"]
        progress.step = 2
        line.value = progress.html()
        wb = cls(session, note=note, **kw)
    except Exception as err:  # shown in the page, in plain words, and raised for the notebook
        from .common import MessageArea

        area = MessageArea("startup")
        area.error(err, "Opening the model" if err is opened.get("error") else "Opening the workbench")
        box.children = [area.widget]
        raise
    progress.mark("screen built")
    wb.startup_seconds, wb.startup_steps = progress.marks["screen built"], dict(progress.marks)
    box.children = [wb.widget]
    return wb
