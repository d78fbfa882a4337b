"""HistoryPanel: the session timeline, the list of applied edits, saving and exporting.

Everything is written under one output folder (default: ``workbench-output`` beside the
notebook), in a sub-folder named by the name field: ``<name>/history`` (the edit history),
``<name>/model`` (the edited model: ``model.safetensors`` + ``card.json`` with the edit
list) and ``<name>/report.html``. The name is checked so that no file lands outside the
folder. The report is also offered as a browser download.

Nothing another session saved is replaced without asking: the default name carries the time and a
random part (two kernels on one server never pick the same), and a Save, Export or Report onto a
name that already holds someone else's save is refused in words, with an "Overwrite" button that
replaces it on purpose (or type another name).
"""
from __future__ import annotations

import base64
import re
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import ipywidgets as W

from ...folder_io import FolderExists, replace_file
from ..common import MessageArea, css
from ..markup import HTML, join, markup
from ..plots.charts import timeline_axes, timeline_figure
from ..plots.live import live_figure

__all__ = ["HistoryPanel", "NO_HISTORY", "default_name", "safe_name"]

NO_HISTORY = "No edit applied yet: the test accuracy after each edit and the list of edits show here."

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_name() -> str:
    """``session-<date>-<time>-<6 random hex digits>``: unique per kernel, even for two
    students starting in the same minute on one server."""
    return time.strftime("session-%Y%m%d-%H%M") + f"-{uuid.uuid4().hex[:6]}"


def safe_name(name: str) -> str:
    """The name field's value, checked: letters, digits, ``.``, ``-``, ``_`` (ValueError otherwise)."""
    name = name.strip()
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"{name!r} cannot be used as a name: use letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit (for example 'lesson-1')")
    return name


