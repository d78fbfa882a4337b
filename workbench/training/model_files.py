"""The files of a model folder, and the earlier model kept while :func:`~workbench.training.checkpoint.save_model`
replaces it.

``save_model`` first hard-links (or copies) the folder's complete model into
``.previous-export``, then replaces ``model.safetensors`` and ``card.json``; a process killed in
between leaves a card and weights that do not belong together, and the next save (or
:func:`restore_interrupted_export`) puts the kept model back.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..folder_io import TMP_PREFIX, new_id, read_bounded
from .card_checks import SHA_FIELD, file_sha256

MODEL_FILE, CARD_FILE = "model.safetensors", "card.json"
MAX_CARD_BYTES = 64 * 2**20  # a card lists every edit of an export: far below this

PREVIOUS_DIR = ".previous-export"  # inside a model folder, while save_model replaces its model


def fsync_file(path: Path) -> None:
    """Flush ``path``'s contents to the disk (before it replaces another file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pair_matches(folder: Path) -> bool:
    """Whether ``folder``'s card and weights belong together (the card's SHA-256 matches)."""
    try:
        card = json.loads(read_bounded(folder / CARD_FILE, MAX_CARD_BYTES, "the card"))
        return isinstance(card, dict) and card.get(SHA_FIELD) == file_sha256(folder / MODEL_FILE)
    except (OSError, ValueError):
        return False


def interrupted_export(folder: str | Path) -> Path | None:
    """The complete earlier model that a killed ``save_model`` left in ``folder/.previous-export``
    while ``folder``'s own card and weights do not belong together, else None."""
    prev = Path(folder) / PREVIOUS_DIR
    if prev.is_dir() and not prev.is_symlink() and not pair_matches(Path(folder)) and pair_matches(prev):
        return prev
    return None


def restore_interrupted_export(folder: Path) -> None:
    """Put back the model a killed ``save_model`` kept in ``.previous-export`` (when the
    folder's pair does not match), or remove that copy (when it does). Call holding the lock."""
    prev = folder / PREVIOUS_DIR
    if prev.is_symlink() or (prev.exists() and not prev.is_dir()):
        prev.unlink()
    elif prev.is_dir():
        if interrupted_export(folder) is not None:
            for name in (MODEL_FILE, CARD_FILE):  # copies in: the kept model stays whole until both are back
                tmp = folder / f"{TMP_PREFIX}{new_id()}"
                shutil.copyfile(prev / name, tmp)
                fsync_file(tmp)
                os.replace(tmp, folder / name)
        shutil.rmtree(prev)


def keep_previous(folder: Path) -> Path | None:
    """Hard-link (or copy) the model in ``folder`` into ``folder/.previous-export`` in one
    atomic step (a temporary folder, then a rename); None when there is no complete model."""
    if not all((folder / n).is_file() and not (folder / n).is_symlink() for n in (MODEL_FILE, CARD_FILE)):
        return None
    tmp = folder / f"{TMP_PREFIX}{new_id()}"
    tmp.mkdir()
    for name in (MODEL_FILE, CARD_FILE):
        try:
            os.link(folder / name, tmp / name)
        except OSError:
            shutil.copy2(folder / name, tmp / name)
    os.rename(tmp, folder / PREVIOUS_DIR)
    return folder / PREVIOUS_DIR
