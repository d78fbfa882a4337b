"""The edit session: a facade over the edit stack, scoring, inspection, localization, uploads
and persistence (see :class:`EditSession`).

:class:`EditSession` builds its parts (:mod:`workbench.session.parts`) and binds their members
as its own (``session.confusion`` is ``session.scoring.confusion``). Its parts, and the
session's members that are theirs:

- ``actions`` (:class:`~workbench.session.actions.EditActions`): ``edit``, ``edit_index``, ``undo``,
  ``redo``, ``reset``;
- ``stack`` (:class:`~workbench.session.stack.EditStack`): ``history``, ``attempts``, ``redo_stack``,
  ``can_undo``, ``can_redo``, ``busy``, ``base_state``, ``base_hash``, ``edited_names``, ``params_at``,
  ``current_report``, ``applied_record`` (was this edit applied?);
- ``data`` (:class:`~workbench.session.data.SessionData`): ``classes``, ``labels``, ``num_examples``,
  ``image``, ``raw_images``;
- ``scoring`` (:class:`~workbench.session.scoring.Scoring`): ``base_error``, ``base_preds``,
  ``current_preds``, ``current_errors``, ``confusion``, ``estimate_sample``, ``estimate_last``,
  ``complete_reports``, ``exact_async``, ``scoring_note``;
- ``base_scoring`` (:class:`~workbench.session.background.BaseScoring`, progressive open):
  ``scoring_progress``, ``wait_scored``, ``on_scoring_progress``;
- ``inspection`` (:class:`~workbench.session.inspection.Inspection`): ``explain``, ``generalization``,
  ``probabilities``, ``base_probabilities``, ``cam_layers``, ``default_cam_layer``;
- ``localization`` (:class:`~workbench.session.localization.Localization`): ``localize``,
  ``cached_localization``, ``localized_counts``, ``label_quality``, ``label_scores`` ("likely
  mislabeled": training dynamics when the folder has them, else self-confidence);
- ``scaling`` (:class:`~workbench.session.strength.EditStrength`): ``set_strength``,
  ``smallest_fixing_strength``, ``edit_fixed`` (the last edit's weight change, scaled by a
  strength in [0, 1]);
- ``uploads`` (:class:`~workbench.session.uploads.Uploads`): ``input_shape``, ``image_from_bytes``,
  ``normalize``;
- ``persistence`` (:class:`~workbench.session.persistence.Persistence`): ``save``, ``load_history``,
  ``export``, ``autosave_dir``, ``last_autosave_error``;
- ``editor`` (:class:`~workbench.evaluation.editor_resolver.EditorResolver`, the one resolver of
  the editor): ``config``, ``editor_choice``, ``editor_note``, ``resolve_editor``, ``calibrate``,
  ``calibrations``, ``calibration_settings``, ``needs_calibration``, ``prepare_editor``,
  ``calibration_card``.
"""
from ..folder_io import FolderBusy, FolderExists
from .history_io import state_hash, write_history
from .history_read import read_history
from .history_schema import HISTORY_FILE, MAX_ATTEMPTS
from .edit_record import EditRecord
from .opening import default_checkpoint, open_session, resolve_checkpoint
from .session import EditSession, SessionBusy

__all__ = ["EditRecord", "EditSession", "FolderBusy", "FolderExists", "HISTORY_FILE", "MAX_ATTEMPTS", "SessionBusy",
           "default_checkpoint", "open_session", "read_history", "resolve_checkpoint", "state_hash", "write_history"]
