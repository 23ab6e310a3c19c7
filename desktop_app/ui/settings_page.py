"""The Settings tab: the pool, the limits, notifications, start at login, idle detection.

Idle detection has a live readout here, so a volunteer can see it work.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.settings import CpuLimitKind, VolunteerSettings, check_coordinator_url
from desktop_app.agent.signals import IdleReading
from desktop_app.ui.widgets import SaveRow

IDLE_READOUT_MS = 1000
"""How often the idle readout refreshes while the tab is on screen."""


def describe_idle(reading: IdleReading | None) -> str:
    """``"Idle detection: the X11 screen saver extension — working. Idle for 12 s."``."""
    if reading is None:
        return "Idle detection: checking…"
    if not reading.working:
        return (
            f"Idle detection: not working here ({reading.problem or 'no source found'}). "
            "“Only when I have not used the computer” cannot start; use a schedule instead."
        )
    seconds = int(reading.idle_seconds or 0)
    idle = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
    return f"Idle detection: {reading.source} — working. Idle for {idle}."


_CPU_KINDS: list[tuple[CpuLimitKind, str]] = [
    ("none", "No limit"),
    ("cores", "Cores"),
    ("percent", "% of this computer"),
]


class LimitsEditor(QWidget):
    """CPU (cores or %), memory and GPU limits; shared by Settings and the first-run check."""

    def __init__(self, machine_cores: int | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cores = machine_cores or 1
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)

        cpu_row = QHBoxLayout()
        self.cpu_kind = QComboBox()
        for kind, label in _CPU_KINDS:
            self.cpu_kind.addItem(label, kind)
        self.cpu_value = QDoubleSpinBox()
        self.cpu_value.setDecimals(1)
        self.cpu_kind.currentIndexChanged.connect(self._cpu_kind_changed)
        cpu_row.addWidget(self.cpu_kind)
        cpu_row.addWidget(self.cpu_value)
        cpu_row.addStretch(1)
        form.addRow("Processor:", cpu_row)

        memory_row = QHBoxLayout()
        self.memory_limited = QCheckBox("Limit each container to")
        self.memory_gib = QDoubleSpinBox()
        self.memory_gib.setRange(0.5, 4096)
        self.memory_gib.setDecimals(1)
        self.memory_gib.setSuffix(" GiB")
        self.memory_limited.toggled.connect(self.memory_gib.setEnabled)
        memory_row.addWidget(self.memory_limited)
        memory_row.addWidget(self.memory_gib)
        memory_row.addStretch(1)
        form.addRow("Memory:", memory_row)

        self.gpu = QCheckBox("Let the pool use my graphics card")
        form.addRow("Graphics:", self.gpu)

    def _cpu_kind_changed(self) -> None:
        kind = self.cpu_kind.currentData()
        self.cpu_value.setEnabled(kind != "none")
        if kind == "percent":
            self.cpu_value.setRange(1, 100)
            self.cpu_value.setSuffix(" %")
        else:
            self.cpu_value.setRange(0.1, float(max(self._cores, 1)))
            self.cpu_value.setSuffix(" cores")

    def load(self, settings: VolunteerSettings) -> None:
        """Show ``settings``' limits."""
        self.cpu_kind.setCurrentIndex(
            next(i for i, (kind, _) in enumerate(_CPU_KINDS) if kind == settings.cpu_limit_kind)
        )
        self._cpu_kind_changed()
        self.cpu_value.setValue(settings.cpu_limit_value)
        self.memory_limited.setChecked(settings.memory_limit_gib is not None)
        self.memory_gib.setEnabled(settings.memory_limit_gib is not None)
        self.memory_gib.setValue(settings.memory_limit_gib or 4.0)
        self.gpu.setChecked(settings.gpu_enabled)

    def apply_to(self, settings: VolunteerSettings) -> VolunteerSettings:
        """``settings`` with the limits shown here."""
        return settings.model_copy(
            update={
                "cpu_limit_kind": self.cpu_kind.currentData(),
                "cpu_limit_value": self.cpu_value.value(),
                "memory_limit_gib": self.memory_gib.value()
                if self.memory_limited.isChecked()
                else None,
                "gpu_enabled": self.gpu.isChecked(),
            }
        )


