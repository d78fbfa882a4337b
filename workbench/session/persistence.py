"""Persistence of an :class:`~workbench.session.EditSession`: the history folder (save, autosave,
load; the files are written by :mod:`workbench.session.history_io` and read by
:mod:`workbench.session.history_read`) and the export of the edited model as a model folder.

A save never replaces another session's: ``save(folder)`` and ``export(folder)`` replace what
``folder`` holds only with ``overwrite=True``, or when it still holds this session's own last
save there (``_saved``: folder -> the ``save_id``/``export_id`` this session wrote). A loaded
history must start from this session's very weights (per-edit ``before_sha256``), pass the edit
guard, and name only images of this session's split."""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..editing.guard import MAX_RELATIVE_CHANGE, check_edit
from ..folder_io import new_id
from ..models import ModelAdapter, ResNet
from ..models.registry import group_params
from .data import SessionData
from .helpers import data_card, evaluator_fingerprint, export_card, report_from_preds
from .history_io import check_target, saved_id, state_hash, write_history
from .history_read import LoadedEdit, read_history, to_result
from .history_schema import HISTORY_FILE, edit_file, report_file
from .edit_record import EditRecord, target_of
from .scoring import Scoring
from .stack import EditStack

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..evaluation import Evaluator
    from ..evaluation.editor_resolver import EditorResolver


def check_autosave_dir(folder: Path | None, resume: bool | None) -> bool:
    """Whether ``folder`` holds a history to resume; ValueError when it is not a history folder
    (and not empty), or holds one and ``resume`` is None (the message names both choices)."""
    has_history = folder is not None and (folder / HISTORY_FILE).is_file()
    if folder is not None and not has_history:
        check_target(folder, overwrite=True)  # a file, or a folder holding other things, is refused
    if has_history and resume is None:
        raise ValueError(f"{folder} already holds a saved edit history. Pass resume=True to continue it, "
                         "or resume=False to start over (it is replaced at the next change).")
    return has_history


