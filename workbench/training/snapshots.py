"""Per-epoch weight snapshots in a model folder (``epochs/epoch_NNN.safetensors``), for rewinding.

Written by the trainer when the recipe has ``keep_epochs=True``: ``epoch_000`` is the
initialisation, ``epoch_k`` the weights (and BatchNorm buffers) after epoch ``k``.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

SNAPSHOT_DIR = "epochs"
_NAME = re.compile(r"^epoch_(\d{3,})\.safetensors$")


def snapshot_path(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / SNAPSHOT_DIR / f"epoch_{int(epoch):03d}.safetensors"


def save_snapshot(folder: str | Path, model: nn.Module, epoch: int) -> Path:
    """Write the state dict of ``model`` after ``epoch`` (0: before training); atomic."""
    path = snapshot_path(folder, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp), metadata={"epoch": str(int(epoch))})
    tmp.replace(path)
    return path


def list_snapshots(folder: str | Path) -> dict[int, Path]:
    """``{epoch: path}`` of the snapshots in a model folder, sorted by epoch (empty if none)."""
    d = Path(folder) / SNAPSHOT_DIR
    found = {}
    for p in sorted(d.glob("epoch_*.safetensors")) if d.is_dir() else []:
        m = _NAME.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def load_snapshot(folder: str | Path, epoch: int) -> dict[str, torch.Tensor]:
    """The state dict saved after ``epoch``, on the CPU (safetensors only: no pickled code)."""
    snaps = list_snapshots(folder)
    if epoch not in snaps:
        have = list(snaps) or "none"
        raise FileNotFoundError(f"no snapshot of epoch {epoch} in {Path(folder) / SNAPSHOT_DIR} (have: {have}); "
                                "train with --keep-epochs to keep one per epoch")
    try:
        return load_file(str(snaps[epoch]), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{snaps[epoch]} is not a readable safetensors file ({err})") from err
