"""The Overview tab: the big switch, why it is (not) contributing, the hardware, what is shared."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.contribution import Snapshot
from desktop_app.agent.presentation import (
    describe_hardware,
    describe_tier,
    why_not_contributing,
)
from desktop_app.agent.settings import VolunteerSettings
from desktop_app.ui.widgets import ToggleSwitch
from shared.units import format_bytes


def describe_limits(settings: VolunteerSettings, machine_cores: int | None) -> str:
    """What the pool may use, in one sentence."""
    cores = settings.cpu_cores_limit(machine_cores)
    if cores is None:
        cpu = "all spare processor time"
    elif settings.cpu_limit_kind == "percent":
        cpu = f"up to {settings.cpu_limit_value:g}% of the processor ({cores:g} cores)"
    else:
        cpu = f"up to {cores:g} processor cores"
    memory = (
        f"up to {format_bytes(int(settings.memory_limit_gib * 1024**3))} of memory"
        if settings.memory_limit_gib
        else "the memory it needs"
    )
    gpu = "the graphics card" if settings.gpu_enabled else "not the graphics card"
    return (
        f"Each of the pool's containers may use {cpu} and {memory}, and {gpu}. Containers "
        "run isolated: they cannot see your files, and stop when you pause."
    )


def describe_decision(snapshot: Snapshot) -> tuple[str, str | None, str]:
    """The "why" line: its text, and the fix's action and button text (None: no fix)."""
    decision = snapshot.decision
    if snapshot.stopping or decision is None or not snapshot.settings.joined:
        return "", None, ""
    if snapshot.active and decision.active:
        return f"Contributing now. {decision.reason}", None, ""
    if snapshot.active:  # a stop for the load waits to see that it lasts
        return f"About to pause. {decision.reason}", None, ""
    if decision.active:  # its timing rules hold the start for a moment
        return f"Starting in a moment. {decision.reason}", None, ""
    fix = decision.fix
    text = why_not_contributing(decision, snapshot.settings.rules)
    return text, (fix.action if fix else None), (fix.label if fix else "")


class OverviewPage(QWidget):
    """Shows the hardware and holds the contribution switch."""

    contribution_switched = Signal(bool)
    fix_requested = Signal(str)
    """The volunteer pressed the "why" line's fix (a :data:`FixAction`)."""

    def __init__(self, machine_cores: int | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cores = machine_cores
        layout = QVBoxLayout(self)

        switch_row = QHBoxLayout()
        self.switch = ToggleSwitch()
        self.switch.setAccessibleName("Contribute this computer")
        self.switch.toggled.connect(self.contribution_switched.emit)
        switch_row.addWidget(self.switch)
        self.switch_label = QLabel()
        font = self.switch_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.switch_label.setFont(font)
        self.switch_label.setBuddy(self.switch)
        switch_row.addWidget(self.switch_label, 1)
        layout.addLayout(switch_row)

        why_row = QHBoxLayout()
        self.why = QLabel()
        self.why.setWordWrap(True)
        self.why.setObjectName("why")
        why_row.addWidget(self.why, 1)
        self.fix_button = QPushButton()
        self.fix_button.clicked.connect(self._fix)
        self.fix_button.hide()
        why_row.addWidget(self.fix_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(why_row)
        self._fix_action: str | None = None

        hardware_box = QGroupBox("This computer")
        self.hardware = QFormLayout(hardware_box)
        self.hardware.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addWidget(hardware_box)

        shared_box = QGroupBox("What is shared")
        shared_layout = QVBoxLayout(shared_box)
        self.limits = QLabel()
        self.limits.setWordWrap(True)
        shared_layout.addWidget(self.limits)
        layout.addWidget(shared_box)
        layout.addStretch(1)
        self._shown_hardware: object = None

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Show ``snapshot``."""
        settings = snapshot.settings
        paused = snapshot.paused
        self.switch.blockSignals(True)
        self.switch.setChecked(not paused)
        self.switch.blockSignals(False)
        self.switch_label.setText(
            "Contributing this computer's spare power" if not paused else "Contribution is paused"
        )
        self.limits.setText(describe_limits(settings, self._cores))
        text, action, label = describe_decision(snapshot)
        self.why.setText(text)
        self.why.setVisible(bool(text))
        self._fix_action = action
        self.fix_button.setText(label)
        self.fix_button.setVisible(action is not None)
        tier = snapshot.status.tier if snapshot.status is not None else None
        key = (snapshot.hardware, tier)
        if key != self._shown_hardware:
            self._shown_hardware = key
            self._show_hardware(snapshot, tier)

    def _fix(self) -> None:
        if self._fix_action is not None:
            self.fix_requested.emit(self._fix_action)

    def _show_hardware(self, snapshot: Snapshot, tier: int | None) -> None:
        while self.hardware.rowCount():
            self.hardware.removeRow(0)
        capabilities = snapshot.hardware
        if capabilities is None:
            self.hardware.addRow(QLabel("Checking this computer…"))
            return
        for line in describe_hardware(capabilities):
            value = QLabel(line.text)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.hardware.addRow(f"{line.label}:", value)
        tier_label = QLabel(describe_tier(capabilities, tier))
        tier_label.setWordWrap(True)
        self.hardware.addRow("Tier:", tier_label)
