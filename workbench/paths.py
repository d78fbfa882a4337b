"""The one place that finds the shipped model folders and the source checkout.

Shipped models (``fashion-baseline``, ``fashion-editable``) are looked up, in order, in:

1. ``$WORKBENCH_MODELS`` (a folder holding model folders), when set;
2. ``assets/models`` of the source checkout this package runs from (``pip install -e .``,
   or ``PYTHONPATH=.``);
3. the copy shipped inside the installed package (``workbench/_models``, package data of
   the wheel built by ``pip install .``).

Nothing else in the package guesses paths relative to its source files.
"""
from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "WORKBENCH_MODELS"
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_MODELS = PACKAGE_DIR / "_models"


def source_root() -> Path | None:
    """The source checkout this package runs from (holding ``pyproject.toml``), or None when
    it runs from an installed wheel."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "workbench").is_dir() else None


def models_dir() -> Path:
    """The folder holding the shipped model folders (see the module docstring for the order).

    Returns the first candidate that exists; when none does, the first candidate (so that
    error messages name the place a model was expected).
    """
    candidates = model_dirs()
    return next((c for c in candidates if c.is_dir()), candidates[0])


def model_dirs() -> list[Path]:
    """Every place :func:`models_dir` looks, in order."""
    out: list[Path] = []
    env = os.environ.get(MODELS_ENV)
    if env:
        out.append(Path(env).expanduser())
    root = source_root()
    if root is not None:
        out.append(root / "assets" / "models")
    out.append(PACKAGED_MODELS)
    return out


def shipped_model(name: str) -> Path:
    """``models_dir() / name``: a shipped model folder (it may not exist)."""
    return models_dir() / name
