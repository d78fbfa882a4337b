"""The edit session: base weights, edit stack with undo/redo, save/load, export."""
from .history_io import HISTORY_FILE, read_history, state_hash, write_history
from .records import EditRecord
from .session import MAX_ATTEMPTS, EditSession, SessionBusy

__all__ = ["EditRecord", "EditSession", "MAX_ATTEMPTS", "SessionBusy", "HISTORY_FILE", "read_history", "state_hash", "write_history"]
