"""What the evaluator reports: misclassified examples, edit reports, outcomes and summaries, and
the plain computations behind them (confusion matrix, per-class error, a group's name)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class Misclassified:
    """One misclassified example of the evaluator's split.

    Attributes:
        index: position in the split (``Evaluator.labels[index]`` is ``true``).
        true: the true label; pred: the model's prediction (``!= true``).
        confidence: softmax probability of ``pred``, in (0, 1].
        margin: ``logit(pred) - logit(true)``, >= 0 (small: nearly right).
    """

    index: int
    true: int
    pred: int
    confidence: float
    margin: float


@dataclass(frozen=True, eq=False)
class EditReport:
    """One model state scored on a whole split against a reference (default: the base model).

    Attributes:
        error_before: error rate of the reference predictions, in [0, 1].
        error_after: error rate of the scored weights, in [0, 1].
        drawdown: ``error_after - error_before`` (signed fraction; > 0 means worse).
        preds_after: ``(N,) int64`` predictions of the scored weights.
        flipped: ``(M,) int64`` indices whose prediction differs from the reference.
        per_class_error_before, per_class_error_after: ``(C,) float`` error rate among the
            examples of each true class (NaN for a class absent from the split).
        seconds: wall time of the scoring.
        preds_before: ``(N,) int64`` the reference predictions.
    """

    error_before: float
    error_after: float
    drawdown: float
    preds_after: torch.Tensor
    flipped: torch.Tensor
    per_class_error_before: torch.Tensor
    per_class_error_after: torch.Tensor
    seconds: float
    preds_before: torch.Tensor | None = None

    @classmethod
    def from_preds(cls, labels: torch.Tensor, preds: torch.Tensor, reference: torch.Tensor, num_classes: int, *,
                   started: float) -> "EditReport":
        """The report of ``(N,)`` predictions against ``(N,)`` reference predictions and labels;
        ``seconds`` counts from ``started`` (a ``time.perf_counter()`` value)."""
        err_before = float((reference != labels).float().mean())
        err_after = float((preds != labels).float().mean())
        return cls(err_before, err_after, err_after - err_before, preds, torch.nonzero(preds != reference).flatten(),
                   per_class_error_rate(labels, reference, num_classes), per_class_error_rate(labels, preds, num_classes),
                   time.perf_counter() - started, reference.clone())

    @property
    def per_class_change(self) -> torch.Tensor:
        """``(C,) float``: ``per_class_error_after - per_class_error_before``."""
        return self.per_class_error_after - self.per_class_error_before

    @property
    def num_flipped(self) -> int:
        return int(self.flipped.numel())

    def summary(self) -> str:
        """One line, e.g. ``error 10.3% -> 10.5% (drawdown +0.20 pp), 31 predictions flipped``."""
        return (f"error {100 * self.error_before:.2f}% -> {100 * self.error_after:.2f}% "
                f"(drawdown {100 * self.drawdown:+.2f} pp), {self.num_flipped} prediction(s) flipped")


@dataclass(frozen=True)
class EditOutcome:
    """One of N independent edits, each starting from the base model.

    Attributes:
        index: the edited image's index in its split (None for custom images).
        target: the label the edit asked for.
        success: the model predicted ``target`` within ``k`` steps.
        steps: steps counted for the metric: the steps taken if successful, else ``k``
            (as in the official code, a failed edit counts as ``k`` steps).
        drawdown: ``error_after - base_error`` on the evaluator's split (signed fraction).
        flipped: number of predictions that changed against the base model.
        finite: False if the edit was abandoned because of non-finite values.
        edit_seconds: wall time of the edit itself (without scoring).
        wrecked: the edit guard flagged the edit (``editing.guard``: non-finite weights or a
            change out of all proportion); it then counts as a failure (``success`` False,
            ``steps`` = k) even if the constraint held.
    """

    index: int | None
    target: int
    success: bool
    steps: int
    drawdown: float
    flipped: int
    finite: bool
    edit_seconds: float
    wrecked: bool = False

    @property
    def noop(self) -> bool:
        """A no-op edit: the model already predicted ``target``, so it took 0 steps and changed nothing."""
        return self.success and self.steps == 0


@dataclass(frozen=True)
class EvalSummary:
    """A row of the paper's Table 1: N independent edits of the same model.

    Attributes:
        test_error: error of the unedited model on the evaluator's split.
        drawdown_abs: mean over edits of ``|error_after - test_error|`` (the paper's
            "mean absolute difference of classification error").
        drawdown_signed: mean over edits of ``error_after - test_error`` (the official code's
            drawdown; <= ``drawdown_abs``).
        success_rate: share of edits whose constraint was met within ``max_steps``.
        mean_steps: mean steps, failed edits counted as ``max_steps``.
        edits: N. editor, layers, protocol: how the edits were made and chosen.
        seconds: wall time of the whole evaluation.
        per_edit: one :class:`EditOutcome` per edit, in order.
        lr, beta, max_steps: the resolved editor hyperparameters.
        split, examples: the split scored and its size.
        noop_edits: edits whose target the base model already predicted (0 steps, 0 drawdown;
            the figures above count them, as the paper's evaluation does).
        success_rate_excl_noop, mean_steps_excl_noop, drawdown_abs_excl_noop,
            drawdown_signed_excl_noop: the same metrics over the ``edits - noop_edits`` edits that
            had to change something (NaN if there are none).
        editor_source: where lr/beta came from, ``"learned"`` | ``"tuned default"`` | ``"given"`` | ``"calibrated"``
            (``editing.choose_editor``); None when not recorded.
        wrecked_edits: edits flagged by the edit guard (counted as failures above).
    """

    test_error: float
    drawdown_abs: float
    drawdown_signed: float
    success_rate: float
    mean_steps: float
    edits: int
    editor: str
    layers: str
    protocol: str
    seconds: float
    per_edit: tuple[EditOutcome, ...] = ()
    lr: float | None = None
    beta: float | None = None
    max_steps: int = 10
    split: str = "test"
    examples: int = 0
    noop_edits: int = 0
    success_rate_excl_noop: float = math.nan
    mean_steps_excl_noop: float = math.nan
    drawdown_abs_excl_noop: float = math.nan
    drawdown_signed_excl_noop: float = math.nan
    editor_source: str | None = None
    wrecked_edits: int = 0

    @classmethod
    def from_outcomes(cls, outcomes: Sequence[EditOutcome], *, test_error: float, editor: str, layers: str,
                      protocol: str, seconds: float, lr: float | None, beta: float | None, max_steps: int,
                      split: str, examples: int, editor_source: str | None = None) -> "EvalSummary":
        """Aggregate per-edit outcomes into the paper's metrics (NaN for zero edits), and the
        same metrics over the edits that were not no-ops."""
        changing = [o for o in outcomes if not o.noop]
        m = _metrics(outcomes)
        x = _metrics(changing)
        return cls(test_error=test_error, drawdown_abs=m["drawdown_abs"], drawdown_signed=m["drawdown_signed"],
                   success_rate=m["success_rate"], mean_steps=m["mean_steps"],
                   edits=len(outcomes), editor=editor, layers=layers, protocol=protocol, seconds=seconds,
                   per_edit=tuple(outcomes), lr=lr, beta=beta, max_steps=max_steps, split=split,
                   examples=examples, noop_edits=len(outcomes) - len(changing),
                   success_rate_excl_noop=x["success_rate"], mean_steps_excl_noop=x["mean_steps"],
                   drawdown_abs_excl_noop=x["drawdown_abs"], drawdown_signed_excl_noop=x["drawdown_signed"],
                   editor_source=editor_source, wrecked_edits=sum(o.wrecked for o in outcomes))

    def to_json(self, per_edit: bool = True) -> dict[str, Any]:
        """A JSON-ready dict of every field (``per_edit`` as a list of dicts, if asked)."""
        out = {k: v for k, v in asdict(self).items() if k != "per_edit"}
        if per_edit:
            out["per_edit"] = [asdict(o) for o in self.per_edit]
        return out

    def table(self) -> str:
        """The summary as a paper-style Markdown table (percentages)."""
        return format_table([self])

    def noop_line(self) -> str:
        """One line on the no-op edits and the metrics without them."""
        n, k = self.edits, self.noop_edits
        head = (f"no-op edits: {k} of {n} (the model already predicted the target: 0 steps, 0 drawdown, "
                "counted in the figures above as in the paper)")
        if n - k <= 0:
            return head
        return (f"{head}; over the {n - k} edits that had to change something: success "
                f"{_pct(self.success_rate_excl_noop)}, mean steps {self.mean_steps_excl_noop:.2f}, drawdown "
                f"{_pct(self.drawdown_abs_excl_noop)} abs, {_pct(self.drawdown_signed_excl_noop)} signed")


def _metrics(outcomes: Sequence[EditOutcome]) -> dict[str, float]:
    """The paper's four per-edit means over ``outcomes`` (NaN for none)."""
    n = len(outcomes)
    if not n:
        return dict.fromkeys(("drawdown_abs", "drawdown_signed", "success_rate", "mean_steps"), math.nan)
    return {"drawdown_abs": sum(abs(o.drawdown) for o in outcomes) / n,
            "drawdown_signed": sum(o.drawdown for o in outcomes) / n,
            "success_rate": sum(float(o.success) for o in outcomes) / n,
            "mean_steps": sum(float(o.steps) for o in outcomes) / n}


def _pct(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{100 * v:.2f}%"


def format_table(rows: Sequence[EvalSummary]) -> str:
    """Markdown table with one row per :class:`EvalSummary` (the paper's Table 1 columns)."""
    head = ("| editor | lr | beta | layers | protocol | edits | test error | drawdown (abs) "
            "| drawdown (signed) | success@k | mean steps | seconds |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        beta = "-" if r.beta is None else f"{r.beta:g}"
        lr = "-" if r.lr is None else f"{r.lr:.3g}"
        lines.append(f"| {r.editor} | {lr} | {beta} | {r.layers} | {r.protocol} | {r.edits} "
                     f"| {_pct(r.test_error)} | {_pct(r.drawdown_abs)} | {_pct(r.drawdown_signed)} "
                     f"| {_pct(r.success_rate)} (k={r.max_steps}) | {r.mean_steps:.2f} | {r.seconds:.1f} |")
    return "\n".join(lines)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C) int64`` counts from ``(N,)`` labels and predictions; row = true label, column = prediction."""
    c = num_classes
    return torch.bincount(labels * c + preds, minlength=c * c).view(c, c)


def per_class_error_rate(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C,) float32`` error rate among the examples of each true class (NaN for a class absent)."""
    total = torch.bincount(labels, minlength=num_classes).float()
    wrong = torch.bincount(labels[preds != labels], minlength=num_classes).float()
    return wrong / total


def group_name(group: str | tuple[str, ...] | list[str]) -> str:
    """An edit group as one string, as summaries record it: ``("chain3", "head")`` -> ``"chain3+head"``."""
    return group if isinstance(group, str) else "+".join(group)


def errors_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> list[Misclassified]:
    """Misclassified examples from ``(N, C)`` logits and ``(N,)`` labels.

    Returns:
        ``list[Misclassified]`` in index order; confidence = softmax of the prediction,
        margin = ``logit(pred) - logit(true)``.
    """
    logits, labels = logits.float().cpu(), labels.long().cpu()
    preds = logits.argmax(1)
    wrong = torch.nonzero(preds != labels).flatten()
    lg = logits[wrong]
    p, t = preds[wrong].view(-1, 1), labels[wrong].view(-1, 1)
    conf = lg.softmax(1).gather(1, p).flatten()
    margin = (lg.gather(1, p) - lg.gather(1, t)).flatten()
    return [Misclassified(int(i), int(a), int(b), float(c), float(m)) for i, a, b, c, m in
            zip(wrong.tolist(), t.flatten().tolist(), p.flatten().tolist(), conf.tolist(), margin.tolist())]
