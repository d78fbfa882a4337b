"""Handing results of background threads to the thread that owns the widgets.

The session scores in background threads (the base model at open, the exact reports after a
click) and calls back from there. Widget state belongs to the kernel's main thread: a
:class:`MainThread` runs each update there. In a Jupyter kernel the update is scheduled on the
kernel's event loop (thread-safe); without a kernel (a script, a test) it is queued and run at
the controller's next action or at :meth:`MainThread.drain`. Called on the main thread, an
update runs at once.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable

__all__ = ["MainThread", "kernel_loop"]


def kernel_loop() -> Any:
    """The running IPython kernel's event loop (``add_callback`` is thread-safe), or None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(getattr(shell, "kernel", None), "io_loop", None)


class MainThread:
    """Runs updates on the main thread (see the module docstring).

    Args:
        loop: an event loop with a thread-safe ``add_callback(fn)``; default: the kernel's, if any.
    """

    def __init__(self, loop: Any = None) -> None:
        self.loop = loop if loop is not None else kernel_loop()
        self._queue: collections.deque[Callable[[], None]] = collections.deque()

    @property
    def delivers(self) -> bool:
        """Whether updates posted from other threads arrive by themselves (an event loop runs them)."""
        return self.loop is not None

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the main thread: now when called there, else soon."""
        if threading.current_thread() is threading.main_thread():
            self.drain()
            fn()
        elif self.loop is not None:
            self.loop.add_callback(fn)
        else:
            self._queue.append(fn)

    def drain(self) -> None:
        """Run the queued updates, oldest first (on the main thread)."""
        while self._queue:
            self._queue.popleft()()
