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

from typing import Any

import torch
from safetensors.torch import save_file

from ..folder_io import TMP_PREFIX, new_id, read_bounded
from .card_checks import SHA_FIELD, file_sha256

MODEL_FILE, CARD_FILE = "model.safetensors", "card.json"
# Beside the pair when the model is one of transformers' image-classification classes: its config,
# for Hugging Face tools (``ViTForImageClassification.from_pretrained(folder)``); load_model reads the card.
HF_CONFIG_FILE = "config.json"
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
            if not (prev / HF_CONFIG_FILE).is_file() and (folder / HF_CONFIG_FILE).is_file():
                (folder / HF_CONFIG_FILE).unlink()  # the new model's config: the kept model had none
            for name in (HF_CONFIG_FILE, MODEL_FILE, CARD_FILE):  # copies in: the kept model stays whole until all are back
                if name == HF_CONFIG_FILE and not (prev / name).is_file():
                    continue
                tmp = folder / f"{TMP_PREFIX}{new_id()}"
                shutil.copyfile(prev / name, tmp)
                fsync_file(tmp)
                os.replace(tmp, folder / name)
        shutil.rmtree(prev)


def keep_previous(folder: Path) -> Path | None:
    """Hard-link (or copy) the model in ``folder`` (and its ``config.json``, if any) into ``folder/.previous-export`` in one
    atomic step (a temporary folder, then a rename); None when there is no complete model."""
    if not all((folder / n).is_file() and not (folder / n).is_symlink() for n in (MODEL_FILE, CARD_FILE)):
        return None
    tmp = folder / f"{TMP_PREFIX}{new_id()}"
    tmp.mkdir()
    for name in (MODEL_FILE, CARD_FILE, HF_CONFIG_FILE):
        if name == HF_CONFIG_FILE and not ((folder / name).is_file() and not (folder / name).is_symlink()):
            continue
        try:
            os.link(folder / name, tmp / name)
        except OSError:
            shutil.copy2(folder / name, tmp / name)
    os.rename(tmp, folder / PREVIOUS_DIR)
    return folder / PREVIOUS_DIR


def write_pair(folder: Path, sd: dict[str, torch.Tensor], card: dict[str, Any],
                hf_config: dict[str, Any] | None = None) -> None:
    """Weights and card through temporary files, the model already there kept in
    ``.previous-export`` while the two are replaced (see :func:`~workbench.training.checkpoint.save_model`); ``hf_config``
    (a transformers model's config) goes to ``config.json`` before the card, and a stale one is removed."""
    tmp = folder / f"{TMP_PREFIX}{new_id()}"
    save_file(sd, str(tmp), metadata={"format": "pt", "arch": str(card["arch"]), "builder": json.dumps(card["builder"])})
    fsync_file(tmp)
    card[SHA_FIELD] = file_sha256(tmp)  # load_model verifies it
    card_tmp = folder / f"{TMP_PREFIX}{new_id()}"
    card_tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    fsync_file(card_tmp)
    config_tmp = None
    if hf_config is not None:
        config_tmp = folder / f"{TMP_PREFIX}{new_id()}"
        config_tmp.write_text(json.dumps(hf_config, indent=2) + "\n")
        fsync_file(config_tmp)
    stale = config_tmp is None and _wrote_hf_config(folder)  # read before the pair starts to change
    previous = keep_previous(folder)
    os.replace(tmp, folder / MODEL_FILE)  # from here until the card is in place, the pair
    if config_tmp is not None:  # differs: .previous-export holds the complete old one
        os.replace(config_tmp, folder / HF_CONFIG_FILE)
    elif stale:
        (folder / HF_CONFIG_FILE).unlink(missing_ok=True)  # the config of the model this one replaces
    os.replace(card_tmp, folder / CARD_FILE)
    if previous is not None:
        shutil.rmtree(previous)


def _wrote_hf_config(folder: Path) -> bool:
    """Whether the model in ``folder`` is a transformers class (its ``config.json`` was written with it)."""
    try:
        b = json.loads(read_bounded(folder / CARD_FILE, MAX_CARD_BYTES, "the card")).get("builder") or {}
    except (OSError, ValueError, AttributeError, RecursionError):
        return False
    return isinstance(b, dict) and b.get("kind") == "hf" and str(b.get("name", ""))[:1].isupper()