class SettingsPage(QWidget):
    """Edits the settings; :attr:`saved` carries the new settings when valid."""

    saved = Signal(object)
    """New :class:`VolunteerSettings`."""
    open_logs = Signal()

    def __init__(
        self,
        machine_cores: int | None,
        preset_url: str,
        credentials_note: str,
        settings_path: str,
        parent: QWidget | None = None,
        *,
        autostart_description: str | None = None,
        idle_reading: Callable[[], IdleReading | None] | None = None,
        watch_idle: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings: VolunteerSettings | None = None
        self._idle_reading = idle_reading
        self._watch_idle = watch_idle
        self._watching = False
        self._idle_timer = QTimer(self)
        self._idle_timer.setInterval(IDLE_READOUT_MS)
        self._idle_timer.timeout.connect(self.refresh_idle)
        layout = QVBoxLayout(self)

        pool_box = QGroupBox("The pool")
        pool = QFormLayout(pool_box)
        self.coordinator = QLineEdit()
        self.coordinator.setPlaceholderText(preset_url)
        self.coordinator.setClearButtonEnabled(True)
        pool.addRow("Pool address:", self.coordinator)
        hint = QLabel(f"Leave empty to use {preset_url}.")
        hint.setWordWrap(True)
        pool.addRow("", hint)
        self.enrollment = QLineEdit()
        self.enrollment.setEchoMode(QLineEdit.EchoMode.Password)
        self.enrollment.setPlaceholderText("only if the pool's organiser gave you one")
        pool.addRow("Enrollment code:", self.enrollment)
        layout.addWidget(pool_box)

        limits_box = QGroupBox("What the pool may use")
        limits_layout = QVBoxLayout(limits_box)
        self.limits = LimitsEditor(machine_cores)
        limits_layout.addWidget(self.limits)
        layout.addWidget(limits_box)

        app_box = QGroupBox("This app")
        app_layout = QVBoxLayout(app_box)
        self.notifications = QCheckBox(
            "Show a notification when contribution starts, pauses or needs attention"
        )
        app_layout.addWidget(self.notifications)
        self.start_at_login = QCheckBox("Start RMA Compute when I log in")
        self.start_at_login.setVisible(autostart_description is not None)
        if autostart_description is not None:
            self.start_at_login.setToolTip(f"Kept as {autostart_description}.")
        app_layout.addWidget(self.start_at_login)
        self.idle = QLabel(describe_idle(None))
        self.idle.setWordWrap(True)
        self.idle.setVisible(idle_reading is not None)
        app_layout.addWidget(self.idle)
        self.credentials = QLabel(credentials_note)
        self.credentials.setWordWrap(True)
        self.credentials.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        app_layout.addWidget(self.credentials)
        where = QLabel(f"Settings are saved in {settings_path}.")
        where.setWordWrap(True)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        app_layout.addWidget(where)
        logs_row = QHBoxLayout()
        self.logs_button = QPushButton("Open logs")
        self.logs_button.clicked.connect(self.open_logs.emit)
        logs_row.addWidget(self.logs_button)
        logs_row.addStretch(1)
        app_layout.addLayout(logs_row)
        layout.addWidget(app_box)

        buttons = SaveRow(self.save, self._revert)
        self.error = buttons.error
        self.revert_button = buttons.revert_button
        self.save_button = buttons.save_button
        layout.addWidget(buttons)
        layout.addStretch(1)

    def load(self, settings: VolunteerSettings) -> None:
        """Show ``settings`` (unless the volunteer is editing: then keep their edits)."""
        if self._settings is not None and self._editing():
            self._settings = settings
            return
        self._settings = settings
        self._show(settings)

    def _show(self, settings: VolunteerSettings) -> None:
        self.coordinator.setText(settings.coordinator_url or "")
        self.enrollment.setText(settings.enrollment_token or "")
        self.limits.load(settings)
        self.notifications.setChecked(settings.notifications)
        self.start_at_login.setChecked(settings.start_at_login)
        self.error.clear()

    def _editing(self) -> bool:
        assert self._settings is not None
        try:
            return self._collect(self._settings) != self._settings
        except ValueError:
            return True

    def _revert(self) -> None:
        if self._settings is not None:
            self._show(self._settings)

    def _collect(self, base: VolunteerSettings) -> VolunteerSettings:
        url = self.coordinator.text().strip()
        if url:
            url = check_coordinator_url(url)
        updated = self.limits.apply_to(base).model_copy(
            update={
                "coordinator_url": url or None,
                "enrollment_token": self.enrollment.text().strip() or None,
                "notifications": self.notifications.isChecked(),
                "start_at_login": self.start_at_login.isChecked(),
            }
        )
        # model_copy does not validate; a round trip does (percent ≤ 100, positive limits).
        return VolunteerSettings.model_validate(updated.model_dump())

    def save(self) -> None:
        """Check the form; emit :attr:`saved` when valid, else say what is wrong."""
        if self._settings is None:
            return
        try:
            settings = self._collect(self._settings)
        except ValueError as exc:
            message = str(exc)
            if hasattr(exc, "errors"):
                message = "; ".join(error["msg"] for error in exc.errors())
            self.error.setText(message)
            return
        self.error.clear()
        self._settings = settings
        self.saved.emit(settings)

    # -- the live idle readout -------------------------------------------------------------------

    def refresh_idle(self) -> None:
        """Show the latest idle reading (a cached value: reading it never blocks)."""
        if self._idle_reading is not None:
            self.idle.setText(describe_idle(self._idle_reading()))

    def showEvent(self, event: QShowEvent) -> None:
        """On screen: ask for idle readings every second, and show them."""
        super().showEvent(event)
        if self._idle_reading is None:
            return
        if not self._watching and self._watch_idle is not None:
            self._watch_idle(True)
        self._watching = True
        self.refresh_idle()
        self._idle_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        """Off screen: no more readings on its account."""
        super().hideEvent(event)
        self._idle_timer.stop()
        if self._watching and self._watch_idle is not None:
            self._watch_idle(False)
        self._watching = False
