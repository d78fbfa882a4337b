"""Saved notebooks reopen cleanly: widget outputs become a "run this cell to start" note.

A widget's output in a saved notebook points at a widget model that lives only in the
running kernel; reopened later, JupyterLab shows "Error displaying widget: model not found".
:func:`pre_save_hook` (a Jupyter server ``FileContentsManager.pre_save_hook``, set by
``scripts/lab.sh``) replaces each such output in the *file* by a short Markdown note; the
open notebook in the browser keeps its live widgets. No UI library is imported here.
"""
from __future__ import annotations

from typing import Any

__all__ = ["NOTE", "WIDGET_VIEW", "pre_save_hook", "strip_widget_outputs"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOTE = "*The workbench is not running: run this cell to start it.*"


def strip_widget_outputs(nb: dict[str, Any]) -> int:
    """Replace widget outputs of a notebook (nbformat 4 dict, in place); returns how many."""
    n = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        outs, kept, noted = cell.get("outputs", []), [], False
        for out in outs:
            if WIDGET_VIEW in (out.get("data") or {}):
                n += 1
                if not noted:
                    kept.append({"output_type": "display_data", "metadata": {},
                                 "data": {"text/markdown": NOTE, "text/plain": NOTE}})
                    noted = True
            else:
                kept.append(out)
        cell["outputs"] = kept
    nb.get("metadata", {}).pop("widgets", None)
    return n


def pre_save_hook(model: dict[str, Any], **_kw: Any) -> None:
    """Jupyter server hook: strip widget outputs from notebooks being saved."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_widget_outputs(model["content"])
