"""The workbench's screen: where each panel goes, and the words of the header line.

Top: a header line (model, data, accuracy or the base scoring's progress) with the tools
(glossary, presentation mode). Then two columns: on the left the picked image, its target
buttons and Edit / Undo / Redo / Reset; on the right the outcome card, the strength slider and
the class probabilities. Below, tabs: the mistakes (error browser, your own image), the details
of the last edit (per-class change, changed images, attribution, probe), the history and
"Where is it stored?". :func:`build_screen` lays out the panels a
:class:`~workbench.widgets.workbench.Workbench` made; it creates no panel and handles no click.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets as W

from .common import STYLE_SHEET, MessageArea, css, log
from .glossary import glossary_html
from .markup import HTML, Markup, markup
from .tabs import ModeTabs

if TYPE_CHECKING:
    from ..session import EditSession
    from .panels.attribution_view import AttributionView
    from .panels.edit_panel import EditPanel
    from .panels.error_browser import ErrorBrowser
    from .panels.history_panel import HistoryPanel
    from .panels.localization_panel import LocalizationPanel
    from .panels.metrics_panel import MetricsPanel
    from .panels.outcome_card import OutcomeCard
    from .panels.probe_panel import ProbePanel
    from .panels.strength_panel import StrengthPanel
    from .panels.target_picker import TargetPicker
    from .panels.upload_panel import UploadPanel

__all__ = ["LEGEND", "Screen", "ScreenPanels", "build_screen", "display_note", "header_html"]

LEGEND = ("<div style='color:#444'><b>pp</b> percentage points · <b>drawdown</b> accuracy lost by "
          "the edit · <b>other images changed</b> test images whose prediction moved · <b>✓</b> now right, "
          "<b>✗</b> now wrong</div>")


def display_note(session: Any) -> str:
    """How the images are shown, when they are not plain pixels (``DataBundle.display``)."""
    mode = getattr(session.bundle, "display", "pixels") if session.bundle is not None else "pixels"
    return {"denormalized": " · images shown denormalized",
            "min-max": " · images shown min-max scaled (normalisation unknown: pass mean/std)"}.get(mode, "")


def header_html(session: EditSession, name: str) -> Markup:
    """The header line: the model ``name``, the data, and the base accuracy (or, while the base model
    is scored in the background, how far that is)."""
    s = session
    data = (s.bundle.name if s.bundle is not None else "") or "its data"
    scored, total = s.scoring_progress()
    if scored < total:
        return markup("<b style='font-size:1.15em'>Editable Workbench</b> · model <b>{}</b> · data <b>{}</b>, {:,} "
                      "{} images · scoring the base model ({:,} / {:,}) · {}{}", name, data, total, s.split,
                      scored, total, str(s.device), display_note(s))
    return markup("<b style='font-size:1.15em'>Editable Workbench</b> · model <b>{}</b> · data <b>{}</b>, {:,} "
                  "{} images · base accuracy {:.1%} · {}{}", name, data, len(s.labels), s.split,
                  1 - s.base_error, str(s.device), display_note(s))


class ScreenPanels(Protocol):
    """The panels and tools a screen lays out (a :class:`~workbench.widgets.workbench.Workbench` has them)."""

    session: EditSession
    name: str
    picker: TargetPicker
    panel: EditPanel
    card: OutcomeCard
    strength: StrengthPanel
    browser: ErrorBrowser
    upload: UploadPanel
    browser_messages: MessageArea
    metrics: MetricsPanel
    attribution: AttributionView
    probe: ProbePanel
    history: HistoryPanel
    localization: LocalizationPanel
    localization_messages: MessageArea
    present: W.ToggleButton


@dataclass
class Screen:
    """The laid-out screen: ``root`` (CSS ``wb-root wb-workbench``) and the boxes a view changes later."""

    root: W.VBox
    header: HTML
    status: HTML
    glossary: W.Accordion
    legend: HTML
    details: W.VBox
    mode_tabs: ModeTabs
    tools: W.HBox
    header_row: W.HBox


def build_screen(p: ScreenPanels, note: str) -> Screen:
    """The screen of ``p``'s panels (see the module's doc); ``note`` goes into the status line (with
    the session's scoring note, e.g. an untraceable model's full forwards), and to the log."""
    header = css(HTML(header_html(p.session, p.name)), "wb-header")
    note = "; ".join(n for n in (note, p.session.scoring_note) if n)
    status = css(HTML(note), "wb-status")
    if note:
        log.warning(note)
    glossary = css(W.Accordion(children=[HTML(glossary_html())], titles=("What the words mean",),
                               selected_index=None, layout=W.Layout(width="340px")), "wb-glossary-box")
    left = css(W.VBox([p.picker.widget, p.panel.widget], layout=W.Layout(
        width="50%", min_width="380px", flex="1 1 380px", padding="0 8px 0 0")), "wb-left")
    legend = css(HTML(markup(LEGEND), layout=W.Layout(display="none")), "wb-legend")
    right = css(W.VBox([p.card.widget, p.strength.widget, legend, p.picker.chart],
                       layout=W.Layout(width="50%", min_width="380px", flex="1 1 380px")), "wb-right")
    details = W.VBox([p.metrics.widget, p.attribution.widget, p.probe.widget])
    mode_tabs = ModeTabs([  # (title, title in presentation mode or None: not shown there, widget)
        ("Mistakes", "Mistakes", W.VBox([p.browser.widget, p.upload.widget, p.browser_messages.widget])),
        ("Details of the last edit", "What the edit changed", details),
        ("History & export", None, p.history.widget),
        ("Where is it stored?", "Where is it stored?",
         W.VBox([p.localization.widget, p.localization_messages.widget]))])
    for w in (p.localization.quick, p.upload.widget, glossary):
        css(w, "wb-advanced")  # hidden in presentation mode (STYLE_SHEET)
    tools = css(W.HBox([glossary, p.present], layout=W.Layout(
        flex_flow="row wrap", align_items="flex-start", justify_content="flex-end")), "wb-tools")
    header_row = css(W.HBox([header, tools], layout=W.Layout(
        justify_content="space-between", align_items="flex-start", flex_flow="row wrap")), "wb-header-row")
    root = css(W.VBox([
        HTML(STYLE_SHEET), header_row, status,
        css(W.HBox([left, right], layout=W.Layout(flex_flow="row wrap")), "wb-main"), mode_tabs.widget]),
        "wb-root", "wb-workbench")
    return Screen(root, header, status, glossary, legend, details, mode_tabs, tools, header_row)
