"""The one place where HTML is made: the product's markup, with every value escaped.

Class names, file names, model and history names, messages and error texts come from
users' data (an ImageFolder's folder names, an upload's file name, a name field). They
reach the page only as values of a template:

    >>> markup("Fixed ✓ — now predicts <b>{}</b>.", "<img src=x onerror=alert(1)>")
    Markup('Fixed ✓ — now predicts <b>&lt;img src=x onerror=alert(1)&gt;</b>.')

* :func:`markup` is the product's template (a literal) with its values escaped as they go
  in; the result is a :class:`Markup` (markupsafe's: a ``str`` that is known to be HTML).
  Joining, ``+`` and ``%`` with a ``Markup`` escape the plain side as well.
* :class:`HTML` is the only HTML widget of the workbench: a plain ``str`` set as its value is
  data and is escaped whole, so markup built by string concatenation (an f-string) shows
  its tags as text; it never runs.
* :func:`plot_label` escapes text for plotly, which renders ``<b>``, ``<a>``, ``<span
  style>`` and ``<br>`` in labels and hover text and decodes entities.
"""
from __future__ import annotations

from typing import Any, Iterable

import ipywidgets as W
import traitlets
from markupsafe import Markup, escape

__all__ = ["HTML", "Markup", "escape", "join", "markup", "plot_label"]


def markup(template: str, /, *args: Any, **kwargs: Any) -> Markup:
    """``template`` (the product's HTML, a literal) with ``str.format`` fields filled by escaped values.

    A value that is already :class:`Markup` (e.g. :func:`~workbench.widgets.glossary.term`)
    goes in as it is. Format specs work as in ``str.format`` (``{:.1%}``, ``{:,}``).
    """
    return Markup(template).format(*args, **kwargs)


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    """The parts joined by ``sep`` (product markup); parts that are not Markup are escaped."""
    return Markup(sep).join(parts)


def plot_label(text: Any) -> str:
    """``text`` for a plotly label, tick or hover value: escaped, shown literally (plotly decodes the entities)."""
    return str(escape(str(text)))


class HTML(W.HTML):
    """``ipywidgets.HTML`` whose value is escaped unless it is :class:`Markup` (see the module doc)."""

    @traitlets.validate("value")
    def _escape_data(self, proposal: Any) -> Markup:
        return escape(proposal["value"])
