"""The Schedule tab: when the pool may use this computer (away, after hours, power, load)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from pydantic import ValidationError
from PySide6.QtCore import QRectF, QSignalBlocker, QSize, Qt, QTime, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTimeEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.schedule import (
    DAY_NAMES,
    DEFAULT_WINDOWS,
    BatteryRule,
    ContributionRules,
    WeeklyWindow,
)
from desktop_app.ui.widgets import ERROR_STYLE, ON_COLOUR, SaveRow

NIGHTS = (WeeklyWindow(days=tuple(range(7)), start=time(22), end=time(7)),)
"""The "Nights" quick choice: every night from 22:00 until 07:00."""

REFERENCE_MONDAY = datetime(2026, 11, 23)
"""A week with no clock change anywhere, drawn by :class:`WeekChart` (Mon 23 – Sun 29 Nov)."""

NO_WINDOWS_MESSAGE = 'Add at least one time window, or turn off "Only at these times".'
NO_DAYS_MESSAGE = "Choose at least one day for this time window."

# Checked day buttons need to read as "on" at a glance in every style, so they get the
# switch's colour rather than the style's faint sunken look.
_DAY_BUTTON_STYLE = (
    "QToolButton { border: 1px solid #9aa0a6; border-radius: 4px; padding: 3px 6px;"
    " background: white; color: #202124; }"
    "QToolButton:hover { border-color: #3b7691; }"
    "QToolButton:focus { border: 2px solid #3b7691; }"
    f"QToolButton:checked {{ background: {ON_COLOUR}; border-color: {ON_COLOUR}; color: white; }}"
)

_BATTERY_CHOICES: tuple[BatteryRule, ...] = ("never", "above", "allow")


def _qtime(value: time) -> QTime:
    return QTime(value.hour, value.minute)


def _pytime(value: QTime) -> time:
    return time(value.hour(), value.minute())


class WeekChart(QWidget):
    """A week at a glance: seven rows of 24 hours, shading the hours the windows cover.

    An hour is shaded when its middle (hh:30) is inside a window, so "18:00–08:00" shades
    18 … 07 and a window of a few minutes may not show; the list says it exactly.
    """

    LABEL_WIDTH = 40
    HEADER_HEIGHT = 18
    CELL_WIDTH = 15
    CELL_HEIGHT = 15
    FILLED = QColor(ON_COLOUR)
    """An hour inside a window, while "Only at these times" is on."""
    FILLED_UNUSED = QColor("#a9c9c0")
    """An hour inside a window, while the schedule is switched off (kept, not in use)."""
    EMPTY = QColor("#d9dce0")
    """An hour outside every window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._covered: list[list[bool]] = [[False] * 24 for _ in range(7)]
        self._in_use = True
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Week overview")

    def set_windows(self, windows: Sequence[WeeklyWindow]) -> None:
        """Shade the hours that ``windows`` cover in the reference week."""
        rules = ContributionRules(windows=tuple(windows))
        self._covered = [
            [
                rules.in_window(REFERENCE_MONDAY + timedelta(days=day, hours=hour, minutes=30))
                for hour in range(24)
            ]
            for day in range(7)
        ]
        described = "; ".join(window.describe() for window in windows) or "no times chosen"
        self.setAccessibleDescription(f"Shaded hours: {described}")
        self.setToolTip(f"Shaded hours: {described}")
        self.update()

    def set_in_use(self, in_use: bool) -> None:
        """Draw the shaded hours strongly while the schedule counts, faintly when it is off."""
        self._in_use = in_use
        self.update()

    def covered(self, day: int, hour: int) -> bool:
        """Whether ``hour`` on ``day`` (Monday = 0) is shaded."""
        return self._covered[day][hour]

    def cell_rect(self, day: int, hour: int) -> QRectF:
        """Where the cell for ``hour`` on ``day`` is drawn, in widget coordinates."""
        width = (self.width() - self.LABEL_WIDTH) / 24
        height = (self.height() - self.HEADER_HEIGHT) / 7
        return QRectF(
            self.LABEL_WIDTH + hour * width,
            self.HEADER_HEIGHT + day * height,
            width,
            height,
        )

    def sizeHint(self) -> QSize:
        """Square-ish hour cells, small enough to sit beside the list."""
        return QSize(
            self.LABEL_WIDTH + 24 * self.CELL_WIDTH, self.HEADER_HEIGHT + 7 * self.CELL_HEIGHT
        )

    def minimumSizeHint(self) -> QSize:
        """Still readable when squeezed."""
        return QSize(self.LABEL_WIDTH + 24 * 8, self.HEADER_HEIGHT + 7 * self.CELL_HEIGHT)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the day names, the hour marks and one cell per hour."""
        painter = QPainter(self)
        text_colour = self.palette().windowText().color()
        painter.setPen(text_colour)
        for hour in (0, 6, 12, 18):
            cell = self.cell_rect(0, hour)
            painter.drawText(
                QRectF(cell.left(), 0, 4 * cell.width(), self.HEADER_HEIGHT - 2),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
                f"{hour:02d}:00",
            )
        filled = self.FILLED if self._in_use else self.FILLED_UNUSED
        for day in range(7):
            row = self.cell_rect(day, 0)
            painter.setPen(text_colour)
            painter.drawText(
                QRectF(0, row.top(), self.LABEL_WIDTH - 6, row.height()),
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                DAY_NAMES[day],
            )
            painter.setPen(Qt.PenStyle.NoPen)
            for hour in range(24):
                painter.setBrush(filled if self._covered[day][hour] else self.EMPTY)
                # A one-pixel gap between cells keeps single hours countable.
                painter.drawRect(self.cell_rect(day, hour).adjusted(0, 0, -1, -1))
        painter.end()


class SchedulePage(QWidget):
    """Edits the :class:`ContributionRules`; :attr:`saved` carries them when valid."""

    saved = Signal(object)
    """New :class:`ContributionRules`."""

    def __init__(self) -> None:
        super().__init__()
        self._rules: ContributionRules | None = None
        self._windows: list[WeeklyWindow] = []
        # idle_minutes may be fractional (tests, power users); the spin box shows whole
        # minutes, so the stored value is kept until the volunteer changes the spin box.
        self._idle_exact: float | None = None

        outer = QVBoxLayout(self)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        scroll.setWidget(content)
        outer.addWidget(scroll, 1)

        intro = QLabel(
            "Choose when the pool may use this computer. Everything here can be combined.\n"
            "The pool works only while every rule you tick allows it."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addSpacing(4)

        layout.addWidget(self._away_box())
        layout.addWidget(self._after_hours_box())
        layout.addWidget(self._power_box())
        layout.addStretch(1)

        buttons = SaveRow(self.save, self._revert)
        self.error = buttons.error
        self.revert_button = buttons.revert_button
        self.save_button = buttons.save_button
        outer.addWidget(buttons)

        self._show(ContributionRules())

    # -- building ------------------------------------------------------------------------

    def _away_box(self) -> QGroupBox:
        box = QGroupBox("When you are away")
        layout = QVBoxLayout(box)
        idle_row = QHBoxLayout()
        self.idle_only = QCheckBox("Only when I have not used the computer for")
        self.idle_minutes = QSpinBox()
        self.idle_minutes.setRange(1, 240)
        self.idle_minutes.setAccessibleName("Minutes away")
        self.idle_only.toggled.connect(self.idle_minutes.setEnabled)
        self.idle_minutes.valueChanged.connect(self._idle_edited)
        idle_row.addWidget(self.idle_only)
        idle_row.addWidget(self.idle_minutes)
        idle_row.addWidget(QLabel("minutes"))
        idle_row.addStretch(1)
        layout.addLayout(idle_row)
        self.gpu_only_when_idle = QCheckBox(
            "Use the graphics card only when I am away (games, video calls)"
        )
        layout.addWidget(self.gpu_only_when_idle)
        return box

    def _after_hours_box(self) -> QGroupBox:
        box = QGroupBox("After hours")
        layout = QVBoxLayout(box)
        self.schedule_only = QCheckBox("Only at these times")
        self.schedule_only.toggled.connect(self._schedule_toggled)
        layout.addWidget(self.schedule_only)
        hint = QLabel(
            "Times follow this computer's clock. A time that ends at or before it starts "
            "runs on into the next day."
        )
        hint.setWordWrap(True)
        layout.addWidget(hint)

        overview = QHBoxLayout()
        self.window_list = QListWidget()
        self.window_list.setAccessibleName("Time windows")
        self.window_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.window_list.itemSelectionChanged.connect(self._selection_changed)
        # A click on the window already selected loads it again, over a half-made edit.
        self.window_list.itemClicked.connect(self._selection_changed)
        self.chart = WeekChart()
        self.window_list.setFixedHeight(self.chart.sizeHint().height())
        chart_column = QVBoxLayout()
        chart_column.setSpacing(2)
        chart_column.addWidget(self.chart)
        self.chart_caption = QLabel()
        self.chart_caption.setWordWrap(True)
        chart_column.addWidget(self.chart_caption)
        chart_column.addStretch(1)
        overview.addWidget(self.window_list, 1, Qt.AlignmentFlag.AlignTop)
        overview.addLayout(chart_column)
        layout.addLayout(overview)

        editor = QFormLayout()
        days_row = QHBoxLayout()
        days_row.setSpacing(4)
        self.day_buttons: list[QToolButton] = []
        for name in DAY_NAMES:
            button = QToolButton()
            button.setText(name)
            button.setCheckable(True)
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.setStyleSheet(_DAY_BUTTON_STYLE)
            button.setFixedWidth(48)
            self.day_buttons.append(button)
            days_row.addWidget(button)
        days_row.addStretch(1)
        editor.addRow("Days:", days_row)

        times_row = QHBoxLayout()
        self.start_time = QTimeEdit()
        self.start_time.setDisplayFormat("HH:mm")
        self.start_time.setAccessibleName("From")
        self.end_time = QTimeEdit()
        self.end_time.setDisplayFormat("HH:mm")
        self.end_time.setAccessibleName("Until")
        self.next_day_note = QLabel()
        self.start_time.timeChanged.connect(self._times_changed)
        self.end_time.timeChanged.connect(self._times_changed)
        times_row.addWidget(self.start_time)
        times_row.addWidget(QLabel("until"))
        times_row.addWidget(self.end_time)
        times_row.addWidget(self.next_day_note)
        times_row.addStretch(1)
        editor.addRow("From:", times_row)

        actions = QHBoxLayout()
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self._add)
        self.update_button = QPushButton("Update")
        self.update_button.clicked.connect(self._update)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove)
        for action in (self.add_button, self.update_button, self.remove_button):
            actions.addWidget(action)
        self.window_error = QLabel()
        self.window_error.setStyleSheet(ERROR_STYLE)
        self.window_error.setWordWrap(True)
        actions.addWidget(self.window_error, 1)
        editor.addRow("", actions)

        presets = QHBoxLayout()
        self.evenings_preset = QPushButton("Weekday evenings and weekends")
        self.evenings_preset.setToolTip("; ".join(window.describe() for window in DEFAULT_WINDOWS))
        self.evenings_preset.clicked.connect(lambda: self._use_preset(DEFAULT_WINDOWS))
        self.nights_preset = QPushButton("Nights (22:00–07:00)")
        self.nights_preset.setToolTip(NIGHTS[0].describe())
        self.nights_preset.clicked.connect(lambda: self._use_preset(NIGHTS))
        presets.addWidget(self.evenings_preset)
        presets.addWidget(self.nights_preset)
        presets.addStretch(1)
        editor.addRow("Quick choices:", presets)
        layout.addLayout(editor)

        self._load_editor(DEFAULT_WINDOWS[0])
        return box

    def _power_box(self) -> QGroupBox:
        box = QGroupBox("Power and other programs")
        layout = QVBoxLayout(box)
        layout.addWidget(QLabel("On a laptop running on battery:"))
        self.battery_group = QButtonGroup(self)
        self.battery_never = QRadioButton("Never on battery")
        self.battery_above = QRadioButton("On battery only above")
        self.battery_allow = QRadioButton("Also on battery")
        for index, button in enumerate(
            (self.battery_never, self.battery_above, self.battery_allow)
        ):
            self.battery_group.addButton(button, index)
        self.battery_min_percent = QSpinBox()
        self.battery_min_percent.setRange(5, 100)
        self.battery_min_percent.setSuffix(" %")
        self.battery_min_percent.setAccessibleName("Lowest battery charge")
        self.battery_above.toggled.connect(self.battery_min_percent.setEnabled)
        above_row = QHBoxLayout()
        above_row.addWidget(self.battery_above)
        above_row.addWidget(self.battery_min_percent)
        above_row.addWidget(QLabel("charge"))
        above_row.addStretch(1)
        layout.addWidget(self.battery_never)
        layout.addLayout(above_row)
        layout.addWidget(self.battery_allow)

        busy_row = QHBoxLayout()
        self.busy_pause = QCheckBox("Wait while my own programs use more than")
        self.busy_percent = QSpinBox()
        self.busy_percent.setRange(10, 100)
        self.busy_percent.setSuffix(" %")
        self.busy_percent.setAccessibleName("Processor use")
        self.busy_pause.toggled.connect(self.busy_percent.setEnabled)
        busy_row.addWidget(self.busy_pause)
        busy_row.addWidget(self.busy_percent)
        busy_row.addWidget(QLabel("of the processor"))
        busy_row.addStretch(1)
        layout.addSpacing(6)
        layout.addLayout(busy_row)
        return box

    # -- loading and saving --------------------------------------------------------------

    def load(self, rules: ContributionRules) -> None:
        """Show ``rules`` (unless the volunteer is editing: then keep their edits)."""
        if self._rules is not None and self._editing():
            self._rules = rules
            return
        self._rules = rules
        self._show(rules)

    def current_rules(self) -> ContributionRules:
        """The rules the form shows now.

        Raises:
            ValueError: The form does not make valid rules; the message says why, plainly.
        """
        if self.schedule_only.isChecked() and not self._windows:
            raise ValueError(NO_WINDOWS_MESSAGE)
        battery = _BATTERY_CHOICES[max(self.battery_group.checkedId(), 0)]
        idle_minutes = (
            self._idle_exact if self._idle_exact is not None else float(self.idle_minutes.value())
        )
        try:
            return ContributionRules(
                idle_only=self.idle_only.isChecked(),
                idle_minutes=idle_minutes,
                schedule_only=self.schedule_only.isChecked(),
                windows=tuple(self._windows),
                battery=battery,
                battery_min_percent=self.battery_min_percent.value(),
                busy_pause=self.busy_pause.isChecked(),
                busy_percent=self.busy_percent.value(),
                gpu_only_when_idle=self.gpu_only_when_idle.isChecked(),
            )
        except ValidationError as exc:
            raise ValueError("; ".join(error["msg"] for error in exc.errors())) from exc

    def save(self) -> None:
        """Check the form; emit :attr:`saved` when valid, else say what is wrong."""
        if self._rules is None:
            return  # nothing loaded yet: saving the defaults shown would overwrite real rules
        try:
            rules = self.current_rules()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.error.clear()
        self._rules = rules
        self.saved.emit(rules)

    def _show(self, rules: ContributionRules) -> None:
        # The window editor row is left alone: it may hold a window the volunteer is
        # still putting together, and it is not part of the rules until added.
        self.idle_only.setChecked(rules.idle_only)
        self.idle_minutes.setEnabled(rules.idle_only)
        with QSignalBlocker(self.idle_minutes):
            self.idle_minutes.setValue(round(rules.idle_minutes))
        self._idle_exact = rules.idle_minutes
        self.gpu_only_when_idle.setChecked(rules.gpu_only_when_idle)
        self.schedule_only.setChecked(rules.schedule_only)
        self._schedule_toggled(rules.schedule_only)
        self._set_windows(list(rules.windows))
        battery = self.battery_group.button(_BATTERY_CHOICES.index(rules.battery))
        battery.setChecked(True)
        self.battery_min_percent.setValue(rules.battery_min_percent)
        self.battery_min_percent.setEnabled(rules.battery == "above")
        self.busy_pause.setChecked(rules.busy_pause)
        self.busy_percent.setValue(rules.busy_percent)
        self.busy_percent.setEnabled(rules.busy_pause)
        self.error.clear()
        self.window_error.clear()

    def _editing(self) -> bool:
        assert self._rules is not None
        try:
            return self.current_rules() != self._rules
        except ValueError:
            return True

    def _revert(self) -> None:
        if self._rules is not None:
            self._show(self._rules)

    def _idle_edited(self) -> None:
        self._idle_exact = None

    def _schedule_toggled(self, checked: bool) -> None:
        self.chart.set_in_use(checked)
        self.chart_caption.setText(
            "Shaded: the hours the pool may use."
            if checked
            else 'Shaded hours count once "Only at these times" is ticked.'
        )
        if checked and self.error.text() == NO_WINDOWS_MESSAGE:
            self.error.clear()

    # -- the window editor ---------------------------------------------------------------

    def _set_windows(self, windows: list[WeeklyWindow], select: int | None = None) -> None:
        self._windows = windows
        with QSignalBlocker(self.window_list):
            self.window_list.clear()
            for window in windows:
                self.window_list.addItem(QListWidgetItem(window.describe()))
            if select is not None:
                self.window_list.setCurrentRow(select)
        self.chart.set_windows(windows)
        self._selection_changed(load=False)
        if windows and self.error.text() == NO_WINDOWS_MESSAGE:
            self.error.clear()

    def _selected_row(self) -> int | None:
        rows = [index.row() for index in self.window_list.selectedIndexes()]
        return rows[0] if rows else None

    def _selection_changed(self, *_: object, load: bool = True) -> None:
        row = self._selected_row()
        self.update_button.setEnabled(row is not None)
        self.remove_button.setEnabled(row is not None)
        if load and row is not None:
            self._load_editor(self._windows[row])
            self.window_error.clear()

    def _load_editor(self, window: WeeklyWindow) -> None:
        for day, button in enumerate(self.day_buttons):
            button.setChecked(day in window.days)
        self.start_time.setTime(_qtime(window.start))
        self.end_time.setTime(_qtime(window.end))
        self._times_changed()

    def _times_changed(self) -> None:
        start = _pytime(self.start_time.time())
        end = _pytime(self.end_time.time())
        if end == start:
            note = "(24 hours, ends the next day)"
        elif end == time(0):
            note = "(ends at midnight)"
        elif end < start:
            note = "(ends the next day)"
        else:
            note = ""
        self.next_day_note.setText(note)

    def _editor_window(self) -> WeeklyWindow | None:
        days = tuple(day for day, button in enumerate(self.day_buttons) if button.isChecked())
        if not days:
            self.window_error.setText(NO_DAYS_MESSAGE)
            return None
        self.window_error.clear()
        return WeeklyWindow(
            days=days,
            start=_pytime(self.start_time.time()),
            end=_pytime(self.end_time.time()),
        )

    def _add(self) -> None:
        window = self._editor_window()
        if window is None:
            return
        if window in self._windows:
            self._set_windows(self._windows, select=self._windows.index(window))
            self.window_error.setText("That time window is already in the list.")
            return
        self._set_windows([*self._windows, window], select=len(self._windows))

    def _update(self) -> None:
        row = self._selected_row()
        window = self._editor_window()
        if row is None or window is None:
            return
        windows = list(self._windows)
        windows[row] = window
        self._set_windows(windows, select=row)

    def _remove(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        self._set_windows([w for i, w in enumerate(self._windows) if i != row])
        self.window_error.clear()

    def _use_preset(self, windows: Sequence[WeeklyWindow]) -> None:
        self._set_windows(list(windows))
        self.window_error.clear()
