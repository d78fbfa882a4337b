"""The session report: one self-contained HTML file to hand out.

It holds the base model (name, data set, accuracy), every applied edit with its image, its
target, the outcome (steps, time), its drawdown and the examples it changed (thumbnails,
✓ now right / ✗ now wrong), and two plots (accuracy after each edit, per-class change of
the whole session). Images and plots are embedded as base64 PNG, so the file opens
anywhere, offline. Built from the session's records only: pure, no widgets. Every name in
it (the title, class names, model facts) is escaped by :func:`~workbench.widgets.markup.markup`;
class names on the plots are drawn as plain text (no mathtext).
"""
from __future__ import annotations

import base64
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .glossary import GLOSSARY
from .markup import Markup, join, markup
from .plots.images import figure_png, image_png
from .plots.report_plots import per_class_plot, timeline_plot

__all__ = ["build_report", "session_report"]


def _img(png: bytes, px: int, alt: str) -> Markup:
    return markup("<img alt='{}' width='{}' height='{}' style='image-rendering:pixelated' "
                  "src='data:image/png;base64,{}'>", alt, px, px, base64.b64encode(png).decode())


def build_report(*, title: str, model: Mapping[str, Any], classes: Sequence[str], records: Sequence[Any],
                 base_error: float, raw_image: Callable[[Any], Any], split_images: Any, labels: Any,
                 flipped_shown: int = 12) -> Markup:
    """The report as an HTML string.

    Args:
        title: the heading (e.g. the session name).
        model: facts about the base model: ``name``, ``dataset``, ``arch``, ``examples``.
        records: the applied ``EditRecord`` objects, oldest first (with their reports).
        raw_image: record -> ``(C, H, W) uint8`` edited image (a test image or an upload), or
            None when the image is not known (an upload whose edit came from a saved history).
        split_images, labels: ``(N, C, H, W) uint8`` images and ``(N,)`` labels of the split.
    """
    name = lambda c: classes[int(c)]  # noqa: E731
    acc = [1 - base_error] + [1 - r.report.error_after for r in records if r.report is not None]
    facts = join(markup("<tr><th>{}</th><td>{}</td></tr>", str(k), str(v)) for k, v in model.items())
    parts = [markup("<h1>{}</h1>", title),
             markup("<p>Made {} with the Editable Workbench.</p>", time.strftime("%Y-%m-%d %H:%M")),
             markup("<h2>Base model</h2><table>{}<tr><th>test accuracy</th><td>{:.2%}</td></tr></table>", facts,
                    1 - base_error),
             markup("<h2>Edits ({})</h2>", len(records))]
    if not records:
        parts.append(markup("<p>No edit was applied.</p>"))
    for n, rec in enumerate(records, 1):
        step, total = rec.step_report, rec.report
        res = rec.result
        target = rec.target if isinstance(rec.target, int) else rec.target[0]
        where = f"test image #{rec.index}" if isinstance(rec.index, int) else "an uploaded image"
        true = f", true label {name(labels[rec.index])}" if isinstance(rec.index, int) else ""
        row = [markup("<section class='edit'><h3>Edit {}: {}{} → {}</h3>", n, where, true, name(target)),
               markup("<div style='display:flex;gap:16px;align-items:flex-start'>"),
               _img(image_png(raw, scale=4), 112, where) if (raw := raw_image(rec)) is not None else
               markup("<div class='missing-image' style='width:112px'><i>your image: not kept (the edit was loaded "
                      "from a saved history, which holds the weights, not the image)</i></div>"),
               markup("<div><p>Outcome: {} in {} step(s), {:.0f} ms ({}, step size {:g}).</p>",
                      "fixed ✓" if res.success else "not fixed ✗", res.steps, res.seconds * 1000, res.config.method,
                      res.config.lr)]
        if step is not None and total is not None:
            row.append(markup("<p class='drawdown'>Test accuracy {:.2%} → {:.2%}: drawdown {:+.2f} pp for this "
                              "edit; all edits so far {:+.2f} pp.</p>", 1 - step.error_before, 1 - step.error_after,
                              step.drawdown * 100, total.drawdown * 100))
            flipped = [int(i) for i in step.flipped.tolist() if int(i) != rec.index]
            fixed = [i for i in flipped if int(step.preds_after[i]) == int(labels[i])]
            row.append(markup("<p>{} other test image(s) changed: {} now right ✓, {} now wrong ✗.</p>"
                              "<div class='flipped'>", len(flipped), len(fixed), len(flipped) - len(fixed)))
            for i in flipped[:flipped_shown]:
                ok = int(step.preds_after[i]) == int(labels[i])
                row.append(markup("<figure style='display:inline-block;margin:2px;text-align:center'>{}"
                                  "<figcaption>#{} {} {}</figcaption></figure>",
                                  _img(image_png(split_images[i], scale=2), 56, f"#{i}"), i, "✓" if ok else "✗",
                                  name(step.preds_after[i])))
            row.append(markup("</div>"))
        row.append(markup("</div></div></section>"))
        parts.append(join(row))
    if records:
        last = records[-1].report
        change = (-np.nan_to_num(last.per_class_change.numpy()) * 100) if last is not None else np.zeros(len(classes))
        plots = (("timeline", timeline_plot(acc)), ("per-class change", per_class_plot(change, classes)))
        parts.append(markup("<h2>Plots</h2>{}", join(
            markup("<img alt='{}' src='data:image/png;base64,{}'>", alt, base64.b64encode(figure_png(fig)).decode())
            for alt, fig in plots)))
    parts.append(markup("<h2>Terms</h2><ul>{}</ul>",
                        join(markup("<li><b>{}</b>: {}</li>", k, v) for k, v in GLOSSARY.items())))
    return markup("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{}</title>"
                  "<style>body{{font-family:sans-serif;max-width:960px;margin:auto;padding:12px}}th{{text-align:left;"
                  "padding-right:12px}}section.edit{{border-top:1px solid #ccc;padding:6px 0}}</style></head>"
                  "<body>{}</body></html>", title, join(parts))


def session_report(session: Any, name: str, images: Any, uploads: Mapping[str, Any]) -> Markup:
    """:func:`build_report` of an ``EditSession`` (its reports completed first).

    Args:
        name: the model's name (the title). images: ``(N, C, H, W) uint8`` display images of
            the split. uploads: record uid -> the uploaded image of that edit (missing: not kept).
    """
    card = session.card or {}
    model = {"name": name, "data set": card.get("dataset", "fashion-mnist"), "architecture": card.get("arch", "?"),
             "test images": len(session.labels)}
    session.complete_reports()

    def raw(rec: Any) -> Any:
        return images[rec.index] if isinstance(rec.index, int) else uploads.get(rec.uid)

    return build_report(title=f"Editable Workbench report: {name}", model=model, classes=session.classes,
                        records=list(session.history), base_error=session.base_error, raw_image=raw,
                        split_images=images, labels=session.labels)
