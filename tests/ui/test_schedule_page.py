"""The Schedule tab's real widgets, offscreen: the form, the weekly editor, the week chart."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt, QTime
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QRadioButton, QWidget
from pytestqt.qtbot import QtBot

from desktop_app.agent.schedule import DEFAULT_WINDOWS, ContributionRules, WeeklyWindow
from desktop_app.ui.schedule_page import NIGHTS, SchedulePage, WeekChart

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WEEKEND_NIGHTS = WeeklyWindow(days=(5, 6), start=time(22), end=time(6))
UNUSUAL = ContributionRules(
    idle_only=True,
    idle_minutes=0.05,
    schedule_only=True,
    windows=(WEEKEND_NIGHTS, WeeklyWindow(days=(0, 2), start=time(12, 30), end=time(13, 15))),
    battery="above",
    battery_min_percent=35,
    busy_pause=False,
    busy_percent=80,
    gpu_only_when_idle=True,
)


@pytest.fixture
def page(qtbot: QtBot) -> SchedulePage:
    page = SchedulePage()
    qtbot.addWidget(page)
    page.resize(760, 900)
    page.show()
    qtbot.waitExposed(page)
    return page


def click(qtbot: QtBot, widget: QWidget) -> None:
    # A check box or radio button reacts only on its box and text, not across its whole
    # stretched width, so click near its left edge as a person would.
    if isinstance(widget, (QCheckBox, QRadioButton)):
        pos = QPoint(8, widget.height() // 2)
    else:
        pos = widget.rect().center()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=pos)


def click_window(qtbot: QtBot, page: SchedulePage, row: int) -> None:
    rect = page.window_list.visualItemRect(page.window_list.item(row))
    qtbot.mouseClick(page.window_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def listed(page: SchedulePage) -> list[str]:
    return [page.window_list.item(row).text() for row in range(page.window_list.count())]


def choose_days(page: SchedulePage, qtbot: QtBot, days: set[int]) -> None:
    for day, button in enumerate(page.day_buttons):
        if button.isChecked() != (day in days):
            click(qtbot, button)


@pytest.mark.parametrize("rules", [ContributionRules(), UNUSUAL], ids=["default", "unusual"])
def test_load_then_current_rules_round_trips(page: SchedulePage, rules: ContributionRules) -> None:
    page.load(rules)
    assert page.current_rules() == rules


def test_a_fractional_idle_time_is_kept_until_the_spin_box_changes(
    page: SchedulePage, qtbot: QtBot
) -> None:
    page.load(UNUSUAL)
    assert page.idle_minutes.value() == 1  # whole minutes shown, never below the range
    assert page.current_rules().idle_minutes == 0.05
    page.idle_minutes.setValue(3)
    assert page.current_rules().idle_minutes == 3.0


def test_tick_idle_only_and_save(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules())
    assert not page.idle_minutes.isEnabled()
    click(qtbot, page.idle_only)
    assert page.idle_minutes.isEnabled()
    page.idle_minutes.setValue(15)
    with qtbot.waitSignal(page.saved, timeout=1000) as saved:
        click(qtbot, page.save_button)
    rules = saved.args[0]
    assert isinstance(rules, ContributionRules)
    assert rules.idle_only and rules.idle_minutes == 15
    assert rules == ContributionRules(idle_only=True, idle_minutes=15)
    assert page.error.text() == ""


def test_power_and_other_programs(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules())
    assert page.battery_never.isChecked() and not page.battery_min_percent.isEnabled()
    click(qtbot, page.battery_above)
    assert page.battery_min_percent.isEnabled()
    page.battery_min_percent.setValue(70)
    click(qtbot, page.busy_pause)
    assert not page.busy_percent.isEnabled()
    click(qtbot, page.gpu_only_when_idle)
    rules = page.current_rules()
    assert (rules.battery, rules.battery_min_percent) == ("above", 70)
    assert not rules.busy_pause and rules.gpu_only_when_idle
    click(qtbot, page.battery_allow)
    assert page.current_rules().battery == "allow"


def test_weekly_editor_add_update_remove(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules(windows=()))
    assert listed(page) == []
    assert not page.update_button.isEnabled() and not page.remove_button.isEnabled()

    choose_days(page, qtbot, {5, 6})
    page.start_time.setTime(QTime(22, 0))
    page.end_time.setTime(QTime(6, 0))
    assert page.next_day_note.text() == "(ends the next day)"
    click(qtbot, page.add_button)
    assert listed(page) == ["Sat, Sun 22:00–06:00 (next day)"]
    assert page.current_rules().windows == (WEEKEND_NIGHTS,)
    assert page.chart.covered(5, 23) and page.chart.covered(6, 5) and page.chart.covered(0, 0)
    assert not page.chart.covered(0, 6) and not page.chart.covered(4, 23)

    # Selecting a window loads it into the editor.
    page.start_time.setTime(QTime(9, 0))
    choose_days(page, qtbot, {0})
    click_window(qtbot, page, 0)  # already selected after Add; a click still loads it
    assert [button.isChecked() for button in page.day_buttons] == [False] * 5 + [True] * 2
    assert page.start_time.time() == QTime(22, 0) and page.end_time.time() == QTime(6, 0)
    assert page.update_button.isEnabled() and page.remove_button.isEnabled()

    page.start_time.setTime(QTime(23, 0))
    click(qtbot, page.update_button)
    assert listed(page) == ["Sat, Sun 23:00–06:00 (next day)"]
    assert not page.chart.covered(5, 22) and page.chart.covered(5, 23)

    page.end_time.setTime(QTime(23, 0))
    assert page.next_day_note.text() == "(24 hours, ends the next day)"
    page.end_time.setTime(QTime(0, 0))
    assert page.next_day_note.text() == "(ends at midnight)"
    page.end_time.setTime(QTime(23, 30))
    assert page.next_day_note.text() == ""

    click_window(qtbot, page, 0)
    click(qtbot, page.remove_button)
    assert listed(page) == []
    assert page.current_rules().windows == ()
    assert not page.remove_button.isEnabled()


def test_adding_the_same_window_twice_selects_the_one_there(
    page: SchedulePage, qtbot: QtBot
) -> None:
    page.load(ContributionRules(windows=(WEEKEND_NIGHTS,)))
    page.window_list.setCurrentRow(0)
    page.window_list.clearSelection()
    click(qtbot, page.add_button)
    assert listed(page) == ["Sat, Sun 22:00–06:00 (next day)"]
    assert page.window_error.text() == "That time window is already in the list."


def test_quick_choices(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules(windows=(WEEKEND_NIGHTS,)))
    click(qtbot, page.nights_preset)
    assert listed(page) == ["every day 22:00–07:00 (next day)"]
    assert page.current_rules().windows == NIGHTS
    click(qtbot, page.evenings_preset)
    assert listed(page) == ["Mon–Fri 18:00–08:00 (next day)", "Sat, Sun all day"]
    assert page.current_rules().windows == DEFAULT_WINDOWS


def test_only_at_these_times_needs_a_window(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules(windows=()))
    click(qtbot, page.schedule_only)
    emitted: list[object] = []
    page.saved.connect(emitted.append)
    click(qtbot, page.save_button)
    assert emitted == []
    assert page.error.text() == 'Add at least one time window, or turn off "Only at these times".'
    with pytest.raises(ValueError, match="Add at least one time window"):
        page.current_rules()

    click(qtbot, page.nights_preset)
    assert page.error.text() == ""
    with qtbot.waitSignal(page.saved, timeout=1000) as saved:
        click(qtbot, page.save_button)
    assert saved.args[0] == ContributionRules(schedule_only=True, windows=NIGHTS)


def test_a_window_needs_a_day(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules(windows=(WEEKEND_NIGHTS,)))
    choose_days(page, qtbot, set())
    click(qtbot, page.add_button)
    assert page.window_error.text() == "Choose at least one day for this time window."
    assert listed(page) == ["Sat, Sun 22:00–06:00 (next day)"]

    click_window(qtbot, page, 0)
    assert page.window_error.text() == ""
    choose_days(page, qtbot, set())
    click(qtbot, page.update_button)
    assert page.window_error.text() == "Choose at least one day for this time window."
    assert page.current_rules().windows == (WEEKEND_NIGHTS,)


def test_load_while_editing_keeps_the_edits_and_undo_restores(
    page: SchedulePage, qtbot: QtBot
) -> None:
    page.load(ContributionRules())
    click(qtbot, page.idle_only)
    click(qtbot, page.nights_preset)
    edited = page.current_rules()

    newer = ContributionRules(busy_percent=90, battery="allow")
    page.load(newer)  # e.g. the engine reports rules changed elsewhere
    assert page.current_rules() == edited

    click(qtbot, page.revert_button)
    assert page.current_rules() == newer
    assert listed(page) == [window.describe() for window in DEFAULT_WINDOWS]

    page.load(UNUSUAL)  # not editing any more: shown at once
    assert page.current_rules() == UNUSUAL


def test_load_while_the_form_is_invalid_keeps_it(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules(windows=()))
    click(qtbot, page.schedule_only)
    page.load(ContributionRules(busy_percent=90))
    assert page.schedule_only.isChecked() and listed(page) == []
    click(qtbot, page.revert_button)
    assert page.current_rules() == ContributionRules(busy_percent=90)


def test_week_chart_shades_the_covered_hours(qtbot: QtBot) -> None:
    chart = WeekChart()
    qtbot.addWidget(chart)
    chart.resize(chart.sizeHint())
    chart.set_windows((WeeklyWindow(days=(0, 1, 2, 3, 4), start=time(18), end=time(8)),))

    def colour(day: int, hour: int) -> QColor:
        image = chart.grab().toImage()
        return image.pixelColor(chart.cell_rect(day, hour).center().toPoint())

    assert colour(0, 18) == WeekChart.FILLED  # Monday evening
    assert colour(1, 7) == WeekChart.FILLED  # Tuesday morning, from Monday's window
    assert colour(5, 7) == WeekChart.FILLED  # Saturday morning, from Friday's window
    assert colour(0, 7) == WeekChart.EMPTY  # Monday morning: Sunday has no window
    assert colour(2, 12) == WeekChart.EMPTY  # Wednesday noon
    assert colour(5, 20) == WeekChart.EMPTY  # Saturday evening
    chart.set_in_use(False)
    assert colour(0, 18) == WeekChart.FILLED_UNUSED


def test_screenshot(page: SchedulePage, qtbot: QtBot) -> None:
    page.load(ContributionRules(idle_only=True, idle_minutes=10, schedule_only=True))
    page.window_list.setCurrentRow(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / "schedule-tab.png"
    assert page.grab().save(str(target))
    assert target.stat().st_size > 0
