"""The Settings tab: the pool's address, the limits, the GPU and notifications."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
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
    ) -> None:
        super().__init__(parent)
        self._settings: VolunteerSettings | None = None
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

        buttons = QHBoxLayout()
        self.error = QLabel()
        self.error.setStyleSheet("color: #b3261e;")
        self.error.setWordWrap(True)
        buttons.addWidget(self.error, 1)
        self.revert_button = QPushButton("Undo changes")
        self.revert_button.clicked.connect(self._revert)
        buttons.addWidget(self.revert_button)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
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
