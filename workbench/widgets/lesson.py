"""Lesson mode: five guided steps a teacher steps through with Next and Back, one sentence each.

1. a cheap fix on a typical mistake; 2. a costly fix on a confident mistake; 3. undo; 4. the
same fix on the baseline and on the editable-trained model; 5. "where is it stored?".

No widgets here: each step drives the public actions of the page's
:class:`~workbench.widgets.controller.Controller` (select, set_target, edit, undo, localize)
or of the comparison's :class:`~workbench.widgets.lockstep.Lockstep`, and returns one
sentence with the numbers it got. Back takes a step back exactly: the edits it pushed are
undone (an undo it made is redone), so Next runs it again from the same state. The page
(:class:`Stage`) opens the comparison and shows the view each step names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from .picks import most_confident, typical_first

if TYPE_CHECKING:
    from .controller import Controller
    from .lockstep import Lockstep

__all__ = ["Lesson", "STEPS", "Stage", "Step", "TRIES"]

TRIES = 3  # mistakes a fixing step tries, in its order, until the editor fixes one


class Stage(Protocol):
    """What a lesson drives: the page's controller, the comparison, and which view is shown."""

    controller: Controller
    lockstep: Lockstep | None  # the comparison's, once it is open

    def comparison(self) -> Lockstep:
        """The comparison's lockstep (opened, with both models loaded, the first time)."""
        ...

    def show(self, view: str) -> None:
        """Show ``"workbench"``, ``"details"`` (what the edit changed), ``"compare"`` or ``"localization"``."""
        ...


@dataclass(frozen=True)
class Step:
    """One step: a title, the sentence the teacher reads, what it does, and the view it shows."""

    title: str
    sentence: str
    run: Callable[[Lesson], str]  # drives the actions; returns the sentence with the numbers it got
    view: str


@dataclass
class _Done:
    """What a step that ran changed: edits pushed on the page's stack and on the comparison's."""

    pushed: int
    compared: int
    result: str


def _pp(drawdown: float) -> str:
    return f"{-drawdown * 100:+.2f} pp".replace("-", "−")


def _edit_words(c: Controller, index: int) -> str:
    """The last edit of ``c`` in one sentence (cost, images changed), or why nothing was applied."""
    rec = c.session.history[-1] if c.session.history else None
    if rec is None or rec.index != index:
        return f"#{index} was not fixed within the editor's step budget: the card says why."
    if rec.step_report is None:  # the exact figures are still streaming in: a lesson states them
        rec = c.session.complete_reports() or rec
    step = rec.step_report
    if step is None:
        return f"#{index} is fixed."
    n = len([j for j in step.flipped.tolist() if int(j) != index])
    return (f"#{index} is fixed: test accuracy {1 - step.error_before:.1%} → {1 - step.error_after:.1%} "
            f"({_pp(step.drawdown)}), {n} other image{'s' if n != 1 else ''} changed.")


def _fix(lesson: Lesson, index: int) -> str:
    c = lesson.stage.controller
    c.select(index)
    c.set_target(int(c.session.labels[index]))
    result = c.edit()
    if result is not None and lesson.config is None:
        lesson.config = result.config  # the comparison repeats this fix with the same editor settings
    return _edit_words(c, index)


def _fixed(c: Controller, index: int) -> bool:
    rec = c.session.history[-1] if c.session.history else None
    return rec is not None and rec.index == index


def _fix_one(lesson: Lesson, key: str, candidates: Sequence[Any], say: Callable[[Any], str] = lambda e: "") -> str:
    """Fix the first of ``candidates`` (at most :data:`TRIES`) that the editor fixes within its step
    budget (a failed edit leaves the model as it was), so a lesson step never ends on a failure
    the teacher did not plan; say which were passed over."""
    c = lesson.stage.controller
    missed: list[int] = []
    for e in list(candidates)[:TRIES]:
        index = int(e.index)
        lesson.picks[key] = index
        words = _fix(lesson, index)
        if _fixed(c, index):
            skipped = f"(#{', #'.join(map(str, missed))} could not be fixed within the step budget.) " if missed \
                else ""
            return skipped + say(e) + words
        missed.append(index)
    if not missed:
        return "There is no mistake to fix."
    return (f"None of #{', #'.join(map(str, missed))} could be fixed within the editor's step budget: the card "
            "says why.")


def _cheap(lesson: Lesson) -> str:
    c = lesson.stage.controller
    if c.session.history:
        c.reset()  # the lesson starts from the base model
        lesson.rebase()
    lesson.config = None
    return _fix_one(lesson, "typical", typical_first(c.session.current_errors()))


def _costly(lesson: Lesson) -> str:
    c = lesson.stage.controller
    typical = lesson.picks.get("typical")
    picks = [e for e in most_confident(c.session.current_errors()) if e.index != typical]
    return _fix_one(lesson, "confident", picks, lambda e: f"The model was {e.confidence:.0%} sure. ")


def _undo(lesson: Lesson) -> str:
    c = lesson.stage.controller
    if not c.session.can_undo:
        return "Nothing to undo: no edit is applied."
    rec = c.undo()
    total = c.session.current_report()
    acc = 1 - (total.error_after if total is not None else c.session.base_error)
    return f"The edit of #{rec.index} is taken back, bit for bit: test accuracy is {acc:.1%} again."


