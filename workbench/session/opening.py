"""Finding a model folder and opening a session on it (shared by the widgets, the CLI and scripts)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..paths import models_dir, source_root

DEFAULT_MODEL, FALLBACK_MODEL = "fashion-editable", "fashion-baseline"

__all__ = ["DEFAULT_MODEL", "FALLBACK_MODEL", "default_checkpoint", "open_session", "resolve_checkpoint"]


def _is_model(path: Path) -> bool:
    return (path / "card.json").exists() or (path.is_file() and path.name.endswith(".safetensors"))


def resolve_checkpoint(folder: str | Path | None = None) -> tuple[Path, str]:
    """Find a model folder; returns ``(path, note)``.

    ``None`` means the shipped editable-trained model ``fashion-editable`` in
    :func:`workbench.paths.models_dir`, falling back to ``fashion-baseline`` (the note says
    so). A relative path is tried from the current directory, then: a path
    ``[../]assets/models/<name>`` (as the notebooks write it) in
    :func:`~workbench.paths.models_dir`, wherever that is; any other one in the source checkout.
    """
    models = models_dir()
    if folder is None:
        for name in (DEFAULT_MODEL, FALLBACK_MODEL):
            if (models / name / "card.json").exists():
                note = "" if name == DEFAULT_MODEL else (
                    f"note: {models / DEFAULT_MODEL} is missing; opened the baseline model {name} instead "
                    "(train the editable model with `python -m workbench train --recipe fashion-editable`)")
                return models / name, note
        raise FileNotFoundError(f"no model in {models}: set $WORKBENCH_MODELS to a folder of model folders, "
                                "or train one with `python -m workbench train --recipe fashion-baseline "
                                "--out assets/models/fashion-baseline`")
    p = Path(folder).expanduser()
    candidates = [p]
    if not p.is_absolute():
        plain = Path(*[s for s in p.parts if s != ".."]) if any(s != ".." for s in p.parts) else p
        parts = plain.parts
        root = source_root()
        if len(parts) >= 3 and parts[:2] == ("assets", "models"):
            candidates.append(models / Path(*parts[2:]))
        elif root is not None:
            candidates += [root / p, root / plain]
    for c in candidates:
        if _is_model(c):
            return c.resolve(), ""
    if p.name == DEFAULT_MODEL and (models / FALLBACK_MODEL / "card.json").exists():
        return (models / FALLBACK_MODEL).resolve(), (
            f"note: {folder} is missing; opened the baseline model {FALLBACK_MODEL} instead")
    raise FileNotFoundError(f"model folder {folder} not found (tried {', '.join(map(str, candidates))}); "
                            f"a model folder holds model.safetensors and card.json")


def default_checkpoint() -> Path:
    """The folder opened when no model is named."""
    return resolve_checkpoint(None)[0]


def open_session(folder: str | Path | None = None, *, limit: int | None = None, device: Any = None,
                 bundle: Any = None, **kw: Any):
    """``(EditSession, note)`` for a model folder (see :func:`resolve_checkpoint`), checked to
    have an evaluator whose classes match the model."""
    from .session import EditSession

    path, note = resolve_checkpoint(folder)
    session = EditSession.from_checkpoint(path, bundle=bundle, limit=limit, device=device, **kw)
    if session.evaluator is None:
        raise ValueError(f"{path}: no evaluator could be built for its data set; the workbench needs one")
    n_cls = getattr(session.model, "num_classes", len(session.evaluator.classes))
    if n_cls != len(session.evaluator.classes):
        raise ValueError(f"{path} has {n_cls} classes but its data set has {len(session.evaluator.classes)}; "
                         "open a model trained on this data set")
    return session, note
