"""``EditSession``: the model state the user sees, a stack of edits with undo/redo,
save/load of the history and export of the edited model."""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from ..data import DataBundle
from ..device import default_device
from ..editing.choice import EditorChoice, choose_for_config
from ..editing.defaults import DEFAULT_LAYERS
from ..editing.editor import EditorConfig, EditResult, eval_mode
from ..editing.editor import edit as edit_fn
from ..editing.config import check_overrides
from ..editing.inputs import check_images
from ..models import ModelAdapter, ResNet, adapt
from ..models.registry import group_params
from .history_io import HISTORY_FILE, LoadedEdit, read_history, state_hash, to_result, write_history
from .analysis import AnalysisMixin
from .calibrating import CalibrationMixin
from .helpers import (as_index, build_evaluator, bundle_for_model, check_edit_inputs, data_card, default_group,
                      evaluator_fingerprint, export_card, load_bundle, report_from_preds)
from .localization import LocalizationMixin
from .views import ViewMixin
from .records import EditRecord, target_of

# Failed or refused attempts kept (as summaries without tensors, oldest dropped first): a
# record of what was tried, bounded so that a long classroom session cannot grow without end.
MAX_ATTEMPTS = 1000
PROBABILITY_CHUNK = 512  # images per forward pass in probabilities()


class SessionBusy(RuntimeError):
    """Another action (an edit, undo, redo, reset, save or load) is running on this session."""

if TYPE_CHECKING:
    from ..evaluation import EditReport, Evaluator


