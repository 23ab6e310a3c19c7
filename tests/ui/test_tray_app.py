"""The tray app's real widgets, offscreen, driving a real engine and a real coordinator."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from pytestqt.qtbot import QtBot

from desktop_app.agent.agent import AgentStatus
from desktop_app.agent.contribution import Snapshot
from desktop_app.agent.presentation import describe_situation
from desktop_app.agent.settings import SettingsStore, VolunteerSettings
from desktop_app.ui.app import DesktopApp
from desktop_app.ui.single_instance import SingleInstance, instance_name, send_to_running
from desktop_app.ui.tray import snooze_ends
from shared import ContainerReport, DockerInfo
from tests.fixtures.coordinator import LiveCoordinator

from .conftest import DesktopFactory

JOINED = VolunteerSettings(joined=True)


def schedulability(coordinator: LiveCoordinator) -> str | None:
    workers = coordinator.workers()
    return workers[0]["schedulability"] if workers else None


def registered(qtbot: QtBot, coordinator: LiveCoordinator) -> None:
    qtbot.waitUntil(lambda: schedulability(coordinator) == "active", timeout=10_000)


def test_first_run_check_then_join(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    desktop = make_desktop()
    desktop.start()
    window = desktop.window
    assert window.isVisible() and window.pages.currentWidget() is window.first_run
    first_run = window.first_run
    # The probe runs off the UI thread; its result fills the check.
    qtbot.waitUntil(lambda: "Start Docker." in first_run.docker_fix.text(), timeout=5000)
    assert "not ready" in first_run.docker_state.text()
    rows = {
        first_run.hardware.itemAt(row, first_run.hardware.ItemRole.LabelRole).widget().text()
        for row in range(first_run.hardware.rowCount())
    }
    assert {"Processor:", "Memory:", "Graphics:", "Free disk:", "Tier:"} <= rows
    assert live_coordinator.workers() == []  # nothing before the volunteer agrees
    assert not desktop.tray.pause_action.isEnabled()

    first_run.limits.cpu_kind.setCurrentIndex(1)  # cores
    first_run.limits.cpu_value.setValue(1.5)
    qtbot.mouseClick(first_run.join_button, Qt.MouseButton.LeftButton)
    registered(qtbot, live_coordinator)
    assert window.pages.currentWidget() is window.tabs
    assert desktop.contribution.settings.joined
    assert desktop.contribution.settings.cpu_limit_value == 1.5
    qtbot.waitUntil(
        lambda: SettingsStore(desktop.contribution.settings_path.parent).load().settings.joined,
        timeout=5000,
    )


def test_the_switch_pauses_and_resumes_the_agent(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    desktop = make_desktop(JOINED)
    desktop.start(show_window=True)
    registered(qtbot, live_coordinator)
    switch = desktop.window.overview.switch
    assert switch.isChecked()

    qtbot.mouseClick(switch, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "paused", timeout=5000)
    assert not switch.isChecked()
    assert desktop.tray.kind == "paused"
    assert desktop.window.header.headline.text() == "Paused"
    assert desktop.tray.resume_action.isVisible() and not desktop.tray.pause_action.isVisible()

    qtbot.mouseClick(switch, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "active", timeout=5000)
    assert switch.isChecked() and desktop.tray.kind != "paused"


def test_tray_menu_actions(
    qtbot: QtBot,
    make_desktop: DesktopFactory,
    live_coordinator: LiveCoordinator,
    opened_urls: list[QUrl],
) -> None:
    desktop = make_desktop(JOINED)
    desktop.start()
    tray = desktop.tray
    assert not desktop.window.isVisible()  # joined, with a tray: it starts in the tray
    registered(qtbot, live_coordinator)

    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "paused", timeout=5000)
    assert tray.status_action.text() == "Paused" and tray.kind == "paused"
    tray.resume_action.trigger()
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "active", timeout=5000)

    before = datetime.now(UTC)
    tray.snooze_hour_action.trigger()
    snapshot = desktop.contribution.snapshot()
    assert snapshot.paused and snapshot.paused_until is not None
    assert timedelta(minutes=59) < snapshot.paused_until - before < timedelta(minutes=61)
    assert tray.status_action.text().startswith("Paused until")
    qtbot.waitUntil(lambda: schedulability(live_coordinator) == "paused", timeout=5000)
    tray.snooze_tomorrow_action.trigger()
    until = desktop.contribution.snapshot().paused_until
    assert until is not None and until.astimezone().hour == 8
    tray.resume_action.trigger()
    assert not desktop.contribution.snapshot().paused

    tray.open_action.trigger()
    assert desktop.window.isVisible()
    tray.logs_action.trigger()
    assert opened_urls == [QUrl.fromLocalFile(str(desktop.contribution.log_dir))]

    with qtbot.waitSignal(desktop.finished, timeout=20_000):
        tray.quit_action.trigger()
    qtbot.waitUntil(lambda: live_coordinator.workers() == [], timeout=5000)
    assert not desktop.contribution.running


def test_snooze_choices() -> None:
    now = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    assert snooze_ends("hour", now) == now + timedelta(hours=1)
    tomorrow = snooze_ends("tomorrow", now)
    assert tomorrow.astimezone().hour == 8 and tomorrow > now
    assert tomorrow - now < timedelta(days=2)


def _with_containers(desktop: DesktopApp, *reports: ContainerReport) -> Snapshot:
    status = AgentStatus(
        "contributing",
        "Connected.",
        tier=2,
        docker=DockerInfo(usable=True, status="running"),
        containers=reports,
    )
    base = desktop.contribution.snapshot()
    snapshot = replace(
        base,
        settings=JOINED,
        status=status,
        situation=describe_situation(status, JOINED, datetime.now(UTC)),
    )
    desktop.bridge.changed.emit(snapshot)
    return snapshot


def test_container_table_and_progress_follow_agent_events(
    qtbot: QtBot, make_desktop: DesktopFactory
) -> None:
    desktop = make_desktop()  # not started: only the events below reach the views
    window = desktop.window
    window.show()
    window.tabs.setCurrentWidget(window.containers)
    page = window.containers
    assert not page.empty.isHidden() and page.table.isHidden()

    def pulling(progress: float) -> ContainerReport:
        return ContainerReport(
            service="ocr",
            image="registry.example/ocr:1",
            state="pulling",
            progress=progress,
            bytes_done=int(progress * 400_000_000),
            bytes_total=400_000_000,
        )

    _with_containers(desktop, pulling(0.3))
    bar = page.progress_bar("ocr")
    assert bar is not None and bar.value() == 300
    assert "30%" in bar.format() and not page.table.isHidden() and page.empty.isHidden()
    assert desktop.tray.status_action.text() == "Downloading ocr (30%)"
    assert desktop.tray.kind == "contributing"

    _with_containers(desktop, pulling(0.8))
    assert page.progress_bar("ocr") is bar and bar.value() == 800

    running = ContainerReport(service="ocr", image="registry.example/ocr:1", state="running")
    broken = ContainerReport(
        service="ner", image="ner:2", state="error", message="Not enough disk space."
    )
    _with_containers(desktop, running, broken)
    assert page.progress_bar("ocr") is None
    assert page.table.rowCount() == 2
    assert page.table.item(page.row_of("ocr"), 2).text() == "Running"
    assert page.table.item(page.row_of("ner"), 2).text() == "Cannot run"
    assert desktop.tray.kind == "attention"
    assert "Not enough disk space." in desktop.window.header.reason.text()

    # Selecting a row asks the engine for its log, off the UI thread.
    page.table.selectRow(page.row_of("ocr"))
    qtbot.waitUntil(lambda: "Nothing runs" in page.log.toPlainText(), timeout=5000)

    _with_containers(desktop)
    assert not page.empty.isHidden() and page.table.rowCount() == 0


def test_corrupt_settings_are_reported_in_the_window(
    qtbot: QtBot, make_desktop: DesktopFactory, tmp_path: Path
) -> None:
    store = SettingsStore(tmp_path / "elsewhere")
    store.path.parent.mkdir()
    store.path.write_text('{"joined": tru')
    loaded = store.load()
    assert loaded.notice is not None
    desktop = make_desktop(loaded.settings, notice=loaded.notice)
    desktop.start()
    banner = desktop.window.notice
    assert banner.isVisible() and "defaults" in banner.text.text()
    assert "settings.json.corrupt-" in banner.text.text()
    qtbot.mouseClick(banner.close_button, Qt.MouseButton.LeftButton)
    assert not banner.isVisible()
    assert desktop.contribution.snapshot().notice is None


def test_settings_tab_checks_and_saves(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    desktop = make_desktop(JOINED)
    desktop.start(show_window=True, tab="settings")
    registered(qtbot, live_coordinator)
    page = desktop.window.settings
    assert desktop.window.tabs.currentWidget() is page
    assert "only you can read" in page.credentials.text()  # no keyring here: said plainly

    page.coordinator.setText("pool.example.org")
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert "not a web address" in page.error.text()
    assert desktop.contribution.settings.coordinator_url is None

    page.coordinator.setText("")
    page.limits.memory_limited.setChecked(True)
    page.limits.memory_gib.setValue(2)
    page.notifications.setChecked(False)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert page.error.text() == ""
    settings = desktop.contribution.settings
    assert settings.memory_limit_gib == 2 and not settings.notifications
    store = SettingsStore(desktop.contribution.settings_path.parent)
    qtbot.waitUntil(lambda: store.load().settings.memory_limit_gib == 2, timeout=5000)


def test_without_a_tray_the_window_says_so_and_closing_keeps_it_running(
    qtbot: QtBot, make_desktop: DesktopFactory
) -> None:
    desktop = make_desktop(JOINED, tray_available=False)
    desktop.start()
    window = desktop.window
    assert window.isVisible()
    assert window.no_tray_banner.isVisible() and "AppIndicator" in window.no_tray_banner.text.text()
    assert window.quit_button.isVisible()
    assert not desktop.tray.icon.isVisible()
    window.close()
    assert window.isMinimized() or window.isVisible()
    with qtbot.waitSignal(desktop.finished, timeout=20_000):
        qtbot.mouseClick(window.quit_button, Qt.MouseButton.LeftButton)


def test_notifications_for_changes_that_matter(
    qtbot: QtBot, make_desktop: DesktopFactory, live_coordinator: LiveCoordinator
) -> None:
    desktop = make_desktop(JOINED)
    notices = []
    desktop.tray.notified.connect(notices.append)
    desktop.start()
    registered(qtbot, live_coordinator)
    # Docker is missing: said once, when it is found out.
    qtbot.waitUntil(lambda: [n.kind for n in notices] == ["attention"], timeout=5000)
    # The volunteer's own Pause is not announced back to them ...
    desktop.tray.pause_action.trigger()
    qtbot.waitUntil(lambda: desktop.tray.kind == "paused", timeout=5000)
    qtbot.wait(300)
    assert [n.kind for n in notices] == ["attention"]
    desktop.tray.resume_action.trigger()
    qtbot.waitUntil(lambda: desktop.tray.kind == "attention", timeout=5000)
    # ... a pause it did not cause (a schedule, later) is.
    desktop.volunteer_action_window_s = 0
    with qtbot.waitSignal(desktop.tray.notified, timeout=5000) as paused:
        desktop.contribution.set_contributing(False)
    assert paused.args[0].kind == "paused"
    desktop.contribution.resume()
    qtbot.waitUntil(lambda: desktop.tray.kind == "attention", timeout=5000)
    qtbot.wait(300)
    # The same problem is not announced again within the quiet period.
    assert [notice.kind for notice in notices] == ["attention", "paused"]
    kinds = [notice.kind for notice in notices]
    desktop.contribution.update_settings(
        desktop.contribution.settings.model_copy(update={"notifications": False})
    )
    desktop.tray.pause_action.trigger()
    qtbot.wait(200)
    assert [notice.kind for notice in notices] == kinds  # switched off: no more


def test_a_second_launch_brings_the_first_forward(
    qtbot: QtBot, make_desktop: DesktopFactory, tmp_path: Path
) -> None:
    desktop = make_desktop(JOINED)
    desktop.start()
    name = instance_name(str(tmp_path / "single"))
    assert not send_to_running(name, "show")  # nobody listens yet
    instance = SingleInstance(name, desktop)
    assert instance.listen()
    instance.message.connect(desktop.handle_message)
    try:
        assert not desktop.window.isVisible()
        with qtbot.waitSignal(instance.message, timeout=5000) as message:
            assert send_to_running(name, "show:settings")
        assert message.args == ["show:settings"]
        assert desktop.window.isVisible()
        assert desktop.window.tabs.currentWidget() is desktop.window.settings
        # A crashed first instance leaves its socket behind; the next one takes over.
    finally:
        instance.close()
