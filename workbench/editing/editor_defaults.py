"""The editor's defaults, read from the data file beside this module (``editor_defaults.json``).

The file holds the default editor (method, group, k), the tuned ``{"lr", "beta"}`` of every
method and of every other group that was tuned, each with its provenance (the command, the
model it ran on, the result and the date). ``python -m workbench tune-editor --write-defaults``
produced them and writes them back through :func:`write_defaults`; this module is the only
one that reads or writes the file. Every default keeps >= 95% success within k = 10 steps on
the validation slice while minimising drawdown.

Example:
    >>> from workbench.editing.editor_defaults import DEFAULT_METHOD, default_for
    >>> DEFAULT_METHOD, default_for("gd", "all")["lr"]
    ('rmsprop', 0.000562)
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

DEFAULTS_FILE = Path(__file__).with_name("editor_defaults.json")  # package data (pyproject package-data)
# Upper bound on k accepted by EditorConfig (and the widget): a bound on the input, not a tuned
# value. The paper uses k = 10; 1000 is 100x that and, at one forward + backward of one image per
# step, still finishes in seconds on a CPU (about 2 ms a step for chain3 of the small ResNet, 20 ms
# for the whole model). Without a bound, lr=0 with max_steps=10**9 never returns.
MAX_STEPS_LIMIT = 1000
# Most images one edit takes (a batch edit: one constraint per image). Each step runs the edited
# layers forward and backward on the whole batch at once, so memory grows with it: on "all" of
# the shipped small ResNet 256 images peak at +249 MiB, 1,024 at +894 MiB, and 10,000 took
# 6.4 GiB (`python benchmarks/edit_batch_memory.py --sizes 256,1024`). The paper edits one image.
MAX_EDIT_BATCH = 256
MAX_EDIT_BATCH_NOTE = "256 images on all layers of the small ResNet take about 250 MiB"

Table = dict[str, dict[str, float | None]]


def load_defaults(path: str | Path = DEFAULTS_FILE) -> dict[str, Any]:
    """The defaults document at ``path`` (default: the package's), checked.

    Raises:
        ValueError: the file is not a defaults document (names the file and what is missing).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable editor-defaults JSON file ({err}); restore it from the "
                         "package, or write it again with `python -m workbench tune-editor --write-defaults`") from None
    missing = [k for k in ("editor", "methods", "groups") if not isinstance(doc.get(k), dict)]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; it is not an editor-defaults file")
    return doc


def _table(methods: Mapping[str, Any]) -> Table:
    return {m: {"lr": float(v["lr"]), "beta": None if v.get("beta") is None else float(v["beta"])}
            for m, v in methods.items()}


_DOC = load_defaults()
DEFAULT_METHOD: str = str(_DOC["editor"]["method"])
DEFAULT_GROUP: str = str(_DOC["editor"]["layers"])  # the edit group; "layers" as in EditorConfig and cards
DEFAULT_MAX_STEPS: int = int(_DOC["editor"]["max_steps"])
# method -> {"lr": float, "beta": float | None}, for DEFAULT_GROUP
DEFAULTS: Table = _table(_DOC["methods"])
# Other editable groups: group -> method -> {"lr", "beta"}; methods missing here fall back to DEFAULTS.
GROUP_DEFAULTS: dict[str, Table] = {g: _table(v["methods"]) for g, v in _DOC["groups"].items()}


def provenance(method: str, group: str = DEFAULT_GROUP) -> dict[str, Any]:
    """Where the tuned values of ``method`` on ``group`` came from: ``{"command", "model", "result",
    "date"}`` (or ``{"note"}``); ``{}`` where none is recorded."""
    if group != DEFAULT_GROUP:
        return dict(_DOC["groups"].get(group, {}).get("provenance", {}))
    return dict(_DOC["methods"].get(method, {}).get("provenance", {}))


def default_for(method: str, group: object = DEFAULT_GROUP) -> dict[str, float | None]:
    """The tuned ``{"lr", "beta"}`` of canonical ``method`` for the edit group ``group``."""
    tuned = GROUP_DEFAULTS.get(group, {}) if isinstance(group, str) else {}
    return tuned.get(method, DEFAULTS[method])


def has_tuned_default(model: object, group: object) -> bool:
    """Whether the tuned defaults were measured for this kind of model and group: the project's
    ResNets (``workbench.models.ResNet``, see the file's ``tuned_for``) on ``DEFAULT_GROUP`` or a
    group of ``GROUP_DEFAULTS``. Any other model or group gets a calibrated step size
    (``workbench.evaluation.calibrate``)."""
    from ..models.resnet import ResNet

    key = group if isinstance(group, str) else None
    return isinstance(model, ResNet) and key is not None and (key == DEFAULT_GROUP or key in GROUP_DEFAULTS)


def write_defaults(method: str, lr: float, beta: float | None, provenance: Mapping[str, Any],
                   folder: str | Path | None = None) -> Path:
    """Store ``method``'s tuned lr/beta for ``DEFAULT_GROUP`` with its ``provenance``.

    Args:
        method: canonical method name (``"rmsprop"``...).
        provenance: ``{"command", "model", "result", "date"}`` of the run that found them.
        folder: write ``folder/editor_defaults.json`` (created; starting from the one already
            there, else from the package's); None rewrites the package's file.
    Returns:
        The file written. It is replaced atomically: a reader sees the old or the new file.
    """
    path = DEFAULTS_FILE if folder is None else Path(folder) / DEFAULTS_FILE.name
    doc = load_defaults(path if path.is_file() else DEFAULTS_FILE)
    doc["methods"][method] = {"lr": float(f"{lr:.4g}"), "beta": None if beta is None else float(beta),
                              "provenance": dict(provenance)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
