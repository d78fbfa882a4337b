"""Model folders: ``model.safetensors`` + ``card.json``; safe loading only."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..models import ResNet, build_model

MODEL_FILE, CARD_FILE = "model.safetensors", "card.json"


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit (with ``-dirty`` if the tree has changes), or ``"unknown"``."""
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_model(folder: str | Path, model: ResNet, card: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` (weights + BN buffers) and ``card.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = {**card, "arch": card.get("arch", "small-resnet"), "model_config": model.config()}
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / (MODEL_FILE + ".tmp")
    save_file(sd, str(tmp), metadata={"arch": card["arch"], "model_config": json.dumps(card["model_config"])})
    tmp.replace(folder / MODEL_FILE)
    (folder / (CARD_FILE + ".tmp")).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    (folder / (CARD_FILE + ".tmp")).replace(folder / CARD_FILE)
    return folder


def read_card(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CARD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a model folder holds {MODEL_FILE} and {CARD_FILE} "
                                "(as written by `python -m workbench train`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the card is corrupted") from err


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with an error that says what does not match and what to do."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        detail = "; ".join(filter(None, [
            f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
            f"shape mismatch {shapes[:3]}" if shapes else ""]))
        raise ValueError(f"{source} does not match the model's architecture ({detail}). "
                         "Load it with the architecture recorded in its card.json.")
    model.load_state_dict(state)


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[ResNet, dict[str, Any]]:
    """Load a model folder; returns ``(model in eval mode, card)``."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    card = read_card(folder)
    if "arch" not in card or "model_config" not in card:
        raise ValueError(f"{folder / CARD_FILE} lacks 'arch'/'model_config'; it was not written by workbench")
    model = build_model(card["arch"], **card["model_config"])
    path = folder / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found next to its card")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors file ({err}); re-download or retrain it") from err
    load_state_into(model, state, str(path))
    if card.get("dropout"):  # example-tied or standard dropout: no weights, rebuilt from the card
        from ..models.dropout import attach_from_card

        attach_from_card(model, card["dropout"])
    return model.to(device).eval(), card


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (no pickled code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"refusing to load {path}: it is not a plain weights/state file ({err})") from err