class EditSession(AnalysisMixin, LocalizationMixin, CalibrationMixin, ViewMixin):
    """Base weights, a stack of applied edits (undo/redo) and the current weights.

    The session edits ``model`` in place (pass a copy to keep the original); ``session.model``
    always holds the current weights, in eval mode, on ``session.device``.

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
            ``config`` at all) take the editor the model learned in Editable Training when the
            card has one for that method and group, else the tuned default
            (``editing.choose_editor``); a model or group without a tuned default gets a calibrated
            step size at its first edit (:meth:`calibrate`); ``session.editor_choice.note`` says which.
            Without ``config``: RMSProp on ``chain3`` for the project's ResNets, else on the last
            group before the head.
        autosave_dir: history folder rewritten (atomically) after every change.
        resume: what to do when ``autosave_dir`` already holds a history: True loads it,
            False replaces it at the next autosave, None (default) raises ValueError.
        device: defaults to :func:`workbench.device.default_device`.
        card: the base model's card (from ``load_model``), copied into exports.
        split, limit: the evaluator's split and size (used by :meth:`image` without an evaluator).
        checkpoint: the base model folder (recorded in saved histories and exports).
        progress: called as ``progress(images_read, total)`` while the evaluator scores the
            base model (a progress line; see :func:`workbench.widgets.show`).

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
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        if not isinstance(model, (nn.Module, ModelAdapter)):
            raise TypeError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
        self.adapter = adapt(model)
        model = self.adapter.model
        shape = self.adapter.input_shape
        if isinstance(bundle, DataBundle) and shape is not None and tuple(bundle.input_shape) != tuple(shape):
            raise ValueError(f"the data set {bundle.name!r} has images {bundle.input_shape} but the model takes "
                             f"{tuple(shape)}; load the data set the model was trained on")
        self.model = model.to(self.device).eval()
        if bundle is not None:
            opts = {k: v for k, v in (("mean", mean), ("std", std), ("normalize", normalize),
                                      ("denormalize", denormalize), ("resize", resize)) if v is not None}
            bundle = bundle_for_model(self.model, bundle, self.device, classes=classes, **opts)
        if config is None and default_group(self.model) != DEFAULT_LAYERS:  # a model without chain3
            config = EditorConfig(layers=default_group(self.model))
        self.bundle, self.split, self.limit = bundle, split, limit
        self.card: dict[str, Any] = dict(card or {})
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.editor_choice: EditorChoice = choose_for_config(self.card, config)
        self.config: EditorConfig = self.editor_choice.config
        self._init_calibration(**dict(calibration or {}))
        self.history: list[EditRecord] = []
        self.attempts: list[EditRecord] = []
        self._redo: list[EditRecord] = []
        self._base = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.base_hash = state_hash(self._base)
        self._shas: dict[str, str] = {}
        self._lock = threading.Lock()
        self._busy_with = ""
        self.last_autosave_error: Exception | None = None
        self.autosave_dir = ad = Path(autosave_dir) if autosave_dir is not None else None
        has_history = ad is not None and (ad / HISTORY_FILE).is_file()
        if ad is not None and ad.exists() and not has_history and (not ad.is_dir() or any(ad.iterdir())):
            raise ValueError(f"autosave_dir {ad} exists and is not an edit-history folder; choose a new or empty "
                             "folder (autosave replaces the folder's contents)")
        if has_history and resume is None:
            raise ValueError(f"{ad} already holds a saved edit history. Pass resume=True to continue it, "
                             "or resume=False to start over (it is replaced at the next change).")
        if evaluator is None and bundle is not None:
            evaluator = build_evaluator(self.adapter, bundle, split, self.config, self.device, limit, progress)
        self.evaluator = evaluator
        if has_history and resume:
            self.load_history(ad)  # type: ignore[arg-type]

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, folder: str | Path, *, bundle: DataBundle | None = None, split: str = "test",
                        limit: int | None = None, device: str | torch.device | None = None,
                        **kw: Any) -> EditSession:
        """A session on a model folder: loads the model, its data set (``card["dataset"]``,
        default Fashion-MNIST, unless ``bundle`` is given) and an Evaluator on ``split``
        (its first ``limit`` images, if given). ``kw`` go to :class:`EditSession`.
        """
        from ..training.checkpoint import load_model

        dev = torch.device(device) if device is not None else default_device()
        model, card = load_model(folder, device=dev)
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
    def can_undo(self) -> bool:
        return bool(self.history)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def redo_stack(self) -> tuple[EditRecord, ...]:
        """Undone edits, the next one to redo last."""
        return tuple(self._redo)

    @property
    def base_state(self) -> dict[str, torch.Tensor]:
        """The base weights and buffers (a copy, on the session's device)."""
        return {k: v.clone() for k, v in self._base.items()}

    def edited_names(self) -> list[str]:
        """Names of every parameter changed by an applied edit (order of first edit)."""
        names: list[str] = []
        for rec in self.history:
            names += [n for n in rec.result.after if n not in names]
        return names

    def params_at(self, step: int | None = None) -> dict[str, torch.Tensor]:
        """The edited parameters after ``step`` applied edits (0 = base; default: now).

        Returns name -> tensor for :meth:`edited_names` (pass it to ``Evaluator.score`` or
        to attribution as ``params``).
        """
        n = len(self.history) if step is None else step
        if not 0 <= n <= len(self.history):
            raise ValueError(f"step must be in 0..{len(self.history)}, got {step}")
        out = {k: self._base[k] for k in self.edited_names()}
        for rec in self.history[:n]:
            out.update(rec.result.after)
        return out

    def current_report(self) -> EditReport | None:
        """Cumulative report of the current weights against the base (None before any edit
        or without an evaluator)."""
        return self.history[-1].report if self.history else None

    # -- editing -----------------------------------------------------------------------
    def edit(self, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor, config: EditorConfig | None = None,
             *, index: int | Sequence[int] | None = None, score: bool = True, **overrides: Any) -> EditResult:
        """Edit the current weights so that the model predicts ``y_ref`` for ``x``.

        Args:
            x: ``(C, H, W)`` or a batch ``(N, C, H, W)`` float, normalised (one edit for all N).
            y_ref: the target label, or N labels for a batch (the record's ``target`` is an int
                for a single image, a tuple for a batch).
            config: editor settings (default ``session.config``); ``overrides`` replace fields.
                Unset lr/beta, and overrides that change the method or group, take the learned
                editor where it applies, else the tuned default (``editing.choose_editor``).
            index: the images' indices in the evaluator's split (recorded), if known.
            score: False pushes the record without its reports (the UI shows the outcome
                first, then calls :meth:`complete_reports`); the weights are the same.
        Returns:
            The :class:`EditResult`. An accepted edit (``result.accepted``) is applied and
            pushed (the redo stack is cleared). A failed edit, or one the edit guard flags as
            wrecking the model (``result.wrecked``: NaN/inf or a change larger than the weights,
            see ``editing.guard``), leaves the weights exactly as they were and goes to
            ``attempts`` as a summary (no tensors). An edit whose target the model already
            predicts (0 steps) records nothing. Treat its tensors as read-only: ``before``
            shares storage with the session's state.
        Raises:
            ValueError, TypeError: bad input (the editor's checks, a non-integer index);
                nothing changes.
            SessionBusy: another action is running on this session; nothing changes.
        """
        idx = None if index is None else as_index(index)
        check_overrides(config, overrides)
        check_edit_inputs(self.bundle, x, y_ref)
        with self._exclusive("an edit"):
            return self._edit(x, y_ref, config, idx, overrides, score)

    def _edit(self, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor, config: EditorConfig | None,
              idx: int | tuple[int, ...] | None, overrides: Mapping[str, Any], score: bool = True) -> EditResult:
        result = edit_fn(self.adapter, x, y_ref, self._config_for(config, overrides))
        target = target_of(result.y_ref, isinstance(x, torch.Tensor) and x.dim() == 4)
        if result.wrecked:  # the guard flagged it: refused, whatever the constraint says
            result = dataclasses.replace(result, message=f"not applied (the model is unchanged): {result.message}")
        if not result.accepted:
            # kept as a summary (no tensors): 200 failed whole-model attempts used to hold 409 MiB
            self.attempts.append(EditRecord(dataclasses.replace(result, before={}, after={}), idx, target,
                                            timestamp=time.time()))
            del self.attempts[:-MAX_ATTEMPTS]
            self._autosave()
            return result
        if result.steps == 0:  # the model already predicts y_ref: nothing changed, nothing to record
            return result
        current = self.params_at()
        report, step_report = self._score({**current, **result.after}, self._preds_now()) if score else (None, None)
        for n, v in result.before.items():  # share bit-identical tensors: halves the memory per edit
            same = current.get(n, self._base.get(n))
            if same is not None and torch.equal(v, same):
                result.before[n] = same
        result.apply(self.model)
        self.history.append(EditRecord(result, idx, target, report, step_report, time.time()))
        self._redo.clear()
        self._autosave()
        return result

    def _config_for(self, config: EditorConfig | None, overrides: Mapping[str, Any]) -> EditorConfig:
        """The editor of one edit: ``config`` (or the session's) with ``overrides``."""
        if config is None:
            self._ensure_calibrated()  # the session's own editor, once, where it has no tuned default
        if config is None and not overrides:
            return self.config
        if config is None:  # the session's lr/beta carry over only while the method and group stay
            c = self.config
            same = all(k not in overrides for k in ("method", "layers"))
            config = EditorConfig(c.method, c.lr if same else None, c.beta if same else None, c.beta2,
                                  c.max_steps, c.layers)
        return self._calibrated_choice(choose_for_config(self.card, config, **overrides)).config

    def edit_index(self, index: int | Sequence[int], y_ref: int | Sequence[int] | torch.Tensor,
                   config: EditorConfig | None = None, *, score: bool = True, **overrides: Any) -> EditResult:
        """Edit image(s) ``index`` of the evaluator's split (a list of indices = batch edit).

        ``index``: an int (numpy and torch integers too) or a sequence of them; a string or
        a float is refused with TypeError. ``score``: see :meth:`edit`.
        """
        idx = as_index(index)
        return self.edit(self.image(idx), y_ref, config, index=idx, score=score, **overrides)

    def undo(self) -> EditRecord:
        """Restore the weights from before the last edit, bit for bit; returns its record."""
        with self._exclusive("undo"):
            if not self.history:
                raise ValueError("nothing to undo: no edit is applied")
            rec = self.history[-1]
            rec.result.revert(self.model)
            self._redo.append(self.history.pop())
            self._autosave()
            return rec

    def redo(self) -> EditRecord:
        """Re-apply the last undone edit; returns its record."""
        with self._exclusive("redo"):
            if not self._redo:
                raise ValueError("nothing to redo: no edit was undone since the last edit")
            rec = self._redo[-1]
            rec.result.apply(self.model)
            self.history.append(self._redo.pop())
            self._autosave()
            return rec

    def reset(self) -> None:
        """Back to the base weights; history and redo stack cleared (attempts kept: they hold
        summaries only, at most :data:`MAX_ATTEMPTS`)."""
        with self._exclusive("reset"):
            self.model.load_state_dict(self._base)
            self.history.clear()
            self._redo.clear()
            self._autosave()

    @contextlib.contextmanager
    def _exclusive(self, action: str) -> Iterator[None]:
        """Hold the session's lock for one state change; a concurrent call (a second click
        while an edit runs, another thread) gets :class:`SessionBusy` and changes nothing."""
        if not self._lock.acquire(blocking=False):
            raise SessionBusy(f"the session is busy with {self._busy_with}; wait for it to finish, then try again")
        self._busy_with = action
        try:
            yield
        finally:
            self._busy_with = ""
            self._lock.release()

    @property
    def busy(self) -> bool:
        """True while an edit, undo, redo, reset or load runs."""
        return self._lock.locked()

    # -- scoring -----------------------------------------------------------------------
    def _preds_now(self) -> torch.Tensor | None:
        ev = self.evaluator
        if ev is None:
            return None
        if not self.history:
            return ev.base_preds
        last = self.history[-1].report
        return last.preds_after if last is not None else ev.score(self.params_at()).preds_after

    def _score(self, params: Mapping[str, torch.Tensor], prev_preds: torch.Tensor | None
               ) -> tuple[EditReport | None, EditReport | None]:
        ev = self.evaluator
        if ev is None:
            return None, None
        return ev.score(params), ev.score(params, reference_preds=prev_preds)

    # -- data helpers ------------------------------------------------------------------
    def image(self, index: int | Sequence[int]) -> torch.Tensor:
        """Normalised image(s) of the split: ``(C, H, W)`` for an int, ``(N, C, H, W)`` for a list."""
        index = as_index(index)
        if isinstance(index, tuple):
            return torch.stack([self.image(i) for i in index])
        n = self.num_examples
        if isinstance(index, bool) or not 0 <= index < n:
            raise ValueError(f"index {index!r} out of range: the {self.split} split has {n} images (0..{n - 1})")
        if self.evaluator is not None:
            return self.evaluator.image(index).to(self.device)
        assert self.bundle is not None
        x = self.bundle.split(self.split)[0][index:index + 1]
        return self.bundle.normalize(x.to(self.device))[0]

    @property
    def num_examples(self) -> int:
        """Images in the split (after ``limit``); ValueError without data."""
        if self.evaluator is not None:
            return int(len(self.evaluator.labels))
        if self.bundle is None:
            raise ValueError("this session has no data set; pass images to edit() or build it with a bundle")
        n = len(self.bundle.split(self.split)[1])
        return n if self.limit is None else min(n, self.limit)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor | int) -> torch.Tensor:
        """Softmax of the current model: ``(C,)`` for one image (or an index), ``(N, C)`` for a batch.

        ``x`` is checked as :meth:`edit` checks it (same shape error); a batch runs in chunks."""
        xi = x if isinstance(x, torch.Tensor) else self.image(x)  # type: ignore[arg-type]
        check_edit_inputs(self.bundle, xi, ())
        xb = check_images(self.adapter, xi)
        with eval_mode(self.model):
            out = torch.cat([torch.softmax(self.model(c).float(), -1).cpu() for c in xb.split(PROBABILITY_CHUNK)])
        return out[0] if xi.dim() == 3 else out

    # -- persistence -------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        cfg = self.model.config() if isinstance(self.model, ResNet) else None
        return {"base_sha256": self.base_hash, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                "arch": self.card.get("arch"), "model_config": cfg,
                "config": self.config.to_dict(), "evaluator": evaluator_fingerprint(self.evaluator),
                "saved_at": time.time()}

    def save(self, folder: str | Path) -> Path:
        """Write the history (applied edits, redo stack, failed attempts) to ``folder``
        atomically: ``history.json`` + ``edits/<uid>.safetensors``. Returns the folder."""
        with self._exclusive("a save"):
            return self._save(folder)

    def _save(self, folder: str | Path) -> Path:
        return write_history(Path(folder), self._header(), self.history, self._redo, self.attempts, self._shas)

    def _autosave(self) -> None:
        if self.autosave_dir is None:
            return
        try:
            self._save(self.autosave_dir)
            self.last_autosave_error = None
        except (OSError, ValueError) as err:
            self.last_autosave_error = err
            warnings.warn(f"autosave to {self.autosave_dir} failed: {err}", RuntimeWarning, stacklevel=3)

    def load_history(self, folder: str | Path, *, rescore: bool = True) -> None:
        """Replace this session's history with the one saved in ``folder`` and move the
        weights to its state, bit for bit.

        Everything is validated and rebuilt first (files, hashes, the base weights,
        parameter names and shapes); on any problem a ValueError names it and the session
        is left exactly as it was. With ``rescore`` (and an evaluator) the reports are rebuilt:
        from the saved predictions when the evaluator's split matches the saved one, else
        by scoring each state again.
        """
        with self._exclusive("loading a history"):
            self._load_history(folder, rescore)

    def _load_history(self, folder: str | Path, rescore: bool) -> None:
        params = dict(self.model.named_parameters())
        loaded = read_history(folder, {n: p.detach() for n, p in params.items()}, self.base_hash,
                              self.num_classes,
                              check_layers=lambda layers: group_params(self.adapter, layers))
        state: dict[str, torch.Tensor] = {}
        ev = self.evaluator if rescore else None
        preds = ev.base_preds if ev is not None else None
        saved_ok = ev is not None and loaded.header.get("evaluator") == evaluator_fingerprint(ev)

        def build(item: LoadedEdit) -> EditRecord:
            nonlocal preds
            after = {n: v.to(self.device) for n, v in item.after.items()}
            before = {n: state.get(n, self._base[n]) for n in after}
            state.update(after)
            report = step = None
            if ev is not None and preds is not None:
                if saved_ok and item.preds is not None and len(item.preds) == len(preds):
                    report = report_from_preds(ev, item.preds, ev.base_preds)
                    step = report_from_preds(ev, item.preds, preds)
                else:
                    report, step = self._score(dict(state), preds)
                preds = report.preds_after if report is not None else None
            m = item.meta
            idx = m.get("index")
            target = target_of(item.y_ref, bool(m.get("batch")))
            return EditRecord(to_result(item, before, after), tuple(idx) if isinstance(idx, list) else idx,
                              target, report, step, float(m.get("timestamp", 0.0)), str(m["uid"]))

        applied = [build(it) for it in loaded.applied]
        final = dict(state)
        redo = [build(it) for it in reversed(loaded.redo)][::-1]
        attempts = []
        for it in loaded.attempts:
            idx = it.meta.get("index")
            attempts.append(EditRecord(to_result(it, {}, {}), tuple(idx) if isinstance(idx, list) else idx,
                                       target_of(it.y_ref, bool(it.meta.get("batch"))), None, None,
                                       float(it.meta.get("timestamp", 0.0)), str(it.meta["uid"])))
        # everything validated and built: swap
        self.model.load_state_dict(self._base)
        with torch.no_grad():
            for n, v in final.items():
                params[n].copy_(v)
        self.history, self._redo, self.attempts = applied, redo, attempts
        for it in loaded.applied + loaded.redo:
            self._shas.update(it.files)
        if self.autosave_dir is not None and Path(folder).resolve() != self.autosave_dir.resolve():
            self._autosave()

    def export(self, folder: str | Path, *, builder: Any = None) -> Path:
        """Save the current weights as a model folder (``model.safetensors`` + ``card.json``
        listing the edits, the base model's card, the classes, image shape and normalisation);
        ``load_model`` reads it back. ``builder``: how to rebuild the model, for a model the
        card cannot infer (see :func:`workbench.training.save_model`)."""
        from ..training.checkpoint import save_model

        folder = Path(folder)
        if self.checkpoint is not None and folder.resolve() == Path(self.checkpoint).resolve():
            raise ValueError(f"{folder} is the base model's folder; export the edited model to a new folder")
        if (folder / HISTORY_FILE).exists():
            raise ValueError(f"{folder} holds an edit history; export the model to a separate folder")
        card = export_card(self.card, self.history, self.base_hash, self.checkpoint, self.current_report(),
                           self.split, self.num_examples if self.current_report() is not None else None)
        card.update(self.calibration_card())
        for k, v in data_card(self.bundle).items():
            card.setdefault(k, v)
        return save_model(folder, self.model, card, builder=builder)

    def __repr__(self) -> str:
        return (f"EditSession({len(self.history)} edit(s) applied, {len(self._redo)} to redo, "
                f"{len(self.attempts)} failed attempt(s), device={self.device}; {self.editor_choice.note})")

