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


def apply_fixes(wb, n: int, tries: int = 10) -> list[int]:
    """Edit errors of the browser's first page toward their true labels until ``n`` edits are applied.

    Whether one given edit lands within k steps can change with the CPU's kernels (a fix one step from the
    limit), so a test that needs n applied edits tries the next error rather than assuming the first n work.
    Returns the edited indices; fewer than ``n`` only if ``tries`` errors all failed.
    """
    candidates = [int(item.index) for item in wb.browser.page_items[:tries]]
    done: list[int] = []
    for i in candidates:
        if len(done) == n:
            break
        before = len(wb.session.history)
        wb.controller.select(i)
        wb.controller.set_target(int(wb.session.labels[i]))
        wb.controller.edit()
        if len(wb.session.history) > before and wb.session.history[-1].index == i:
            done.append(i)
    return done
