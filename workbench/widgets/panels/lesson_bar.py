"""LessonBar: the lesson's strip above the workbench: the step, its sentence, Back and Next.

View state only: it shows what it is told (:meth:`LessonBar.show`) and hands its two clicks
to the callables it is given (the page runs the :class:`~workbench.widgets.lesson.Lesson`).
While a step runs both buttons are disabled; an error is shown beside them in plain words.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as W

from ..common import MessageArea, css
from ..markup import HTML, markup

__all__ = ["INTRO", "LessonBar"]

INTRO = ("Five steps, one sentence each: a cheap fix, a costly fix, undo, the same fix on two models, and where a "
         "prediction is stored. Press Next to run each step; Back takes it back.")


class LessonBar:
    """Step line, sentence, the numbers the step got, Back / Next and a message line.

    Args:
        on_next, on_back: called on a click; each runs the lesson and then calls :meth:`show`, also
            when it fails (until then both buttons are disabled).
    """

    def __init__(self, on_next: Callable[[], object], on_back: Callable[[], object]) -> None:
        self.messages = MessageArea("lesson")
        self.step = css(HTML(""), "wb-lesson-step")
        self.sentence = css(HTML(""), "wb-lesson-sentence")
        self.result = css(HTML(""), "wb-lesson-result")
        self.back_button = css(W.Button(description="◀ Back", layout=W.Layout(width="auto"),
                                        tooltip="take the last step back"), "wb-lesson-back")
        self.next_button = css(W.Button(description="Next ▶", button_style="primary", layout=W.Layout(width="auto"),
                                        tooltip="run the next step"), "wb-lesson-next")
        self.back_button.on_click(lambda _b: self._run(on_back))
        self.next_button.on_click(lambda _b: self._run(on_next))
        text = W.VBox([self.step, self.sentence, self.result], layout=W.Layout(flex="1 1 300px"))
        self.widget = css(W.VBox([
            W.HBox([text, W.HBox([self.back_button, self.next_button], layout=W.Layout(align_items="center"))],
                   layout=W.Layout(align_items="center", flex_flow="row wrap")), self.messages.widget],
            layout=W.Layout(border="2px solid #1565c0", padding="4px 10px", margin="4px 0", display="none")),
            "wb-lesson")
        self.show(0, 1, "", INTRO, "")

    def _run(self, action: Callable[[], object]) -> None:
        self.messages.clear()
        self.back_button.disabled = self.next_button.disabled = True
        self.result.value = markup("<i>working…</i>")
        with self.messages.guard("The lesson step"):  # the action calls show(), which sets the buttons again
            action()

    def announce(self, position: int, total: int, title: str, sentence: str) -> None:
        """While step ``position`` runs: its title and sentence (the class reads it meanwhile) and
        "working…"; the buttons stay disabled until :meth:`show`."""
        self.step.value = markup("<b>Lesson · step {} of {}</b> · {}", position, total, title)
        self.sentence.value = markup("{}", sentence)
        self.result.value = markup("<i>working…</i>")

    def show(self, position: int, total: int, title: str, sentence: str, result: str) -> None:
        """Show step ``position`` of ``total`` (0: the introduction; ``total``: the last step ran)."""
        if position == 0:
            self.step.value = markup("<b>Lesson</b> · {} steps", total)
            self.sentence.value = markup("{}", sentence)
        else:
            self.announce(position, total, title, sentence)
        self.result.value = markup("<b>{}</b>{}", result, " End of the lesson." if position >= total else "")
        self.back_button.disabled = position == 0
        self.next_button.disabled = position >= total
        self.next_button.description = "Start ▶" if position == 0 else "Next ▶"
