"""The volunteer's rules in the real widgets (offscreen) over a real engine and coordinator:
the "why" line and its fix in Overview and the tray, the Schedule tab, the live idle readout
and the start-at-login switch in Settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop_app.agent.autostart import XdgDesktopAutostart
from desktop_app.agent.power import BatteryState
from desktop_app.agent.schedule import ContributionRules
from desktop_app.agent.settings import SettingsStore, VolunteerSettings
from tests.fixtures.coordinator import LiveCoordinator
from tests.fixtures.machine_signals import MachineSignals

from .conftest import DesktopFactory
from .test_tray_app import schedulability

IDLE_ONLY = VolunteerSettings(
    joined=True, rules=ContributionRules(idle_only=True, idle_minutes=10, busy_pause=False)
)


def test_why_line_names_the_rule_and_its_fix_works(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    signals = MachineSignals()
    desktop = make_desktop(IDLE_ONLY, signals=signals)
    desktop.start(show_window=True)
    overview = desktop.window.overview
    qtbot.waitUntil(lambda: overview.fix_button.isVisible(), timeout=5000)
    assert overview.why.text() == (
        "Why isn't it contributing? Because of your rule “Only when I have not used the "
        "computer for 10 minutes”."
    )
    assert overview.fix_button.text() == "Contribute while I use it"
    assert desktop.tray.why_action.isVisible()
    assert desktop.tray.fix_action.text() == "Contribute while I use it"
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "paused", timeout=5000)

    qtbot.mouseClick(overview.fix_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "active", timeout=5000)
    qtbot.waitUntil(lambda: overview.why.text().startswith("Contributing now."), timeout=5000)
    assert not overview.fix_button.isVisible()
    assert not desktop.tray.why_action.isVisible()
    assert desktop.tray.icon.toolTip().endswith("This computer is helping the pool.")
    store = SettingsStore(desktop.contribution.settings_path.parent)
    qtbot.waitUntil(lambda: not store.load().settings.rules.idle_only, timeout=5000)


def test_the_tray_offers_the_fix_for_the_battery(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    signals = MachineSignals()
    signals.battery = BatteryState(on_battery=True, percent=60.0)
    desktop = make_desktop(VolunteerSettings(joined=True), signals=signals)
    desktop.start()
    tray = desktop.tray
    qtbot.waitUntil(lambda: tray.fix_action.isVisible(), timeout=5000)
    assert tray.fix_action.text() == "Contribute on battery too"
    # "Why isn't it contributing?" opens the Overview, where the rule is named.
    tray.why_action.trigger()
    overview = desktop.window.overview
    assert desktop.window.tabs.currentWidget() is overview
    assert overview.why.text().endswith("Because of your rule “Never on battery”.")
    tray.fix_action.trigger()
    qtbot.waitUntil(lambda: desktop.contribution.snapshot().active, timeout=5000)
    assert desktop.contribution.settings.rules.battery == "allow"
    qtbot.waitUntil(lambda: not tray.why_action.isVisible(), timeout=5000)


def test_schedule_tab_saves_the_rules(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    desktop = make_desktop(VolunteerSettings(joined=True), signals=MachineSignals())
    desktop.start(show_window=True, tab="schedule")
    page = desktop.window.schedule
    assert desktop.window.tabs.currentWidget() is page
    qtbot.waitUntil(lambda: desktop.contribution.snapshot().active, timeout=5000)
    page.battery_allow.setChecked(True)
    page.busy_percent.setValue(80)
    # A snapshot arriving while the volunteer edits keeps their edits.
    desktop.window.show_snapshot(desktop.contribution.snapshot())
    assert page.busy_percent.value() == 80
    with qtbot.waitSignal(page.saved, timeout=2000):
        page.save_button.click()
    store = SettingsStore(desktop.contribution.settings_path.parent)
    qtbot.waitUntil(lambda: store.load().settings.rules.busy_percent == 80, timeout=5000)
    assert desktop.contribution.settings.rules.battery == "allow"


def test_settings_show_idle_detection_working_and_start_at_login(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    signals = MachineSignals()
    signals.leave(42)
    autostart = XdgDesktopAutostart(["/opt/rma/rma-desktop", "--autostart"], tmp_path / "xdg")
    # Written by an earlier install elsewhere: this run points it here.
    XdgDesktopAutostart(["/old/place/rma-desktop", "--autostart"], tmp_path / "xdg").enable()
    desktop = make_desktop(VolunteerSettings(joined=True), signals=signals, autostart=autostart)
    desktop.start(show_window=True, tab="settings")
    page = desktop.window.settings
    qtbot.waitUntil(lambda: "working" in page.idle.text(), timeout=5000)
    assert page.idle.text().startswith(
        "Idle detection: the test's idle clock — working. Idle for 4"
    )
    signals.touch()
    qtbot.waitUntil(lambda: "Idle for 0 s" in page.idle.text(), timeout=5000)
    signals.idle_works = False
    qtbot.waitUntil(lambda: "not working here" in page.idle.text(), timeout=5000)

    assert page.start_at_login.isVisible() and page.start_at_login.isChecked()
    qtbot.waitUntil(lambda: "/opt/rma/" in autostart.path.read_text(), timeout=5000)
    page.start_at_login.setChecked(False)
    page.save()
    qtbot.waitUntil(lambda: not autostart.is_enabled(), timeout=5000)