class HistoryPanel:
    """Timeline, edit list, name field and the Save / Load / Export / Report buttons.

    Args:
        output_dir: the folder every file goes into.
        actions: name -> callable(target folder) for ``save``, ``load``, ``export``, ``report``
            (``report`` returns the HTML text); ``save`` and ``export`` also take
            ``overwrite=True`` (after the user clicked Overwrite) and raise ``FolderExists`` to refuse.
    """

    def __init__(self, output_dir: str | Path, actions: dict[str, Callable[..., object]]) -> None:
        self.output_dir = Path(output_dir)
        self.actions = actions
        self.figure = live_figure(timeline_figure([0.9]))
        self.table = css(HTML(markup("<i>{}</i>", NO_HISTORY)), "wb-history-table")
        self.timeline = css(W.VBox([]), "wb-timeline")  # the figure once an edit is applied: never one lone point
        self.name = css(W.Text(value=default_name(), description="name",
                               layout=W.Layout(width="260px")), "wb-history-name")
        self.where = HTML("")
        self.buttons: dict[str, W.Button] = {}
        for key, label, tip in (("save", "Save history", "the edit history, to reload later"),
                                ("load", "Load history", "load the history saved under this name"),
                                ("export", "Export edited model", "model.safetensors + card.json with the edits"),
                                ("report", "Download report", "one HTML file with every edit and the plots")):
            b = css(W.Button(description=label, tooltip=tip, layout=W.Layout(width="auto")), f"wb-{key}")
            b.on_click(lambda _b, k=key: self.run(k))
            self.buttons[key] = b
        self.messages = MessageArea("history")
        self.download = css(HTML(""), "wb-download")
        # shown after a refusal to replace someone else's save: replaces it on purpose
        self.overwrite = css(W.Button(description="Overwrite", button_style="warning", layout=W.Layout(
            width="auto", display="none")), "wb-overwrite")
        self.overwrite.on_click(lambda _b: self._overwrite())
        self._pending: tuple[str, Path] | None = None
        self._reports: set[Path] = set()  # report files this panel wrote (it may rewrite them)
        self._update_where()
        self.name.observe(lambda _c: self._update_where(), names="value")
        self.widget = css(W.VBox([
            W.HBox([self.timeline, self.table], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.name, *self.buttons.values()], layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.where, W.HBox([self.messages.widget, self.overwrite], layout=W.Layout(align_items="center")),
            self.download]), "wb-history")

    def _update_where(self) -> None:
        self._offer(None)
        self.where.value = markup("<small style='color:#555'>files go to {}/{}/</small>", str(self.output_dir),
                                  self.name.value.strip())

    def folder(self, what: str) -> Path:
        """``<output_dir>/<name>/<what>``, checked to stay inside ``output_dir``."""
        root = self.output_dir.resolve()
        path = (root / safe_name(self.name.value) / what).resolve()
        if root not in path.parents:
            raise ValueError(f"{path} is outside {root}; choose another name")
        return path

    def _offer(self, pending: tuple[str, Path] | None) -> None:
        """Show the Overwrite button for ``(key, target)``, or hide it (None)."""
        self._pending = pending
        if pending is not None:
            self.overwrite.description = f"Overwrite {pending[1].parent.name}"
        self.overwrite.layout.display = None if pending is not None else "none"

    def _overwrite(self) -> object:
        """Run the refused action again on the same target, replacing what is there."""
        if self._pending is None:
            return None
        key, target = self._pending
        return self.run(key, overwrite=target)

    def run(self, key: str, overwrite: Path | None = None) -> object:
        """Run one button's action (``overwrite``: the target the user chose to replace)."""
        self.messages.clear()
        self._offer(None)
        label = self.buttons[key].description
        with self.messages.guard(label):
            target = self.folder({"save": "history", "load": "history", "export": "model",
                                  "report": "report.html"}[key])
            if key == "load" and not target.exists():
                raise FileNotFoundError(f"no history saved under the name {self.name.value.strip()!r} "
                                        f"(looked in {target}); type the name you saved it with")
            replace = overwrite == target
            try:
                if key == "report" and target.exists() and target not in self._reports and not replace:
                    raise FolderExists(f"{target} exists", target)
                out = self.actions[key](target, overwrite=True) if replace and key != "report" \
                    else self.actions[key](target)
            except FolderExists as err:
                self._offer((key, target))
                what = {"save": "an edit history", "export": "a model", "report": "a report"}.get(key, "a save")
                raise FolderExists(f"{what} is already saved under the name {target.parent.name!r} (another "
                                   f"session's, or an earlier one); nothing was written. Click "
                                   f"'{self.overwrite.description}' to replace it, or type a new name", target) from err
            if key == "report":
                text = str(out)
                target.parent.mkdir(parents=True, exist_ok=True)
                replace_file(target.parent, target, text.encode("utf-8"))
                self._reports.add(target)
                data = base64.b64encode(text.encode("utf-8")).decode()
                self.download.value = markup("<a download='{}-report.html' href='data:text/html;charset=utf-8;"
                                             "base64,{}' style='font-weight:600'>⬇ click to download report.html</a>",
                                             target.parent.name, data)
            self.messages.show({"save": f"Saved the history to {target}",
                                "load": f"Loaded the history from {target}",
                                "export": f"Exported the edited model to {target}",
                                "report": f"Wrote the report to {target}"}[key], "success")
            return out
        return None

    def show(self, accuracies: Sequence[float], rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Timeline (base + one accuracy per applied edit) and the edit list
        (``(what, target, steps, drawdown)`` per edit)."""
        with self.figure.batch_update():  # one message for the trace and the axes
            self.figure.data[0].x = list(range(len(accuracies)))
            self.figure.data[0].y = list(accuracies)
            self.figure.update_layout(**timeline_axes(list(accuracies)))
        self.timeline.children = (self.figure,) if len(accuracies) > 1 else ()
        if not rows:
            self.table.value = markup("<i>{}</i>", NO_HISTORY)
            return
        body = join(markup("<tr><td>{}</td>{}</tr>", n, join(markup("<td>{}</td>", v) for v in r))
                    for n, r in enumerate(rows, 1))
        self.table.value = markup("<table class='wb-edits' style='border-collapse:collapse;margin-left:12px'>"
                                  "<tr><th>#</th><th>image</th><th>target</th><th>steps</th><th>drawdown</th></tr>"
                                  "{}</table>", body)
