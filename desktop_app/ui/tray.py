"""The tray icon: its look says the state, its tooltip the reason, its menu the choices."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from desktop_app.agent.contribution import Snapshot
from desktop_app.agent.presentation import Notice
from desktop_app.ui.icons import state_icon

SNOOZE_MORNING = time(8, 0)
""""Until tomorrow" ends at this local time."""


def snooze_ends(choice: str, now: datetime) -> datetime:
    """When a snooze chosen from the menu ends (aware). ``choice``: ``hour`` or ``tomorrow``."""
    local = now.astimezone()
    if choice == "hour":
        return local + timedelta(hours=1)
    tomorrow = local.date() + timedelta(days=1)
    # astimezone() on a naive time takes the offset in force *then* (DST may change tonight).
    return datetime.combine(tomorrow, SNOOZE_MORNING).astimezone()


class TrayController(QObject):
    """Owns the :class:`QSystemTrayIcon` and its menu; emits what the volunteer chose."""

    pause_requested = Signal()
    resume_requested = Signal()
    snooze_requested = Signal(str)
    """``"hour"`` or ``"tomorrow"``."""
    open_requested = Signal()
    why_requested = Signal()
    """Open the Overview, where the "why" line names the rule."""
    fix_requested = Signal(str)
    """The one fix for the rule that holds contribution (a ``FixAction``)."""
    open_logs_requested = Signal()
    quit_requested = Signal()
    notified = Signal(object)
    """A :class:`Notice` was shown (tests and the log follow it)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.icon = QSystemTrayIcon(state_icon("waiting"), self)
        self.icon.setToolTip("RMA Compute")
        self.menu = QMenu()
        self.status_action = self.menu.addAction("Starting…")
        self.status_action.setEnabled(False)
        self.menu.addSeparator()
        self.pause_action = self._add("Pause", self.pause_requested.emit)
        self.resume_action = self._add("Resume", self.resume_requested.emit)
        self.snooze_menu = self.menu.addMenu("Snooze")
        self.snooze_hour_action = self.snooze_menu.addAction("For 1 hour")
        self.snooze_hour_action.triggered.connect(lambda: self.snooze_requested.emit("hour"))
        self.snooze_tomorrow_action = self.snooze_menu.addAction(
            f"Until tomorrow ({SNOOZE_MORNING:%H:%M})"
        )
        self.snooze_tomorrow_action.triggered.connect(
            lambda: self.snooze_requested.emit("tomorrow")
        )
        # Below Pause, Resume and Snooze, so their places in the menu never move.
        self.why_action = self._add("Why isn't it contributing?", self.why_requested.emit)
        self.why_action.setVisible(False)
        self.fix_action = self._add("", self._fix_chosen)
        self.fix_action.setVisible(False)
        self._fix: str | None = None
        self.menu.addSeparator()
        self.open_action = self._add("Open RMA Compute", self.open_requested.emit)
        self.logs_action = self._add("Open logs", self.open_logs_requested.emit)
        self.menu.addSeparator()
        self.quit_action = self._add("Quit", self.quit_requested.emit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self._kind = "waiting"

    def _add(self, text: str, slot: object) -> QAction:
        action = self.menu.addAction(text)
        action.triggered.connect(slot)
        return action

    def show(self) -> None:
        """Put the icon in the tray."""
        self.icon.show()

    def hide(self) -> None:
        """Take the icon out of the tray."""
        self.icon.hide()

    @property
    def kind(self) -> str:
        """The state the icon shows."""
        return self._kind

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Show ``snapshot``: icon, tooltip, status line and which actions make sense."""
        situation = snapshot.situation
        if situation.kind != self._kind:
            self._kind = situation.kind
            self.icon.setIcon(state_icon(situation.kind))
        tooltip = f"RMA Compute — {situation.headline}\n{situation.reason}"
        if snapshot.active and snapshot.decision is not None:
            tooltip += f"\n{snapshot.decision.reason}"  # e.g. until when the schedule allows it
        self.icon.setToolTip(tooltip)
        self.status_action.setText(situation.headline)
        # A rule of the volunteer's holds contribution: why, and its one fix, one click away.
        # (Their own pause or snooze has Resume above.)
        decision = snapshot.decision
        fix = None
        held = False
        if decision is not None and snapshot.settings.joined and not snapshot.stopping:
            held = (
                not snapshot.active
                and not decision.active
                and decision.rule not in ("paused", "snoozed")
            )
            fix = decision.fix if held else None
        self.why_action.setVisible(held)
        self._fix = fix.action if fix is not None else None
        self.fix_action.setVisible(fix is not None)
        self.fix_action.setText(fix.label if fix is not None else "")
        joined = snapshot.settings.joined and not snapshot.stopping
        self.pause_action.setVisible(not snapshot.paused)
        self.pause_action.setEnabled(joined)
        self.resume_action.setVisible(snapshot.paused)
        self.resume_action.setEnabled(joined)
        self.snooze_menu.setEnabled(joined)
        self.quit_action.setEnabled(not snapshot.stopping)
        self.open_action.setText("Open RMA Compute" if joined else "Check and join…")

    def _fix_chosen(self) -> None:
        if self._fix is not None:
            self.fix_requested.emit(self._fix)

    def notify(self, notice: Notice) -> None:
        """Show a desktop notification."""
        icons = {
            "attention": QSystemTrayIcon.MessageIcon.Warning,
            "paused": QSystemTrayIcon.MessageIcon.Information,
            "contributing": QSystemTrayIcon.MessageIcon.Information,
        }
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(
                notice.title,
                notice.message,
                icons.get(notice.kind, QSystemTrayIcon.MessageIcon.Information),
                8000,
            )
        self.notified.emit(notice)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.open_requested.emit()
