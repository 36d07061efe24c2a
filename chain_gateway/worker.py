"""The one background-thread pattern the gateway's workers share (the payment submitter, the FX
submitter, the queue worker): a daemon thread running ``_run`` until ``stop``, woken early by
``notify`` instead of waiting out its poll interval."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class WorkerThread(ABC):
    """Base of a worker with one daemon thread.

    A subclass calls ``WorkerThread.__init__`` with the thread's name and implements ``_run`` as
    ``while not self._stop.is_set(): self._wake.clear(); <look for work>; self._wake.wait(poll)``:
    clearing the wake flag before looking means a ``notify()`` that lands after the look is not
    lost. ``stop()`` lets the current step finish (a submitter waits for its receipts), then joins.
    """

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _run(self) -> None:
        """The worker's loop (see the class docstring)."""

    def _start_thread(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end, wake it, and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        """New work was committed: wake the worker now instead of at its next poll."""
        self._wake.set()
