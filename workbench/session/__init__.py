"""The edit session: a facade over the edit stack, scoring, inspection, localization, uploads
and persistence (see :class:`EditSession`)."""
from .history_io import HISTORY_FILE, read_history, state_hash, write_history
from .edit_record import EditRecord
from .opening import default_checkpoint, open_session, resolve_checkpoint
from .session import MAX_ATTEMPTS, EditSession, SessionBusy

__all__ = ["EditRecord", "EditSession", "HISTORY_FILE", "MAX_ATTEMPTS", "SessionBusy", "default_checkpoint",
           "open_session", "read_history", "resolve_checkpoint", "state_hash", "write_history"]
