"""``EditSession``: the model state the user sees, a small facade over parts with one job each.

Its methods are its parts' (``session.confusion`` is ``session.scoring.confusion``); the parts
are built in :mod:`workbench.session.parts`, and :mod:`workbench.session` lists which part does what.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..data import DataBundle
from ..device import default_device
from ..editing.editor import EditorConfig
from ..models import ModelAdapter
from .actions import MAX_ATTEMPTS
from .background import FIRST_CHUNK
from .edit_record import EditRecord
from .helpers import load_bundle
from .parts import build_parts
from .stack import SessionBusy

if TYPE_CHECKING:
    from ..editing.choice import EditorChoice
    from ..evaluation import Evaluator

__all__ = ["MAX_ATTEMPTS", "EditSession", "SessionBusy"]


class EditSession:
    """Base weights, a stack of applied edits (undo/redo) and the current weights.

    The session edits ``model`` in place (pass a copy to keep the original); ``session.model``
    always holds the current weights, in eval mode, on ``session.device``. It is a facade over
    parts with one job each (``actions``, ``stack``, ``data``, ``scoring``, ``base_scoring``,
    ``inspection``, ``localization``, ``scaling``, ``uploads``, ``persistence``, ``editor``): its
    methods are theirs, and :mod:`workbench.session` lists which part holds which member.

    Args:
        model: any ``nn.Module`` classifier holding the *base* weights (``model(x)`` returns
            ``(N, classes)`` logits), e.g. one just trained in a notebook.
        bundle: the data, in any form :func:`workbench.data.as_bundle` takes (a
            ``DataBundle``, a torch ``Dataset`` of ``(image, label)``, ``(x, y)`` tensors, an
            ImageFolder path ...); with it (and no ``evaluator``) an Evaluator is built on
            ``split``. The model runs once on two of its images: a size, channel or class
            mismatch raises a ValueError that names it.
        classes, mean, std, normalize, denormalize, resize: how to read ``bundle`` (see
            :func:`workbench.data.as_bundle`); ``classes`` default to the data's own names, else
            ``"0"``, ``"1"`` ... one per model output.
        calibration: ``{"edits": 20, "val_limit": 500}``: the size of a step-size calibration
            (see :meth:`calibrate`; also ``session.calibration_settings``).
        evaluator: an Evaluator bound to the base weights (reports are None without one).
        config: default :class:`EditorConfig` for :meth:`edit`. Its lr/beta left None (and no
            ``config`` at all) are resolved by the one resolver (``session.editor``,
            :class:`~workbench.evaluation.editor_resolver.EditorResolver`): learned in Editable
            Training where the card has it for that method and group, else the tuned default,
            else (a model or group without one) a step size calibrated at the first edit;
            ``session.editor_choice.note`` says which. Without ``config``: RMSProp on ``chain3``
            for the project's ResNets, else on the last group before the head.
        autosave_dir: history folder rewritten (atomically) after every change.
        resume: what to do when ``autosave_dir`` already holds a history: True loads it,
            False replaces it at the next autosave, None (default) raises ValueError.
        device: defaults to :func:`workbench.device.default_device`.
        card: the base model's card (from ``load_model``), copied into exports.
        split, limit: the evaluator's split and size (used by :meth:`image` without an evaluator).
        checkpoint: the base model folder (recorded in saved histories and exports).
        progress: called as ``progress(images_scored, total)`` while the evaluator scores the
            base model (a progress line; see :func:`workbench.widgets.show`).
        memory_budget: bytes or a size (``"4GiB"``) for what the evaluator keeps in memory (base
            logits, cached prefix activations); past it, caches go to a memory-mapped file or are
            recomputed (on the CPU a cache over 256 MiB goes to the file anyway; pass
            ``evaluator=Evaluator(..., resident_max=...)`` to change that). Default: a share of the RAM (of the free GPU memory on CUDA), see
            :func:`workbench.evaluation.budget.default_budget`.
        score_cache: where base scores are kept, so that reopening the same model on the same
            data reads them in seconds: True (default) inside the model folder when the session
            came from a writable one, else under ``~/.cache/editable-workbench`` (``$WORKBENCH_SCORE_CACHE``
            overrides, ``off`` disables); a folder; False or None: not kept.
        background: True (default) returns once the first ``first_chunk`` images are scored, or
            after about 3 s of scoring (``background.FIRST_WAIT_S``; a 224-px model on the CPU), and
            scores the rest in a background thread (``scoring_progress()``, ``wait_scored()``,
            ``on_scoring_progress(cb)``, ``scoring_failure()``); False scores every image first.
        first_chunk: images scored before the session is returned (default 256, whole batches).

    Example:
        >>> s = EditSession(my_model, my_test_dataset)             # any model, any data set
        >>> s.edit(s.image(0), 3, layers="layer3.1")
        >>> s = EditSession.from_checkpoint("assets/models/fashion-baseline")
        >>> res = s.edit_index(12, 3)       # edit test image 12 to class 3
        >>> s.current_report().drawdown; s.undo(); s.redo(); s.save("runs/my-edits")
    """

    def __init__(self, model: nn.Module | ModelAdapter, bundle: Any = None, *, evaluator: Evaluator | None = None,
                 config: EditorConfig | None = None, autosave_dir: str | Path | None = None,
                 resume: bool | None = None, device: str | torch.device | None = None,
                 card: Mapping[str, Any] | None = None, split: str = "test", limit: int | None = None,
                 checkpoint: str | Path | None = None, classes: Sequence[str] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 denormalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 resize: int | tuple[int, int] | None = None, calibration: Mapping[str, int] | None = None,
                 progress: Callable[[int, int], None] | None = None, memory_budget: int | str | None = None,
                 score_cache: bool | str | Path | None = True, background: bool = True,
                 first_chunk: int = FIRST_CHUNK) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        p = build_parts(model, bundle, self.device, evaluator=evaluator, config=config, autosave_dir=autosave_dir,
                        resume=resume, card=card, split=split, limit=limit, checkpoint=checkpoint, classes=classes,
                        mean=mean, std=std, normalize=normalize, denormalize=denormalize, resize=resize,
                        calibration=calibration, progress=progress, memory_budget=memory_budget,
                        score_cache=score_cache, background=background, first_chunk=first_chunk)
        self.adapter, self.model, self.bundle, self.card, self.checkpoint = \
            p.adapter, p.model, p.bundle, p.card, p.checkpoint
        self.split, self.limit, self.editor, self.stack, self.evaluator = split, limit, p.editor, p.stack, p.evaluator
        self.base_scoring, self.data, self.scoring, self.inspection = p.base_scoring, p.data, p.scoring, p.inspection
        self.localization, self.uploads, self.persistence = p.localization, p.uploads, p.persistence
        self.actions, self.scaling = p.actions, p.scaling
        # the parts' methods, as the session's (one door for the widgets and notebooks)
        act, st, sc, ins, loc = self.actions, self.stack, self.scoring, self.inspection, self.localization
        up, ed, per, sg = self.uploads, self.editor, self.persistence, self.scaling
        self.edit, self.edit_index, self.undo, self.redo, self.reset = \
            act.edit, act.edit_index, act.undo, act.redo, act.reset
        self.set_strength, self.smallest_fixing_strength, self.edit_fixed = \
            sg.set_strength, sg.smallest_fixing_strength, sg.edit_fixed
        self.edited_names, self.params_at, self.current_report = st.edited_names, st.params_at, st.current_report
        self.applied_record = st.applied_record
        self.image, self.raw_images = self.data.image, self.data.raw_images
        self.current_preds, self.current_errors, self.confusion = sc.current_preds, sc.current_errors, sc.confusion
        self.estimate_sample, self.estimate_last, self.complete_reports = \
            sc.estimate_sample, sc.estimate_last, sc.complete_reports
        self.explain, self.generalization, self.probabilities = ins.explain, ins.generalization, ins.probabilities
        self.base_probabilities, self.cam_layers, self.default_cam_layer = \
            ins.base_probabilities, ins.cam_layers, ins.default_cam_layer
        self.localize, self.cached_localization = loc.localize, loc.cached_localization
        self.localized_counts, self.label_quality, self.label_scores = \
            loc.localized_counts, loc.label_quality, loc.label_scores
        self.image_from_bytes, self.normalize = up.image_from_bytes, up.normalize
        self.calibrate, self.needs_calibration, self.prepare_editor = ed.calibrate, ed.needs_calibration, ed.prepare
        self.calibration_card, self.resolve_editor = ed.card_entry, ed.resolve
        self.save, self.load_history, self.export = per.save, per.load_history, per.export
        self.classes, self.scoring_note, self.base_hash = self.data.classes, sc.scoring_note, st.base_hash
        self.calibrations, self.calibration_settings = ed.calibrations, ed.settings  # the resolver's own dicts
        self.exact_async = sc.exact_async
        bs = self.base_scoring
        self.scoring_progress, self.wait_scored, self.on_scoring_progress = bs.progress, bs.wait, bs.on_progress
        self.scoring_failure = bs.failure
        bs.start()  # the first chunk now; the rest in a background thread
        if p.resume_history:
            self.load_history(p.autosave_dir)  # type: ignore[arg-type]

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, folder: str | Path, *, bundle: DataBundle | None = None, split: str = "test",
                        limit: int | None = None, device: str | torch.device | None = None,
                        trust_code: bool = False, **kw: Any) -> EditSession:
        """A session on a model folder: loads the model, its data set (``card["dataset"]``,
        default Fashion-MNIST, unless ``bundle`` is given) and an Evaluator on ``split``
        (its first ``limit`` images, if given). ``trust_code``: build a ``module:factory``
        builder that the card names (see ``load_model``). ``kw`` go to :class:`EditSession`.
        """
        from ..training.checkpoint import load_model

        dev = torch.device(device) if device is not None else default_device()
        model, card = load_model(folder, device=dev, trust_code=trust_code)
        if bundle is None:
            bundle = load_bundle(card)
        return cls(model, bundle, device=dev, card=card, split=split, limit=limit, checkpoint=folder, **kw)

    @classmethod
    def load(cls, folder: str | Path, model_or_checkpoint: nn.Module | str | Path, **kw: Any) -> EditSession:
        """A new session on ``model_or_checkpoint`` (a base model or its folder) with the
        history saved in ``folder`` replayed. ``kw`` go to the constructor."""
        if isinstance(model_or_checkpoint, (str, Path)):
            session = cls.from_checkpoint(model_or_checkpoint, **kw)
        else:
            session = cls(model_or_checkpoint, **kw)
        session.load_history(folder)
        return session

    # -- state -------------------------------------------------------------------------
    def group_names(self, every: bool = False) -> list[str]:
        """The model's editable groups (``ModelAdapter.group_names``), e.g. ``["stem", ..., "all"]``
        or ``["conv1", ..., "layer3", "layer4", "fc", "all"]``; with ``every`` every submodule too."""
        return self.adapter.group_names(every)

    @property
    def num_classes(self) -> int | None:
        """The number of classes (from the model's adapter, else the evaluator's data)."""
        if self.adapter.num_classes is not None:
            return self.adapter.num_classes
        return self.evaluator.num_classes if self.evaluator is not None else None

    @property
    def history(self) -> list[EditRecord]:
        """Applied edits, oldest first (``stack.history``)."""
        return self.stack.history

    @property
    def attempts(self) -> list[EditRecord]:
        """Failed or refused edits, as summaries without tensors (at most :data:`MAX_ATTEMPTS`)."""
        return self.stack.attempts

    @property
    def redo_stack(self) -> tuple[EditRecord, ...]:
        """Undone edits, the next one to redo last."""
        return tuple(self.stack.undone)

    @property
    def can_undo(self) -> bool:
        return bool(self.stack.history)

    @property
    def can_redo(self) -> bool:
        return bool(self.stack.undone)

    @property
    def busy(self) -> bool:
        """True while an edit, undo, redo, reset, save or load runs."""
        return self.stack.busy

    @property
    def base_state(self) -> dict[str, torch.Tensor]:
        """The base weights and buffers (a copy, on the session's device)."""
        return self.stack.base_state

    @property
    def config(self) -> EditorConfig:
        """The session's editor (``editor.config``): learned, tuned, calibrated or given."""
        return self.editor.config

    @property
    def editor_choice(self) -> EditorChoice:
        """The editor of the last edit with the provenance of its values (``editor.last``: the group
        and method that edit used), else the session's editor (``editor.choice``)."""
        return self.editor.last or self.editor.choice

    @property
    def editor_note(self) -> str:
        """Where the last edit's step size came from (its calibration line when one was
        calibrated), else the last calibration's line (``""`` until either)."""
        return self.editor.note

    @property
    def autosave_dir(self) -> Path | None:
        """History folder rewritten after every change (None: no autosave)."""
        return self.persistence.autosave_dir

    @autosave_dir.setter
    def autosave_dir(self, folder: str | Path | None) -> None:
        self.persistence.autosave_dir = Path(folder) if folder is not None else None

    @property
    def last_autosave_error(self) -> Exception | None:
        """The error of the last autosave, if it failed (it also warned)."""
        return self.persistence.last_autosave_error

    @property
    def labels(self) -> torch.Tensor:
        """``(N,) int64`` true labels of the split (CPU)."""
        return self.data.labels

    @property
    def num_examples(self) -> int:
        """Images in the split (after ``limit``); ValueError without data."""
        return self.data.num_examples

    @property
    def base_error(self) -> float:
        """Test error of the base model on the split, in [0, 1]."""
        return self.scoring.base_error

    @property
    def base_preds(self) -> torch.Tensor:
        """``(N,) int64`` predictions of the base model."""
        return self.scoring.base_preds

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` the model takes."""
        return self.uploads.input_shape

    def close(self) -> None:
        """Stop the background passes (the base scoring, within one batch, and the pending exact
        pass) and free the evaluator's caches. Nothing half-done is kept or written."""
        self.scoring.cancel_exact()
        self.base_scoring.close()
        if self.evaluator is not None:
            self.evaluator.close()

    def __repr__(self) -> str:
        return (f"EditSession({len(self.history)} edit(s) applied, {len(self.stack.undone)} to redo, "
                f"{len(self.attempts)} failed attempt(s), device={self.device}; {self.editor_choice.note})")
