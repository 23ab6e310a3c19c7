"""Carries the engine's snapshots from whichever thread made them to the UI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop_app.agent.contribution import Contribution, Snapshot


class ContributionBridge(QObject):
    """Emits :attr:`changed` on the UI thread for every snapshot the engine publishes.

    Qt queues a signal emitted on another thread to the receiver's thread, so the views
    never touch widgets from the agent's thread and never poll for state.
    """

    changed = Signal(object)
    """A new :class:`Snapshot`."""
    stopped = Signal()
    """The engine stopped the containers and left the pool (after :meth:`shutdown`)."""

    def __init__(self, contribution: Contribution, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.contribution = contribution
        self._unsubscribe = contribution.subscribe(self.changed.emit)

    def snapshot(self) -> Snapshot:
        """The engine's current snapshot."""
        return self.contribution.snapshot()

    def shutdown(self) -> None:
        """Stop contributing; :attr:`stopped` follows when the containers have stopped."""
        self.contribution.shutdown(self.stopped.emit)

    def detach(self) -> None:
        """Stop listening to the engine."""
        self._unsubscribe()
