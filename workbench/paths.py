"""The one place that finds the shipped model folders and the source checkout.

Shipped models (``fashion-baseline``, ``fashion-editable``) are looked up, in order, in:

1. ``$WORKBENCH_MODELS`` (a folder holding model folders), when set;
2. ``assets/models`` of the source checkout this package runs from (``pip install -e .``,
   or ``PYTHONPATH=.``);
3. the copy installed with the package by ``pip install .``: ``<prefix>/share/editable-workbench/models``
   (the wheel's data files, ``[tool.setuptools.data-files]`` in ``pyproject.toml``), for the
   environment's prefix and for the user base (``pip install --user``).

Caches the workbench writes (base scores keyed by model and data, spilled activations) go under
:func:`cache_dir`: ``$WORKBENCH_CACHE`` when set, else ``~/.cache/editable-workbench``.

Nothing else in the package guesses paths relative to its source files.
"""
from __future__ import annotations

import os
import site
import sys
from pathlib import Path

MODELS_ENV = "WORKBENCH_MODELS"
CACHE_ENV = "WORKBENCH_CACHE"
PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_MODELS = Path("share") / "editable-workbench" / "models"  # under an install prefix


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
    for prefix in (sys.prefix, site.getuserbase()):
        cand = Path(prefix) / INSTALLED_MODELS
        if cand not in out:
            out.append(cand)
    return out


def shipped_model(name: str) -> Path:
    """``models_dir() / name``: a shipped model folder (it may not exist)."""
    return models_dir() / name


def cache_dir() -> Path:
    """The folder the workbench's caches go under: ``$WORKBENCH_CACHE``, else
    ``~/.cache/editable-workbench`` (it may not exist yet)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "editable-workbench"


def scores_dir() -> Path:
    """``cache_dir() / "scores"``: base logits and predictions keyed by model and data."""
    return cache_dir() / "scores"


def spill_dir() -> Path:
    """``cache_dir() / "spill"``: memory-mapped activations past the memory budget (deleted on close)."""
    return cache_dir() / "spill"
