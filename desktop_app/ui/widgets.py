"""Small widgets the pages share: the big switch, the notice banner, the state header."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.presentation import Situation
from desktop_app.ui.icons import state_icon

ON_COLOUR = "#1f6f5c"
OFF_COLOUR = "#9aa0a6"


class ToggleSwitch(QAbstractButton):
    """A large on/off switch; keyboard-accessible (space toggles) like any button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCheckable(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        """Big enough to hit easily."""
        return QSize(64, 34)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the track and the knob."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        track = QRectF(1, 3, self.width() - 2, self.height() - 6)
        colour = QColor(ON_COLOUR if self.isChecked() else OFF_COLOUR)
        if not self.isEnabled():
            colour.setAlpha(110)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(track, track.height() / 2, track.height() / 2)
        diameter = track.height() - 6
        x = track.right() - diameter - 3 if self.isChecked() else track.left() + 3
        painter.setBrush(QColor("white"))
        painter.drawEllipse(QRectF(x, track.top() + 3, diameter, diameter))
        if self.hasFocus():
            painter.setPen(QColor("#3b7691"))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(
                track.adjusted(-1, -1, 1, 1), track.height() / 2, track.height() / 2
            )
        painter.end()


class Banner(QFrame):
    """A notice across the top of the window, with a button to dismiss it."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None, *, dismissable: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet(
            "#banner { background: #fff4d6; border: 1px solid #e0c36a; border-radius: 6px; }"
            "#banner QLabel { color: #4a3b00; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.text, 1)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self._dismiss)
        self.close_button.setVisible(dismissable)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_text(self, text: str | None) -> None:
        """Show ``text``, or hide the banner for None."""
        if text:
            self.text.setText(text)
            self.show()
        else:
            self.hide()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()


class StateHeader(QFrame):
    """The state at a glance: the tray's icon, the headline, the reason and its one fix."""

    action_requested = Signal(str)
    """The situation's action (``"resume"``, ``"docker_help"`` …) was clicked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stateHeader")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.icon = QLabel()
        self.icon.setFixedSize(40, 40)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        text = QVBoxLayout()
        self.headline = QLabel()
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.headline.setFont(font)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        text.addWidget(self.headline)
        text.addWidget(self.reason)
        layout.addLayout(text, 1)
        self.action = QPushButton()
        self.action.hide()
        self.action.clicked.connect(self._clicked)
        layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignVCenter)
        self._action = "none"

    def show_situation(self, situation: Situation) -> None:
        """Show ``situation``."""
        self.icon.setPixmap(state_icon(situation.kind).pixmap(QSize(40, 40)))
        self.headline.setText(situation.headline)
        self.reason.setText(situation.reason)
        self._action = situation.action
        self.action.setText(situation.action_label)
        self.action.setVisible(situation.action != "none")

    def _clicked(self) -> None:
        self.action_requested.emit(self._action)


ERROR_STYLE = "color: #b3261e;"
"""How a form says what is wrong with it."""


class SaveRow(QWidget):
    """The foot of a form: what is wrong with it, "Undo changes" and "Save"."""

    def __init__(
        self,
        on_save: Callable[[], None],
        on_revert: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        layout.addWidget(self.error, 1)
        self.revert_button = QPushButton("Undo changes")
        self.revert_button.clicked.connect(on_revert)
        layout.addWidget(self.revert_button)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(on_save)
        layout.addWidget(self.save_button)
