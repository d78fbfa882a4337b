"""Model folders: ``model.safetensors`` + ``card.json`` (with how to rebuild the model); safe loading only."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..models.spec import ModelSpec, infer_spec
from .card_checks import (SHA_FIELD, check_card, check_finite, check_sha, check_size, count_parameters_on_meta,
                          file_sha256, read_card_file)

MODEL_FILE, CARD_FILE = "model.safetensors", "card.json"


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit of ``cwd`` (default: the source checkout, see
    :func:`workbench.paths.source_root`), with ``-dirty`` if the tree has changes, or
    ``"unknown"`` (e.g. when running from an installed wheel)."""
    from ..paths import source_root

    cwd = cwd or source_root()
    if cwd is None:
        return "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_model(folder: str | Path, model: nn.Module, card: dict[str, Any] | None = None, *,
               builder: str | ModelSpec | None = None) -> Path:
    """Write ``model.safetensors`` (weights + buffers) and ``card.json`` into ``folder``.

    Works for any ``nn.Module``: the card records how to rebuild it (``builder``, see
    :class:`~workbench.models.spec.ModelSpec`), so :func:`load_model` reopens it without pickles.

    Args:
        model: the model (any device).
        card: fields to record (data set, classes, metrics ...).
        builder: how to rebuild the model: ``"torchvision:resnet18:num_classes=10"``, an
            importable ``"mypkg.models:make_cnn:width=32"``, or a ModelSpec. Default: the spec
            the model was built from (``ModelSpec.build``, ``--model``), else the card's
            ``builder``, else inferred (the project's ResNets, torchvision models, importable
            classes without required arguments).
    Raises:
        ValueError: the builder is unknown, or builds a model with other weight names or shapes.
    """
    card = dict(card or {})
    spec = _spec_for(model, card, builder)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arch = card.get("arch") or (spec.name if spec.kind == "arch" else str(ModelSpec(spec.kind, spec.name)))
    card = {**card, "arch": arch, "model_config": spec.kwargs, "builder": {"kind": spec.kind, "name": spec.name}}
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / (MODEL_FILE + ".tmp")
    save_file(sd, str(tmp), metadata={"arch": str(arch), "builder": json.dumps(card["builder"])})
    card[SHA_FIELD] = file_sha256(tmp)  # load_model verifies it
    tmp.replace(folder / MODEL_FILE)
    (folder / (CARD_FILE + ".tmp")).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    (folder / (CARD_FILE + ".tmp")).replace(folder / CARD_FILE)
    return folder


def _spec_for(model: nn.Module, card: dict[str, Any], builder: str | ModelSpec | None) -> ModelSpec:
    if builder is not None:
        spec = ModelSpec.parse(builder) if isinstance(builder, str) else builder
    else:
        found = ModelSpec.of(model)
        if found is None and card.get("builder"):
            found = ModelSpec.from_card(card)
        spec = found or infer_spec(model)  # type: ignore[assignment]
        if spec is None:
            raise ValueError(
                f"save_model cannot tell how to rebuild a {type(model).__name__}: pass "
                "builder='torchvision:<name>:num_classes=10' (a torchvision model) or builder='mypkg.models:make_model"
                ":width=32' (an importable function or class that returns it); a model defined in a notebook "
                "cell cannot be rebuilt from its card, so move its class into a .py module")
    try:
        with torch.device("meta"):  # no memory, no init cost: only names and shapes matter
            other = spec.build()
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - some builders cannot run on the meta device
        other = spec.build()
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in other.state_dict().items()}
    if own != theirs:
        diff = sorted(set(own) ^ set(theirs))[:3] or [k for k in own if own[k] != theirs.get(k)][:3]
        raise ValueError(f"builder {spec} builds a model whose weights differ from this {type(model).__name__}'s "
                         f"(e.g. {diff}); pass the builder and arguments that build this very architecture")
    return spec


def model_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file, or of a model folder's ``model.safetensors``: which weights a
    result belongs to."""
    import hashlib

    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card of a model folder (a JSON object; ValueError naming the problem otherwise)."""
    path = Path(folder) / CARD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a model folder holds {MODEL_FILE} and {CARD_FILE} "
                                "(as written by `python -m workbench train`)")
    return read_card_file(path)


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


def load_model(folder: str | Path, device: str | torch.device = "cpu", *,
               verify_sha256: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model folder (or the path of its ``model.safetensors``); returns
    ``(model in eval mode, card)``.

    The model is rebuilt from the card's ``builder`` (importing at most the module it names)
    and its weights read from safetensors: no pickled code runs. Refused with ValueError
    (:mod:`.card_checks`): a card that is not a UTF-8 JSON object, bad ``num_classes`` or
    widths, a model above ``MAX_PARAMETERS`` (counted before it is built), a standard-library
    factory, weights whose SHA-256 differs from the card's ``model_sha256`` (unless
    ``verify_sha256=False``), weights holding NaN or inf, and any other file than
    ``model.safetensors`` (e.g. ``weights.pt``: use :func:`load_weights`).
    """
    folder = Path(folder)
    if folder.is_file():
        if folder.name != MODEL_FILE:
            raise ValueError(f"load_model takes a model folder (or its {MODEL_FILE}), not {folder.name!r}: "
                             f"to read a state dict into a model use load_weights(model, {str(folder)!r})")
        folder = folder.parent
    card = read_card(folder)
    where = str(folder / CARD_FILE)
    check_card(card, where)
    try:
        spec = ModelSpec.from_card(card)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from err
    if spec.kind == "arch" and "widths" in spec.kwargs:  # cards store ResNet.config(): small_resnet takes it all
        spec = ModelSpec("arch", "small-resnet", spec.kwargs)
    check_size(count_parameters_on_meta(spec.build), where)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found next to its card")
    check_sha(path, card, verify_sha256)
    try:
        model = spec.build()
    except (RuntimeError, OverflowError) as err:  # e.g. a negative size the checks above did not name
        raise ValueError(f"{where}: cannot build {spec} ({err})") from err
    try:
        state = load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors file ({err}); re-download or retrain it") from err
    check_finite(state, path)
    load_state_into(model, state, str(path))
    if card.get("dropout"):  # example-tied or standard dropout: no weights, rebuilt from the card
        from ..models.dropout import attach_from_card

        attach_from_card(model, card["dropout"])
    return model.to(device).eval(), card


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a weights file into ``model`` (in place): ``.safetensors``, or a ``.pt``/``.pth``
    state dict read with ``weights_only=True`` (a model folder works too)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
    elif path.suffix in (".pt", ".pth", ".bin"):
        state = safe_torch_load(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a state dict (name -> tensor); save one with "
                             "torch.save(model.state_dict(), path)")
    else:
        raise ValueError(f"{path}: unknown weights format {path.suffix!r}; use .safetensors or .pt")
    check_finite(state, path)
    load_state_into(model, state, str(path))
    return model


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (no pickled code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"refusing to load {path}: it is not a plain weights/state file ({err})") from err
