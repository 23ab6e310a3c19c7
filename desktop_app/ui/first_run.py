"""The first-run check: Docker, the hardware found, what will be shared, and one button to join.

Nothing runs for the pool before the volunteer presses "Join the pool".
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.contribution import Snapshot
from desktop_app.agent.presentation import describe_hardware, describe_tier, docker_fix
from desktop_app.agent.settings import VolunteerSettings
from desktop_app.ui.settings_page import LimitsEditor


class FirstRunPage(QScrollArea):
    """The guided check shown until the volunteer joins."""

    join_requested = Signal(object)
    """The settings to join with (limits as chosen here)."""
    check_again = Signal()
    """Probe Docker and the hardware again."""
    not_now = Signal()

    def __init__(
        self, machine_cores: int | None, coordinator_url: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        body = QWidget()
        layout = QVBoxLayout(body)
        self._settings: VolunteerSettings | None = None

        title = QLabel("Welcome to RMA Compute")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        title.setFont(font)
        layout.addWidget(title)
        intro = QLabel(
            "This app lets the debt-advice service use your computer's spare power for its AI "
            "services (reading letters, answering questions). A short check first: nothing "
            "runs until you press Join."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)

        docker_box = QGroupBox("1. Docker")
        docker_layout = QVBoxLayout(docker_box)
        self.docker_state = QLabel("Checking Docker…")
        self.docker_state.setWordWrap(True)
        docker_layout.addWidget(self.docker_state)
        self.docker_fix = QLabel()
        self.docker_fix.setWordWrap(True)
        self.docker_fix.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        docker_layout.addWidget(self.docker_fix)
        again_row = QHBoxLayout()
        self.check_button = QPushButton("Check again")
        self.check_button.clicked.connect(self._check_again)
        again_row.addWidget(self.check_button)
        again_row.addStretch(1)
        docker_layout.addLayout(again_row)
        layout.addWidget(docker_box)

        hardware_box = QGroupBox("2. What was found")
        self.hardware = QFormLayout(hardware_box)
        self.hardware.addRow(QLabel("Checking this computer…"))
        layout.addWidget(hardware_box)

        shared_box = QGroupBox("3. What will be shared")
        shared_layout = QVBoxLayout(shared_box)
        explain = QLabel(
            "The pool runs its services in isolated containers that cannot see your files. "
            "You can pause at any time from the tray icon, and change these limits later."
        )
        explain.setWordWrap(True)
        shared_layout.addWidget(explain)
        self.limits = LimitsEditor(machine_cores)
        shared_layout.addWidget(self.limits)
        where = QLabel(f"Your computer will join the pool at {coordinator_url}.")
        where.setWordWrap(True)
        shared_layout.addWidget(where)
        layout.addWidget(shared_box)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.not_now_button = QPushButton("Not now")
        self.not_now_button.clicked.connect(self.not_now.emit)
        buttons.addWidget(self.not_now_button)
        self.join_button = QPushButton("Join the pool")
        self.join_button.setDefault(True)
        self.join_button.setStyleSheet(
            "QPushButton { background: #1f6f5c; color: white; padding: 6px 18px; "
            "border-radius: 4px; font-weight: bold; }"
        )
        self.join_button.clicked.connect(self._join)
        buttons.addWidget(self.join_button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.setWidget(body)
        self._shown_hardware: object = None

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Show what the latest probe found."""
        if self._settings is None:
            self._settings = snapshot.settings
            self.limits.load(snapshot.settings)
        capabilities = snapshot.hardware
        if capabilities is None or capabilities == self._shown_hardware:
            return
        self._shown_hardware = capabilities
        self.check_button.setEnabled(True)
        docker = capabilities.docker
        if docker is not None and docker.usable:
            self.docker_state.setText("✔ Docker is installed and running.")
            self.docker_fix.setText("")
        else:
            self.docker_state.setText(
                "✘ Docker is not ready, so the pool cannot run anything here yet."
            )
            self.docker_fix.setText(docker_fix(docker))
        while self.hardware.rowCount():
            self.hardware.removeRow(0)
        for line in describe_hardware(capabilities):
            if line.label == "Docker":
                continue
            value = QLabel(line.text)
            value.setWordWrap(True)
            self.hardware.addRow(f"{line.label}:", value)
        tier = QLabel(describe_tier(capabilities))
        tier.setWordWrap(True)
        self.hardware.addRow("Tier:", tier)

    def _check_again(self) -> None:
        self.check_button.setEnabled(False)
        self.docker_state.setText("Checking Docker…")
        self._shown_hardware = None
        self.check_again.emit()

    def _join(self) -> None:
        assert self._settings is not None
        self.join_requested.emit(self.limits.apply_to(self._settings))
