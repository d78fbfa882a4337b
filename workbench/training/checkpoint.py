"""Model folders: ``model.safetensors`` + ``card.json`` (with how to rebuild the model); safe loading only."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file

from ..folder_io import FolderExists, clean_tmp, folder_lock, read_bounded
from ..models.hf_builders import hf_config_json
from ..models.infer import infer_spec, rebuild_hint
from ..models.spec import ModelSpec
from ..models.safety import check_size
from .card_checks import (check_card, check_finite, check_input_shape, check_sha, check_weights_size,
                          read_card_file, state_mismatch)
from .model_files import CARD_FILE, MAX_CARD_BYTES, MODEL_FILE, PREVIOUS_DIR, restore_interrupted_export, write_pair


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
               builder: str | ModelSpec | None = None, trust_code: bool = False, overwrite: bool = True,
               replaces: str | None = None) -> Path:
    """Write ``model.safetensors`` (weights + buffers) and ``card.json`` into ``folder``.

    Works for any ``nn.Module``: the card records how to rebuild it (``builder``, see
    :class:`~workbench.models.spec.ModelSpec`), so :func:`load_model` reopens it without pickles.
    Everything is written inside ``folder``, holding its ``.lock`` (:mod:`workbench.folder_io`):
    each file in one atomic step, and a model already there stays complete in
    ``folder/.previous-export/`` until both new files are in place, so a process killed
    mid-way never loses it (the next ``save_model`` into the folder puts it back, or removes
    it once the new model is complete; see :func:`interrupted_export`).

    Args:
        model: the model (any device).
        card: fields to record (data set, classes, metrics ...); its ``export_id``, if any,
            identifies this save for ``replaces``.
        builder: how to rebuild the model: ``"torchvision:resnet18:num_classes=10"``, an
            importable ``"mypkg.models:make_cnn:width=32"``, or a ModelSpec. Default: the spec
            the model was built from (``ModelSpec.build``, ``--model``), else the card's
            ``builder``, else inferred (the project's ResNets, torchvision and timm models,
            Hugging Face configs, importable classes without required arguments).
        trust_code: lets a ``module:factory`` ``builder`` (or card builder) be built here, to check
            that it builds this architecture (a spec the model was built from needs no new trust).
        overwrite: replace a model already in ``folder`` (training rewrites its own folder
            each epoch); with False, only the model whose card records
            ``export_id == replaces`` may be replaced (``EditSession.export`` passes False).
    Raises:
        ValueError: the builder is unknown, untrusted, or builds a model with other weight names or shapes.
        FolderExists: (a ValueError) ``overwrite`` is False and ``folder`` holds another model.
    """
    card = dict(card or {})
    spec = _spec_for(model, card, builder, trust_code)
    folder = Path(folder)
    _check_model_target(folder, overwrite, replaces)  # before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    arch = card.get("arch") or (spec.name if spec.kind == "arch" else str(ModelSpec(spec.kind, spec.name)))
    card = {**card, "arch": arch, "model_config": spec.kwargs, "builder": {"kind": spec.kind, "name": spec.name}}
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    hf_config = hf_config_json(model) if spec.kind == "hf" else None
    with folder_lock(folder, "saving the model"):
        _check_model_target(folder, overwrite, replaces)
        restore_interrupted_export(folder)
        clean_tmp(folder)
        try:
            write_pair(folder, sd, card, hf_config)
        except BaseException:
            with contextlib.suppress(OSError):  # the model that was there is put back whole
                restore_interrupted_export(folder)
                clean_tmp(folder)
            raise
    return folder


def _check_model_target(folder: Path, overwrite: bool, replaces: str | None) -> None:
    """Refuse a file as the folder, and (without ``overwrite``) a folder holding another model."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder path for the model")
    names = [n for n in (MODEL_FILE, CARD_FILE, PREVIOUS_DIR) if (folder / n).is_symlink() or (folder / n).exists()]
    if overwrite or not names:
        return
    try:
        card = json.loads(read_bounded(folder / CARD_FILE, MAX_CARD_BYTES, "the card"))
        eid = card.get("export_id") if isinstance(card, dict) else None
    except (OSError, ValueError, RecursionError):
        eid = None
    if replaces is None or eid != replaces:
        raise FolderExists(f"{folder} already holds a model ({', '.join(names)}); nothing was written. Pass "
                           "overwrite=True to replace it, or export to a new folder", folder)


