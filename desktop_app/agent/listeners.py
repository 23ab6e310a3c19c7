"""Observers of one kind of value, subscribed and notified from any thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Listeners(Generic[T]):
    """A thread-safe list of callbacks; one that raises is logged and the others still run."""

    def __init__(self, what: str) -> None:
        """Create it; ``what`` names the value in the log (``"status"``, ``"snapshot"``)."""
        self._what = what
        self._lock = threading.Lock()
        self._listeners: list[Callable[[T], None]] = []

    def subscribe(self, listener: Callable[[T], None]) -> Callable[[], None]:
        """Add ``listener``; returns the function that removes it again."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def notify(self, value: T) -> None:
        """Call every listener with ``value`` on this thread, holding no lock of ours."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(value)
            except Exception:  # one broken observer must not break the others or the caller
                log.exception("A %s listener failed", self._what)
