"""Blocking work (Docker, NVML, HTTP) off the UI thread, with the result delivered back on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, work: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._work = work
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._work()
        except Exception as exc:
            log.exception("Background task failed")
            self._relay.failed.emit(exc)
        else:
            self._relay.done.emit(result)


class BackgroundTasks(QObject):
    """Runs callables on a thread pool; their results arrive as calls on the UI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._relays: set[_Relay] = set()

    def run(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run ``work`` on a worker thread, then ``on_done(result)`` on this object's thread."""
        relay = _Relay(self)  # lives on the UI thread, so its slots run there
        self._relays.add(relay)

        def finish(callback: Callable[[Any], None] | None, value: Any) -> None:
            self._relays.discard(relay)
            relay.deleteLater()
            if callback is not None:
                callback(value)

        relay.done.connect(lambda result: finish(on_done, result))
        relay.failed.connect(lambda exc: finish(on_error, exc))
        self._pool.start(_Task(work, relay))

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Wait for running tasks (tests and shutdown)."""
        return self._pool.waitForDone(timeout_ms)