class Persistence:
    """Save, autosave, load and export for one session.

    Args:
        stack: the edit stack (saved and restored; its lock makes each call exclusive).
        adapter: the model's adapter (``adapter.model`` holds the current weights).
        scoring: rebuilds the reports of a loaded history.
        data: the split (its name and size, recorded in exports).
        editor: the session's editor resolver (its config is saved; its calibrations exported).
        evaluator, bundle, card, checkpoint, device: the session's (see ``EditSession``).
        num_classes: the model's class count (checked against a loaded history), or None.
        autosave_dir: history folder rewritten (atomically) after every change, or None. A
            history already there (the session was opened with ``resume``) may be replaced; if
            another process saves there meanwhile, the autosave is refused (a warning and
            ``last_autosave_error``) rather than overwrite it.
    """

    def __init__(self, stack: EditStack, adapter: ModelAdapter, scoring: Scoring, data: SessionData,
                 editor: EditorResolver, *, evaluator: Evaluator | None, bundle: DataBundle | None,
                 card: Mapping[str, Any], checkpoint: Path | None, device: torch.device, num_classes: int | None,
                 autosave_dir: Path | None) -> None:
        self.stack, self.adapter, self.model, self.scoring, self.data = stack, adapter, adapter.model, scoring, data
        self.editor, self.evaluator, self.bundle, self.card = editor, evaluator, bundle, card
        self.checkpoint, self.device, self.num_classes = checkpoint, device, num_classes
        self.autosave_dir = autosave_dir
        self.last_autosave_error: Exception | None = None
        self._shas: dict[str, str] = {}  # file name -> SHA-256 of the tensor files saved or loaded
        self._before_shas: dict[str, str] = {}  # uid -> SHA-256 of the weights the edit started from
        self._saved: dict[str, str] = {}  # resolved folder (exports: "export:" + folder) -> id written there
        if autosave_dir is not None and (autosave_dir / HISTORY_FILE).is_file():  # opened with resume: consent
            self._saved[str(autosave_dir.resolve())] = saved_id(autosave_dir) or ""

    def header(self) -> dict[str, Any]:
        """The history file's header: base hash, checkpoint, model, editor, evaluator fingerprint."""
        cfg = self.model.config() if isinstance(self.model, ResNet) else None
        return {"base_sha256": self.stack.base_hash, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                "arch": self.card.get("arch"), "model_config": cfg,
                "config": self.editor.config.to_dict(), "evaluator": evaluator_fingerprint(self.evaluator),
                "saved_at": time.time()}

    def forget(self, uid: str) -> None:
        """The tensors of edit ``uid`` changed (its strength): its files are written again at the next save."""
        for name in (edit_file(uid), report_file(uid)):
            self._shas.pop(name, None)

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the history (applied edits, redo stack, failed attempts) to ``folder``
        atomically: ``history.json`` + ``edits/<uid>.safetensors``. Returns the folder.

        A folder already holding a history is replaced only with ``overwrite=True``, or when it
        still holds this session's own last save there (saving again after more edits).

        Raises:
            FolderExists: (a ValueError) ``folder`` holds another history; nothing is written.
            FolderBusy: another process kept the folder locked for a minute.
        """
        with self.stack.exclusive("a save"):
            return self.write(folder, overwrite)

    def write(self, folder: str | Path, overwrite: bool = False) -> Path:
        """:meth:`save` for a caller that holds the stack's lock."""
        st, folder = self.stack, Path(folder)
        key, sid = str(folder.resolve()), new_id()
        write_history(folder, {**self.header(), "save_id": sid}, st.history, st.undone, st.attempts, self._shas,
                      overwrite=overwrite, replaces=self._saved.get(key), before_shas=self._before_shas)
        self._saved[key] = sid
        return folder

    def autosave(self) -> None:
        """Rewrite ``autosave_dir`` (if set); a failure warns and is kept in ``last_autosave_error``."""
        if self.autosave_dir is None:
            return
        try:
            self.write(self.autosave_dir)
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
        self.scoring.cancel_exact()
        with self.stack.exclusive("loading a history"):
            self._load_history(folder, rescore)

    def _load_history(self, folder: str | Path, rescore: bool) -> None:
        params = dict(self.model.named_parameters())
        has_data = self.evaluator is not None or self.bundle is not None
        loaded = read_history(folder, {n: p.detach() for n, p in params.items()}, self.stack.base_hash,
                              self.num_classes, check_layers=lambda layers: group_params(self.adapter, layers),
                              num_examples=self.data.num_examples if has_data else None)
        state: dict[str, torch.Tensor] = {}
        ev = self.evaluator if rescore else None
        preds = ev.base_preds if ev is not None else None
        saved_ok = ev is not None and loaded.header.get("evaluator") == evaluator_fingerprint(ev)

        def build(item: LoadedEdit) -> EditRecord:
            nonlocal preds
            after = {n: v.to(self.device) for n, v in item.after.items()}
            full = {n: v.to(self.device) for n, v in item.full.items()} if item.full is not None else None
            before = {n: state.get(n, self.stack.base[n]) for n in after}
            check_loaded(folder, item, before, after)
            if full is not None:  # the edit as made, which the strength slider can go back to
                check_loaded(folder, item, before, full)
            state.update(after)
            report = step = None
            if ev is not None and preds is not None:
                if saved_ok and item.preds is not None and len(item.preds) == len(preds):
                    report = report_from_preds(ev, item.preds, ev.base_preds)
                    step = report_from_preds(ev, item.preds, preds)
                else:
                    report, step = self.scoring.score(dict(state), preds)
                preds = report.preds_after if report is not None else None
            m = item.meta
            idx = m.get("index")
            target = target_of(item.y_ref, bool(m.get("batch")))
            return EditRecord(to_result(item, before, after), tuple(idx) if isinstance(idx, list) else idx,
                              target, report, step, float(m.get("timestamp", 0.0)), str(m["uid"]),
                              float(m.get("strength", 1.0)), full)

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
        self.model.load_state_dict(self.stack.base)
        with torch.no_grad():
            for n, v in final.items():
                params[n].copy_(v)
        self.stack.history, self.stack.undone, self.stack.attempts = applied, redo, attempts
        for it in loaded.applied + loaded.redo:
            self._shas.update(it.files)
            self._before_shas[str(it.meta["uid"])] = str(it.meta["before_sha256"])
        if self.autosave_dir is not None and Path(folder).resolve() != self.autosave_dir.resolve():
            self.autosave()

    def export(self, folder: str | Path, *, builder: Any = None, trust_code: bool = False,
               overwrite: bool = False) -> Path:
        """Save the current weights as a model folder (``model.safetensors`` + ``card.json``
        listing the edits, the base model's card, the classes, image shape and normalisation);
        ``load_model`` reads it back. ``builder``: how to rebuild the model, for a model the
        card cannot infer (see :func:`workbench.training.save_model`); a ``module:factory``
        builder of your own code is checked by building it, with ``trust_code=True``.

        A folder already holding a model is replaced only with ``overwrite=True``, or when it
        still holds this session's own last export there; the replacement keeps the previous
        model until the new one is complete (see ``save_model``).

        Raises:
            FolderExists: (a ValueError) ``folder`` holds another model; nothing is written.
        """
        from ..training.checkpoint import save_model

        folder = Path(folder)
        if self.checkpoint is not None and folder.resolve() == Path(self.checkpoint).resolve():
            raise ValueError(f"{folder} is the base model's folder; export the edited model to a new folder")
        if (folder / HISTORY_FILE).exists():
            raise ValueError(f"{folder} holds an edit history; export the model to a separate folder")
        report = self.stack.current_report()
        card = export_card(self.card, self.stack.history, self.stack.base_hash, self.checkpoint, report,
                           self.data.split, self.data.num_examples if report is not None else None)
        card.update(self.editor.card_entry())
        for k, v in data_card(self.bundle).items():
            card.setdefault(k, v)
        key, eid = "export:" + str(folder.resolve()), new_id()
        card["export_id"] = eid
        save_model(folder, self.model, card, builder=builder, trust_code=trust_code, overwrite=overwrite,
                   replaces=self._saved.get(key))
        self._saved[key] = eid
        return folder


def check_loaded(folder: str | Path, item: LoadedEdit, before: Mapping[str, torch.Tensor],
                 after: Mapping[str, torch.Tensor]) -> None:
    """A saved edit must start from these very weights (``before_sha256``) and pass the edit
    guard, as a live edit must; ValueError (naming the entry) otherwise."""
    fail = f"cannot load the edit history in {folder}: {item.where}"
    if state_hash(before) != item.meta["before_sha256"]:
        raise ValueError(f"{fail} was made on other weights than this session's (its before_sha256 does not "
                         "match the weights it would change): the history belongs to another base model; load "
                         "it with the checkpoint it was made from")
    verdict = check_edit(before, after)
    if verdict.wrecked:
        why = (f"changes the edited weights by {verdict.relative_change:.3g}x their norm"
               if math.isfinite(verdict.relative_change) else "holds values that are not finite")
        raise ValueError(f"{fail} {why}; the edit guard refuses such an edit (it allows "
                         f"{MAX_RELATIVE_CHANGE:g}x), so the history was not loaded")
