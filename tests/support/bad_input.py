"""Shared checks of the bad-input tests: a refused call leaves the model, the files on disk
and the session's history exactly as they were."""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterator

import pytest
import torch

from tests.support.weights import same_weights, weights


def tree(root: Path) -> dict[str, object]:
    """Every entry under ``root``: file bytes, a symlink's target, or 'dir'."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


@contextlib.contextmanager
def refused(match: str, *, root: Path, session=None, model: torch.nn.Module | None = None,
            exc: type[BaseException] | tuple[type[BaseException], ...] = ValueError) -> Iterator[None]:
    """Expect ``exc`` whose message matches ``match`` (a regex); then check that nothing under
    ``root`` changed, nor ``session``'s weights, history, redo stack and attempts, nor ``model``."""
    disk = tree(root)
    model = session.model if session is not None and model is None else model
    w = weights(model) if model is not None else None
    hist = (list(session.history), list(session.redo_stack), list(session.attempts)) if session is not None else None
    with pytest.raises(exc) as info:
        yield
    assert re.search(match, str(info.value)), f"message {str(info.value)!r} does not match {match!r}"
    assert tree(root) == disk, "files on disk changed"
    if w is not None:
        assert same_weights(weights(model), w), "the model's weights changed"  # type: ignore[arg-type]
    if hist is not None:
        now = (list(session.history), list(session.redo_stack), list(session.attempts))
        assert all(len(a) == len(b) and all(x is y for x, y in zip(a, b)) for a, b in zip(now, hist)), \
            "the session's history changed"
