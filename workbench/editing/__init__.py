"""The editor: constraint, gradient methods, ``edit() -> EditResult``."""
from .choice import SOURCES, EditorChoice, choose_editor, choose_for_config, learned_editor
from .constraint import edit_loss, satisfied
from .config import with_overrides
from .editor_defaults import (DEFAULT_GROUP, DEFAULT_MAX_STEPS, DEFAULTS, GROUP_DEFAULTS, MAX_EDIT_BATCH, MAX_STEPS_LIMIT,
                       default_for)
from .editor import EditorConfig, EditResult, EditTrace, edit, eval_mode, run_editor
from .inputs import check_images, check_inputs
from .guard import COST_WARNING_PP, MAX_RELATIVE_CHANGE, GuardVerdict, check_edit
from .optimizers import METHODS, get_method

__all__ = ["COST_WARNING_PP", "DEFAULTS", "DEFAULT_GROUP", "DEFAULT_MAX_STEPS", "EditResult", "EditTrace",
           "EditorChoice", "EditorConfig", "GROUP_DEFAULTS", "GuardVerdict", "MAX_EDIT_BATCH", "MAX_RELATIVE_CHANGE",
           "MAX_STEPS_LIMIT", "METHODS", "SOURCES", "check_edit", "check_images", "check_inputs", "choose_editor",
           "choose_for_config", "default_for", "edit", "edit_loss", "eval_mode", "get_method", "learned_editor",
           "run_editor", "satisfied", "with_overrides"]
