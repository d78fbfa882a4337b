"""Writing a save folder safely: a lock file inside it, one atomic step per file, no overwrite
without consent.

A save (an edit history, an exported model) is written *in place*, inside the folder the user
gave, never beside it:

* :func:`folder_lock` holds ``<folder>/.lock`` (``fcntl.flock``) for the whole save, so two
  processes saving to one folder take turns; a reader takes it shared. A lock held longer than
  :data:`LOCK_TIMEOUT_S` gives :class:`FolderBusy`, in words.
* :func:`replace_file` writes a file through ``<folder>/.tmp-<random>`` (flushed to disk), then
  one ``os.replace``: a reader sees the old file or the new one, never a half-written one. A
  process killed mid-way leaves at most a ``.tmp-`` file inside the folder; the next save
  removes it (:func:`clean_tmp`).
* :class:`FolderExists` is the refusal to replace someone else's save; the caller offers
  ``overwrite=True`` (the widgets: an "Overwrite" button) or another name.

Locks use ``fcntl`` (Linux, macOS); where it is missing (Windows) saves run unlocked.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
# A save of the largest history (MAX_HISTORY_BYTES plus its tensors) takes seconds; a lock held
# for a minute belongs to a process that hangs, and the user is told so instead of waiting on.
LOCK_TIMEOUT_S = 60.0


class FolderExists(FileExistsError, ValueError):
    """The folder already holds a save that this call may not replace (pass ``overwrite=True``
    to replace it, or choose another folder). ``folder`` is the path."""

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder

    def __str__(self) -> str:
        return str(self.args[0])


class FolderBusy(TimeoutError):
    """Another process held the folder's lock for longer than :data:`LOCK_TIMEOUT_S`."""


def new_id() -> str:
    """A random id for one save (16 hex digits): what a later save checks it may replace."""
    return uuid.uuid4().hex[:16]


def _open_regular(path: Path, flags: int) -> int | None:
    """An fd on the regular file ``path`` (never following a symlink, never blocking on a FIFO),
    or None when ``path`` is missing, a symlink or not a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, *, shared: bool = False,
                timeout: float | None = None) -> Iterator[None]:
    """Hold ``<folder>/.lock``: exclusive for a save (creates the file), shared for a read
    (without a lock file, or where it is not a regular file, a read goes on unlocked).

    Raises:
        FolderBusy: the lock stayed taken for ``timeout`` seconds (default :data:`LOCK_TIMEOUT_S`;
            ``what`` names the action).
        ValueError: (exclusive) ``.lock`` is a symlink or not a regular file.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = Path(folder) / LOCK_FILE
    fd = _open_regular(path, os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT)
    if fd is None:
        if shared:
            yield
            return
        raise ValueError(f"{path} is not a regular file (a symlink, folder or FIFO); a save folder's .lock "
                         "must be a plain file: remove it, or save to another folder")
    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    try:
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FolderBusy(f"{what} waited {timeout:g} s for {folder}: another process is saving there "
                                     "and has not finished; try again in a moment, or use another name") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def replace_file(folder: Path, dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` (inside ``folder``) in one atomic step: a temporary file in
    ``folder``, flushed to disk, then ``os.replace``. On an error the temporary file is removed
    and ``dest`` is as it was."""
    tmp = Path(folder) / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def clean_tmp(folder: Path) -> None:
    """Remove the ``.tmp-`` files and folders that a killed save left in ``folder`` (call it
    holding the lock)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for p in Path(folder).iterdir():
            if not p.name.startswith(TMP_PREFIX):
                continue
            with contextlib.suppress(FileNotFoundError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()


def real_dir(path: Path) -> Path:
    """``path`` as a real folder: a symlink or file in its place (a tampered save) is removed
    first, so nothing written under it lands elsewhere."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)
    return path


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused (ValueError) above ``limit`` bytes
    before anything is read (and never more than ``limit + 1`` bytes are read)."""
    fd = _open_regular(path, os.O_RDONLY)
    if fd is None:
        raise ValueError(f"{path} is missing or not a regular file")
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ValueError(f"{what} {path.name} is {size / 2**20:.1f} MiB, above the limit of "
                             f"{limit / 2**20:.0f} MiB; it was not read (no save of this workbench is that large)")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} {path.name} grew above the limit of {limit / 2**20:.0f} MiB while it was read")
    return data