def _compare(lesson: Lesson) -> str:
    ls = lesson.stage.comparison()
    if ls.done:
        ls.reset()  # the comparison starts from both base models
        lesson.rebase()
    wrong = [{int(e.index) for e in c.session.current_errors()} for c in ls.controllers]
    both = [e for e in typical_first(ls.controllers[0].session.current_errors()) if int(e.index) in wrong[1]]
    if not both:
        return "The two models share no mistake to fix: there is nothing to compare."
    typical = lesson.picks.get("typical")
    index = typical if typical is not None and typical in wrong[0] & wrong[1] else int(both[0].index)
    ls.select(index)
    ls.set_target(int(ls.controllers[0].session.labels[index]))
    ls.edit(lesson.config)
    words = []
    for c in ls.controllers:
        rec = c.session.history[-1] if c.session.history else None
        if rec is not None and rec.index == index and rec.step_report is None:
            rec = c.session.complete_reports() or rec  # the exact figures, for the sentence
        step = rec.step_report if rec is not None and rec.index == index else None
        n = len([j for j in step.flipped.tolist() if int(j) != index]) if step is not None else 0
        words.append(f"{c.name}: accuracy {_pp(step.drawdown)}, {n} other images changed" if step is not None
                     else f"{c.name}: not fixed")
    return f"The same fix of #{index} — " + "; ".join(words) + "."


def _where(lesson: Lesson) -> str:
    c = lesson.stage.controller
    index = lesson.picks.get("confident")
    if index is None:
        index = int(typical_first(c.session.current_errors())[0].index)
    c.select(index)
    res = c.localize()
    top = max(res.layer_counts, key=lambda n: res.layer_counts[n]) if res.layer_counts else None
    where = f"; most sit in {top}" if top is not None and res.layer_counts[top] > 0 else ""
    return f"The prediction for #{index} rests on {res.count:g} critical neuron(s){where}."


STEPS: tuple[Step, ...] = (
    Step("A cheap fix on a typical mistake",
         "A typical mistake: the model is wrong but not very sure, so a small change of the weights fixes it, "
         "and few other images change.", _cheap, "details"),
    Step("A costly fix on a confident mistake",
         "The model's most confident mistake: forcing it to change moves the weights further, so the fix "
         "costs more accuracy and changes more other images.", _costly, "details"),
    Step("Undo",
         "Undo puts the weights back exactly as they were: a bad fix costs nothing once it is undone.",
         _undo, "workbench"),
    Step("The same fix on two models",
         "The same fix on a model trained as usual and on one trained to be edited (Editable Training): "
         "the editable-trained model usually pays less for it.", _compare, "compare"),
    Step("Where is it stored?",
         "The search removes, one at a time, the neurons this prediction needs most, until it changes: few "
         "neurons in one place means the image is stored there.", _where, "localization"),
)


@dataclass
class Lesson:
    """The steps, how far the teacher has got, and what each step that ran changed.

    ``position`` counts the steps that ran (0: the introduction; ``len(steps)``: the end).
    """

    stage: Stage
    steps: tuple[Step, ...] = STEPS
    done: list[_Done] = field(default_factory=list)
    picks: dict[str, int] = field(default_factory=dict)
    config: Any = None  # the editor settings of step 1's fix (the comparison repeats them)
    _before: tuple[int, int] = (0, 0)

    @property
    def position(self) -> int:
        return len(self.done)

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.steps)

    def next(self) -> str:
        """Run the next step and show its view; returns its sentence with the numbers.

        Raises:
            ValueError: the lesson is at its end.
        """
        if self.at_end:
            raise ValueError("the lesson is over: press Back to go through a step again")
        step = self.steps[self.position]
        self.rebase()
        result = step.run(self)
        pushed, compared = self._counts()
        self.done.append(_Done(pushed - self._before[0], compared - self._before[1], result))
        self.stage.show(step.view)
        return result

    def rebase(self) -> None:
        """Count what the running step changes from now on (a step calls it after a reset, which Back cannot take back)."""
        self._before = self._counts()

    def back(self) -> None:
        """Take the last step back: undo the edits it pushed (redo an undo it made); show the step before.

        Raises:
            ValueError: at the introduction (no step ran).
        """
        if not self.done:
            raise ValueError("this is the start of the lesson: press Next to run the first step")
        last = self.done.pop()
        c = self.stage.controller
        for _ in range(max(0, last.pushed)):
            c.undo()
        for _ in range(max(0, -last.pushed)):
            c.redo()
        if last.compared > 0:
            ls = self.stage.comparison()
            for _ in range(last.compared):
                ls.undo()
        self.stage.show(self.steps[self.position - 1].view if self.done else "workbench")

    def _counts(self) -> tuple[int, int]:
        """Edits applied on the page's stack, and comparison steps applied (0 while it is not open)."""
        ls = self.stage.lockstep
        return len(self.stage.controller.session.history), len(ls.done) if ls is not None else 0
