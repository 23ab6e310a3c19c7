"""Carries the engine's snapshots from whichever thread made them to the UI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop_app.agent.contribution import Contribution, Snapshot


class ContributionBridge(QObject):
    """Emits :attr:`changed` on the UI thread for every snapshot the engine publishes.

    Qt queues a signal emitted on another thread to the receiver's thread, so the views
    never touch widgets from the agent's thread and never poll for state. Snapshots are
    made on several threads and can arrive out of order; one older than the last delivered
    is dropped here, once, for every view.
    """

    changed = Signal(object)
    """A new :class:`Snapshot`."""
    stopped = Signal()
    """The engine stopped the containers and left the pool (after :meth:`shutdown`)."""
    _arrived = Signal(object)

    def __init__(self, contribution: Contribution, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.contribution = contribution
        self._delivered = -1
        self._arrived.connect(self._deliver)
        self._unsubscribe = contribution.subscribe(self._arrived.emit)

    def _deliver(self, snapshot: Snapshot) -> None:
        if snapshot.sequence < self._delivered:
            return
        self._delivered = snapshot.sequence
        self.changed.emit(snapshot)

    def shutdown(self) -> None:
        """Stop contributing; :attr:`stopped` follows when the containers have stopped."""
        self.contribution.shutdown(self.stopped.emit)

    def detach(self) -> None:
        """Stop listening to the engine."""
        self._unsubscribe()
