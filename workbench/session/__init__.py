"""The edit session: a facade over the edit stack, scoring, inspection, localization, uploads
and persistence (see :class:`EditSession`)."""
from ..folder_io import FolderBusy, FolderExists
from .history_io import state_hash, write_history
from .history_read import read_history
from .history_schema import HISTORY_FILE, MAX_ATTEMPTS
from .edit_record import EditRecord
from .opening import default_checkpoint, open_session, resolve_checkpoint
from .session import EditSession, SessionBusy

__all__ = ["EditRecord", "EditSession", "FolderBusy", "FolderExists", "HISTORY_FILE", "MAX_ATTEMPTS", "SessionBusy",
           "default_checkpoint", "open_session", "read_history", "resolve_checkpoint", "state_hash", "write_history"]
