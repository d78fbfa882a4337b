"""The session's parts, built once and wired to each other: what :class:`~workbench.session.EditSession`
composes (its constructor's checks run here, in the order it documents).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..data import DataBundle
from ..editing.editor import EditorConfig
from ..evaluation.editor_resolver import EditorResolver
from ..models import ModelAdapter, adapt
from .actions import EditActions
from .background import BaseScoring
from .data import SessionData
from .helpers import black_image, build_evaluator, bundle_for_model, score_cache_for
from .inspection import Inspection
from .localization import Localization
from .persistence import Persistence, check_autosave_dir
from .scoring import Scoring
from .stack import EditStack
from .strength import EditStrength
from .uploads import Uploads

if TYPE_CHECKING:
    from ..evaluation import Evaluator

__all__ = ["SessionParts", "build_parts"]


@dataclass(frozen=True)
class SessionParts:
    """Everything an :class:`~workbench.session.EditSession` holds, built by :func:`build_parts`.

    Attributes:
        adapter, model: the model (``model`` on the device, in eval mode, edited in place).
        bundle: the data as read for the model (None: no data).
        card, checkpoint: as given.
        autosave_dir: the history folder.
        resume_history: that folder holds a history to load (``resume=True``).
        editor, stack, evaluator, base_scoring, data, scoring, inspection, localization, uploads,
            persistence, actions, scaling: the parts (see :mod:`workbench.session`).
    """

    adapter: ModelAdapter
    model: nn.Module
    bundle: DataBundle | None
    card: dict[str, Any]
    checkpoint: Path | None
    autosave_dir: Path | None
    resume_history: bool
    editor: EditorResolver
    stack: EditStack
    evaluator: Evaluator | None
    base_scoring: BaseScoring
    data: SessionData
    scoring: Scoring
    inspection: Inspection
    localization: Localization
    uploads: Uploads
    persistence: Persistence
    actions: EditActions
    scaling: EditStrength


def build_parts(model: nn.Module | ModelAdapter, bundle: Any, device: torch.device, *, evaluator: Evaluator | None,
                config: EditorConfig | None, autosave_dir: str | Path | None, resume: bool | None,
                card: Mapping[str, Any] | None, split: str, limit: int | None, checkpoint: str | Path | None,
                classes: Sequence[str] | None, mean: Sequence[float] | None, std: Sequence[float] | None,
                normalize: Callable[[torch.Tensor], torch.Tensor] | None,
                denormalize: Callable[[torch.Tensor], torch.Tensor] | None, resize: int | tuple[int, int] | None,
                calibration: Mapping[str, int] | None, progress: Callable[[int, int], None] | None,
                memory_budget: int | str | None, score_cache: bool | str | Path | None, background: bool,
                first_chunk: int) -> SessionParts:
    """The parts of a session on ``model`` and ``bundle`` on ``device`` (the arguments are
    :class:`~workbench.session.EditSession`'s). Bad input raises before any scoring starts."""
    if not isinstance(model, (nn.Module, ModelAdapter)):
        raise TypeError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    adapter = adapt(model)
    shape = adapter.input_shape
    if isinstance(bundle, DataBundle) and shape is not None and tuple(bundle.input_shape) != tuple(shape):
        raise ValueError(f"the data set {bundle.name!r} has images {bundle.input_shape} but the model takes "
                         f"{tuple(shape)}; load the data set the model was trained on")
    net: nn.Module = adapter.model.to(device).eval()
    if bundle is not None:
        opts = {k: v for k, v in (("mean", mean), ("std", std), ("normalize", normalize),
                                  ("denormalize", denormalize), ("resize", resize),
                                  ("input_shape", shape or (card or {}).get("input_shape"))) if v is not None}
        bundle = bundle_for_model(net, bundle, device, classes=classes, **opts)
    the_card: dict[str, Any] = dict(card or {})
    folder = Path(checkpoint) if checkpoint is not None else None
    cal = dict(calibration or {})
    if set(cal) - {"edits", "val_limit"}:
        raise TypeError(f"calibration takes 'edits' and 'val_limit', got {sorted(cal)}")
    editor = EditorResolver(net, the_card, bundle, config=config, device=device,
                            edits=cal.get("edits"), val_limit=cal.get("val_limit"))
    stack = EditStack(net)
    ad = Path(autosave_dir) if autosave_dir is not None else None
    has_history = check_autosave_dir(ad, resume)
    if evaluator is None and bundle is not None:
        evaluator = build_evaluator(adapter, bundle, split, editor.config, device, limit, memory_budget=memory_budget,
                                    score_cache=score_cache_for(score_cache, folder))
    base_scoring = BaseScoring(evaluator, background=background, first_chunk=first_chunk, progress=progress)
    data = SessionData(net, bundle, evaluator, split, limit, device)
    scoring = Scoring(evaluator, stack)
    mean_std = (bundle.mean, bundle.std) if bundle is not None else (the_card.get("mean"), the_card.get("std"))
    inspection = Inspection(adapter, stack, data, black_image(*mean_std))
    localization = Localization(net, stack, bundle, evaluator, split, limit, folder)
    uploads = Uploads(net, bundle, the_card, device)
    num_classes = adapter.num_classes if adapter.num_classes is not None else (
        evaluator.num_classes if evaluator is not None else None)
    persistence = Persistence(stack, adapter, scoring, data, editor, evaluator=evaluator, bundle=bundle,
                              card=the_card, checkpoint=folder, device=device, num_classes=num_classes, autosave_dir=ad)
    actions = EditActions(adapter, bundle, data, editor, stack, scoring, persistence)
    scaling = EditStrength(adapter, stack, data, persistence)
    return SessionParts(adapter, net, bundle, the_card, folder, ad, bool(has_history and resume), editor, stack,
                        evaluator, base_scoring, data, scoring, inspection, localization, uploads, persistence,
                        actions, scaling)
