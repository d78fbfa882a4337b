"""Acting on an open workbench through its Controller (``wb.controller``), as the clicks do."""
from __future__ import annotations


def select_error(wb, k: int = 0) -> int:
    """Select the k-th error of the browser's page (as its "select" button does); returns its index."""
    i = int(wb.browser.page_items[k].index)
    wb.controller.select(i)
    return i


def edit_error(wb, k: int = 0) -> int:
    """Select the k-th error of the browser's page, target its true label and Edit; returns its index."""
    i = select_error(wb, k)
    wb.controller.set_target(int(wb.session.labels[i]))
    wb.controller.edit()
    return i