def _spec_for(model: nn.Module, card: dict[str, Any], builder: str | ModelSpec | None, trust_code: bool) -> ModelSpec:
    if builder is not None:
        spec = ModelSpec.parse(builder, trust_code=trust_code) if isinstance(builder, str) else builder
        if trust_code and not spec.trust_code:
            spec = dataclasses.replace(spec, trust_code=True)
    else:
        found = ModelSpec.of(model)
        if found is None and card.get("builder"):
            found = ModelSpec.from_card(card, trust_code=trust_code)
        spec = found or infer_spec(model)  # type: ignore[assignment]
        if spec is None:
            raise ValueError(f"save_model cannot tell how to rebuild a {type(model).__name__}: {rebuild_hint(model)}")
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
    detail = state_mismatch(model.state_dict(), state)
    if detail:
        raise ValueError(f"{source} does not match the model's architecture ({detail}). "
                         "Load it with the architecture recorded in its card.json.")
    model.load_state_dict(state)


def load_model(folder: str | Path, device: str | torch.device = "cpu", *, verify_sha256: bool = True,
               trust_code: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model folder (or the path of its ``model.safetensors``); returns
    ``(model in eval mode, card)``.

    Opening a folder never calls code that the folder chooses: the card's ``builder`` must be
    one of the closed set (torchvision, timm, a Hugging Face config, the project's own models),
    and a ``module:factory`` builder is refused unless ``trust_code=True``. The weights are read
    from safetensors (no pickles) and checked before anything is built. Refused with ValueError
    (:mod:`.card_checks`): a card that is not a UTF-8 JSON object, bad ``num_classes``, widths or
    image shape, a dotted or standard-library factory, weights whose SHA-256 differs from the
    card's ``model_sha256`` (unless ``verify_sha256=False``), weights whose names, shapes or kinds
    differ from the model's or that hold NaN or inf, a model above ``MAX_PARAMETERS`` (counted on
    the meta device), an image shape that disagrees with the model or its data set, and any other
    file than ``model.safetensors`` (e.g. ``weights.pt``: use :func:`load_weights`).
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
        spec = ModelSpec.from_card(card, trust_code=trust_code)
        if spec.kind == "arch" and "widths" in spec.kwargs:  # cards store ResNet.config(): small_resnet takes it all
            spec = ModelSpec("arch", "small-resnet", spec.kwargs)
        spec.check_trusted()  # before any import, file read or build
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from err
    path = folder / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found next to its card")
    check_weights_size(path)
    check_sha(path, card, verify_sha256)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors file ({err}); re-download or retrain it") from err
    check_finite(state, path)
    try:
        with torch.device("meta"):  # names, shapes, size and image shape, with no memory and no weights
            meta = spec.build()
    except (RuntimeError, OverflowError) as err:  # e.g. a negative size the checks above did not name
        raise ValueError(f"{where}: cannot build {spec} ({err})") from err
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err
    check_size(sum(int(t.numel()) for t in meta.state_dict().values()), where)
    detail = state_mismatch(meta.state_dict(), state)
    if detail:
        raise ValueError(f"{path} does not match the model's architecture that its card describes ({detail}); "
                         "the weights or the card were changed: re-download or retrain the model")
    check_input_shape(card, meta, where)
    model = spec.build()
    load_state_into(model, state, str(path))
    if card.get("dropout"):  # example-tied or standard dropout: no weights, rebuilt from the card
        from ..models.dropout import attach_from_card

        attach_from_card(model, card["dropout"])
    return model.to(device).eval(), card


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a weights file, checked: ``.safetensors``, or a ``.pt``/``.pth``/``.bin``
    state dict read with ``weights_only=True`` (a model folder works too); finite values only."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix not in (".safetensors", ".pt", ".pth", ".bin"):
        raise ValueError(f"{path}: unknown weights format {path.suffix!r}; use .safetensors or a .pt state dict")
    check_weights_size(path)
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
    else:
        state = safe_torch_load(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a state dict (name -> tensor); save one with "
                             "torch.save(model.state_dict(), path)")
    check_finite(state, path)
    return state


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a weights file into ``model`` (in place): see :func:`read_weights`."""
    load_state_into(model, read_weights(path), str(Path(path)))
    return model


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (no pickled code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own message suggests weights_only=False: never do that with a shared file
        raise ValueError(f"refusing to load {path}: it is not a plain weights file (a pickle of code or objects, "
                         f"or damaged: {type(err).__name__}); save weights with safetensors or "
                         "torch.save(model.state_dict(), path)") from None
