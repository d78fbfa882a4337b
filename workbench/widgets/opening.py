"""Finding and opening a model folder for the workbench (moving to the session layer, issue 11)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["default_checkpoint", "open_session", "resolve_checkpoint"]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS = REPO_ROOT / "assets" / "models"
DEFAULT_MODEL, FALLBACK_MODEL = "fashion-editable", "fashion-baseline"


def resolve_checkpoint(folder: str | Path | None = None) -> tuple[Path, str]:
    """Find a model folder; returns ``(path, note)``.

    ``None`` means the shipped editable-trained model ``assets/models/fashion-editable``,
    falling back to ``fashion-baseline`` (the note says so). A relative path is tried from
    the current directory, then from the repository root (so ``../assets/models/x`` works
    from ``notebooks/`` and from the root alike).
    """
    if folder is None:
        for name in (DEFAULT_MODEL, FALLBACK_MODEL):
            if (MODELS / name / "card.json").exists():
                note = "" if name == DEFAULT_MODEL else (
                    f"note: {MODELS / DEFAULT_MODEL} is missing; opened the baseline model {name} instead "
                    "(train the editable model with `python -m workbench train --recipe fashion-editable`)")
                return MODELS / name, note
        raise FileNotFoundError(f"no model in {MODELS}: train one with "
                                "`python -m workbench train --recipe fashion-baseline --out assets/models/fashion-baseline`")
    p = Path(folder).expanduser()
    candidates = [p] if p.is_absolute() else [p, REPO_ROOT / p, REPO_ROOT / Path(*[s for s in p.parts if s != ".."])]
    for c in candidates:
        if (c / "card.json").exists() or (c.is_file() and c.name.endswith(".safetensors")):
            return c.resolve(), ""
    if p.name == DEFAULT_MODEL and (MODELS / FALLBACK_MODEL / "card.json").exists():
        return (MODELS / FALLBACK_MODEL).resolve(), (
            f"note: {folder} is missing; opened the baseline model {FALLBACK_MODEL} instead")
    raise FileNotFoundError(f"model folder {folder} not found (tried {', '.join(map(str, candidates))}); "
                            f"a model folder holds model.safetensors and card.json")


def default_checkpoint() -> Path:
    """The folder :meth:`Workbench.from_checkpoint` opens by default."""
    return resolve_checkpoint(None)[0]


def open_session(folder: str | Path | None = None, *, limit: int | None = None, device: Any = None,
                 bundle: Any = None, **kw: Any):
    """``(EditSession, note)`` for a model folder (see :func:`resolve_checkpoint`)."""
    from ..session import EditSession

    path, note = resolve_checkpoint(folder)
    session = EditSession.from_checkpoint(path, bundle=bundle, limit=limit, device=device, **kw)
    if session.evaluator is None:
        raise ValueError(f"{path}: no evaluator could be built for its data set; the workbench needs one")
    n_cls = getattr(session.model, "num_classes", len(session.evaluator.classes))
    if n_cls != len(session.evaluator.classes):
        raise ValueError(f"{path} has {n_cls} classes but its data set has {len(session.evaluator.classes)}; "
                         "open a model trained on this data set")
    return session, note
