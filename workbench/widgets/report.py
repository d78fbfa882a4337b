"""The session report: one self-contained HTML file to hand out.

It holds the base model (name, data set, accuracy), every applied edit with its image, its
target, the outcome (steps, time), its drawdown and the examples it changed (thumbnails,
✓ now right / ✗ now wrong), and two plots (accuracy after each edit, per-class change of
the whole session). Images and plots are embedded as base64 PNG, so the file opens
anywhere, offline. Built from the session's records only: pure, no widgets.
"""
from __future__ import annotations

import base64
import html
import io
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .glossary import GLOSSARY
from .images import image_png

__all__ = ["build_report"]


def _img(png: bytes, px: int, alt: str) -> str:
    return (f"<img alt='{html.escape(alt, quote=True)}' width='{px}' height='{px}' style='image-rendering:pixelated'"
            f" src='data:image/png;base64,{base64.b64encode(png).decode()}'>")


def _plot_png(draw: Callable[[Any], None], w: float = 6.0, h: float = 2.6) -> bytes:
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    draw(fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def build_report(*, title: str, model: Mapping[str, Any], classes: Sequence[str], records: Sequence[Any],
                 base_error: float, raw_image: Callable[[Any], Any], split_images: Any, labels: Any,
                 flipped_shown: int = 12) -> str:
    """The report as an HTML string.

    Args:
        title: the heading (e.g. the session name).
        model: facts about the base model: ``name``, ``dataset``, ``arch``, ``examples``.
        records: the applied ``EditRecord`` objects, oldest first (with their reports).
        raw_image: record -> ``(C, H, W) uint8`` edited image (a test image or an upload), or
            None when the image is not known (an upload whose edit came from a saved history).
        split_images, labels: ``(N, C, H, W) uint8`` images and ``(N,)`` labels of the split.
    """
    name = lambda c: html.escape(classes[int(c)])  # noqa: E731
    acc = [1 - base_error] + [1 - r.report.error_after for r in records if r.report is not None]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Made {time.strftime('%Y-%m-%d %H:%M')} with the Editable Workbench.</p>",
             "<h2>Base model</h2><table>" + "".join(
                 f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in model.items())
             + f"<tr><th>test accuracy</th><td>{1 - base_error:.2%}</td></tr></table>",
             f"<h2>Edits ({len(records)})</h2>"]
    if not records:
        parts.append("<p>No edit was applied.</p>")
    for n, rec in enumerate(records, 1):
        step, total = rec.step_report, rec.report
        res = rec.result
        target = rec.target if isinstance(rec.target, int) else rec.target[0]
        where = f"test image #{rec.index}" if isinstance(rec.index, int) else "an uploaded image"
        true = f", true label {name(labels[rec.index])}" if isinstance(rec.index, int) else ""
        row = [f"<section class='edit'><h3>Edit {n}: {where}{true} → {name(target)}</h3>",
               "<div style='display:flex;gap:16px;align-items:flex-start'>",
               _img(image_png(raw, scale=4), 112, where) if (raw := raw_image(rec)) is not None else
               "<div class='missing-image' style='width:112px'><i>your image: not kept (the edit was loaded from a "
               "saved history, which holds the weights, not the image)</i></div>",
               "<div><p>Outcome: " + ("fixed ✓" if res.success else "not fixed ✗")
               + f" in {res.steps} step(s), {res.seconds * 1000:.0f} ms ({html.escape(res.config.method)}, "
               f"step size {res.config.lr:g}).</p>"]
        if step is not None and total is not None:
            row.append(f"<p class='drawdown'>Test accuracy {1 - step.error_before:.2%} → {1 - step.error_after:.2%}: "
                       f"drawdown {step.drawdown * 100:+.2f} pp for this edit; all edits so far "
                       f"{total.drawdown * 100:+.2f} pp.</p>")
            flipped = [int(i) for i in step.flipped.tolist() if int(i) != rec.index]
            fixed = [i for i in flipped if int(step.preds_after[i]) == int(labels[i])]
            row.append(f"<p>{len(flipped)} other test image(s) changed: {len(fixed)} now right ✓, "
                       f"{len(flipped) - len(fixed)} now wrong ✗.</p><div class='flipped'>")
            for i in flipped[:flipped_shown]:
                ok = int(step.preds_after[i]) == int(labels[i])
                row.append(f"<figure style='display:inline-block;margin:2px;text-align:center'>"
                           f"{_img(image_png(split_images[i], scale=2), 56, f'#{i}')}<figcaption>#{i} "
                           f"{'✓' if ok else '✗'} {name(step.preds_after[i])}</figcaption></figure>")
            row.append("</div>")
        row.append("</div></div></section>")
        parts.append("".join(row))
    if records:
        def timeline(ax: Any) -> None:
            ax.plot(range(len(acc)), [a * 100 for a in acc], marker="o", color="#1565c0")
            ax.set_xlabel("edit #")
            ax.set_ylabel("test accuracy (%)")
            ax.set_xticks(range(len(acc)))
            ax.set_title("Test accuracy after each edit")

        last = records[-1].report
        change = (-np.nan_to_num(last.per_class_change.numpy()) * 100) if last is not None else np.zeros(len(classes))

        def per_class(ax: Any) -> None:
            ax.bar(range(len(classes)), change, color=["#2e7d32" if v >= 0 else "#c62828" for v in change])
            ax.set_xticks(range(len(classes)), list(classes), rotation=30, ha="right", fontsize=8)
            ax.axhline(0, color="#888", lw=0.8)
            ax.set_ylabel("pp")
            ax.set_title("Per-class accuracy change, all edits")

        parts.append("<h2>Plots</h2>" + "".join(
            f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(_plot_png(f)).decode()}'>"
            for alt, f in (("timeline", timeline), ("per-class change", per_class))))
    parts.append("<h2>Terms</h2><ul>" + "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in GLOSSARY.items()) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:960px;margin:auto;padding:12px}th{text-align:left;"
             "padding-right:12px}section.edit{border-top:1px solid #ccc;padding:6px 0}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
