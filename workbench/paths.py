"""The one place that finds the shipped model folders and the source checkout.

Shipped models (``fashion-baseline``, ``fashion-editable``) are looked up, in order, in:

1. ``$WORKBENCH_MODELS`` (a folder holding model folders), when set;
2. ``assets/models`` of the source checkout this package runs from (``pip install -e .``,
   or ``PYTHONPATH=.``);
3. the copy installed with the package by ``pip install .``: ``<prefix>/share/editable-workbench/models``
   (the wheel's data files, ``[tool.setuptools.data-files]`` in ``pyproject.toml``), for the
   environment's prefix and for the user base (``pip install --user``).

Caches the workbench writes (base scores keyed by model and data, spilled activations) go under
:func:`cache_dir`: ``$WORKBENCH_CACHE`` when set, else ``~/.cache/editable-workbench``. A
session opened on a model folder keeps its base scores in that folder when it can write there
(:func:`score_cache_folder`; ``$WORKBENCH_SCORE_CACHE`` overrides both).

Nothing else in the package guesses paths relative to its source files. What a card or a result
file records of a path typed on the command line goes through :func:`portable_arg`.
"""
from __future__ import annotations

import os
import site
import sys
from pathlib import Path

MODELS_ENV = "WORKBENCH_MODELS"
CACHE_ENV = "WORKBENCH_CACHE"
SCORE_CACHE_ENV = "WORKBENCH_SCORE_CACHE"  # a folder for every session's base scores, or "off"
MODEL_SCORES = "score-cache"  # the base scores' folder inside a writable model folder
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
    """``cache_dir() / "spill"``: memory-mapped activations past the memory budget, and on the CPU any
    over ``resident_max`` (deleted on close)."""
    return cache_dir() / "spill"


def score_cache_folder(model_folder: str | Path | None = None) -> Path | None:
    """Where a session keeps its base scores (None: not kept).

    ``$WORKBENCH_SCORE_CACHE`` when set (``off``, ``0`` or ``none``: not kept); else
    ``<model_folder>/score-cache`` when the session came from a model folder it may write in;
    else :func:`scores_dir`. Every file goes inside the folder returned.
    """
    env = os.environ.get(SCORE_CACHE_ENV)
    if env is not None and env.strip():
        return None if env.strip().lower() in ("off", "0", "none", "false") else Path(env).expanduser()
    if model_folder is not None:
        folder = Path(model_folder)
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return folder / MODEL_SCORES
    return scores_dir()


def portable_arg(arg: str) -> str:
    """``arg`` as a card or result file records it: an absolute path inside the working folder,
    also as ``--flag=PATH`` or ``scheme:PATH`` (``imagefolder:/...``, ``hf:/...``), is written
    relative to that folder, so a shared card names no path of the machine; anything else is
    kept as typed. The working folder counts both as the shell names it (``$PWD``, through a
    symbolic link) and resolved.

    Example (run from ``/home/me/project``):
        ``/home/me/project/runs/a`` -> ``runs/a``; ``--json=/home/me/project/r.json`` ->
        ``--json=r.json``; ``imagefolder:/home/me/project/data`` -> ``imagefolder:data``;
        ``/data/runs/a`` (outside) -> ``/data/runs/a``.
    """
    flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    scheme = ""
    if not os.path.isabs(value) and ":" in value:
        head, _, rest = value.partition(":")
        if head.isidentifier() and os.path.isabs(rest):
            scheme, value = head + ":", rest
    if not os.path.isabs(value):
        return arg
    rel = _inside_working_folder(value)
    return arg if rel is None else f"{flag}{eq}{scheme}{rel}"


def _inside_working_folder(path: str) -> str | None:
    """``path`` (absolute) relative to the working folder, POSIX style; None when outside it."""
    try:
        cwd = os.getcwd()
    except OSError:  # the working folder was deleted
        return None
    bases = [cwd]
    pwd = os.environ.get("PWD", "")
    if os.path.isabs(pwd) and pwd != cwd:
        try:
            if os.path.samefile(pwd, cwd):
                bases.insert(0, pwd)
        except OSError:
            pass
    norm = Path(os.path.normpath(path))
    for base in bases:
        try:
            return norm.relative_to(base).as_posix() or "."
        except ValueError:
            continue
    return None
