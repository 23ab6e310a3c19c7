"""The real tray app, as a volunteer meets it: ``rma-desktop`` on an X server with a tray,
a real coordinator process, a real Docker engine and registry; driven with xdotool.

Also saves the screenshots in docs/screenshots/ that the README shows.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import (
    CoordinatorProcess,
    Process,
    entry_point,
    web_service_coordinator,
    write_settings,
)
from tests.fixtures.container_images import LocalRegistry
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.x_desktop import TrayIcon, Window, XDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.desktop]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
APP_CLASS = "rma-desktop"
SERVICE = "web"
STATS_SETTLE_S = 4.0
HUMAN_PAUSE_S = 0.5
MIN_WINDOW_WIDTH = 200
MANAGED = {"label": ["org.rma.managed=true", f"org.rma.service={SERVICE}"]}


def running_containers(engine: DockerEngine) -> list[Any]:
    client = engine.client()
    try:
        return list(client.containers.list(filters=MANAGED, ignore_removed=True))
    finally:
        client.close()


def only_worker(coordinator: CoordinatorProcess) -> dict[str, Any]:
    workers = list(coordinator.workers().values())
    return workers[0] if len(workers) == 1 else {}


def service_state(coordinator: CoordinatorProcess) -> str | None:
    for container in only_worker(coordinator).get("containers", []):
        if container["service"] == SERVICE:
            return str(container["state"])
    return None


class DesktopApp:
    """One ``rma-desktop`` process on the test's X desktop."""

    def __init__(self, desktop: XDesktop, home: Path, env: dict[str, str]) -> None:
        self.desktop = desktop
        self.env = {
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_DATA_HOME": str(home / "data"),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Write the app's ``settings.json`` (as the first run and the Schedule tab would)."""
        write_settings(Path(self.env["XDG_CONFIG_HOME"]), settings)

    def launch(self, *args: str) -> subprocess.Popen[bytes]:
        command = [entry_point("rma-desktop"), "--credential-store", "file", *args]
        return self.desktop.spawn(command, extra_env=self.env, cwd=REPO)

    def start(self) -> TrayIcon:
        self.process = self.launch()
        return self.desktop.wait_for_tray_icon(APP_CLASS, timeout=30, process=self.process)

    def log(self) -> str:
        assert self.process is not None
        return self.desktop.log_tail(self.process, 60)

    def window(self) -> Window:
        """The main window (not the tray icon's little window, which has the same title)."""
        icons = {icon.id for icon in self.desktop.tray_icons()}

        def main_window() -> Window | None:
            found = self.desktop.find_windows("^RMA Compute$", wm_class=APP_CLASS)
            windows = [w for w in found if w.id not in icons and w.width > MIN_WINDOW_WIDTH]
            return windows[0] if windows else None

        return wait_until(main_window, 15, "the main window")

    def menu(self, icon: TrayIcon) -> Window:
        # Qt reuses the menu's window, so only what is on screen now counts as "before".
        before = {window.id for window in self.desktop.find_windows(wm_class=APP_CLASS)}
        # A fresh pointer arrival, as a person's hand makes: Qt ignores a second press at the
        # very spot whose previous press opened the menu.
        self.desktop.move_pointer(icon.x - 200, icon.y + 300)
        self.desktop.click(*icon.center, button=3)
        return self.desktop.wait_for_window(wm_class=APP_CLASS, exclude_ids=before, timeout=10)

    def choose(self, icon: TrayIcon, *keys: str) -> Window:
        """Open the tray menu and pick an item with the keyboard (disabled items are skipped)."""
        menu = self.menu(icon)
        self.desktop.key(*keys, "Return")
        self.wait_closed(menu)
        return menu

    def wait_closed(self, menu: Window) -> None:
        def closed() -> bool:
            geometry = self.desktop.window_geometry(menu.id)
            return geometry is None or not geometry.viewable

        wait_until(closed, 10, "the menu to close")
        # Qt finishes closing a popup (ungrab, focus) after it is unmapped; a person's next
        # click comes later than xdotool's would.
        time.sleep(HUMAN_PAUSE_S)

    def show(self, tab: str) -> Window:
        """A second launch, as a volunteer would: it hands over to the first and exits."""
        second = self.launch("--show", tab)
        assert second.wait(timeout=20) == 0, self.desktop.log_tail(second)
        assert "already running" in self.desktop.log_tail(second)
        return self.window()


def shoot(desktop: XDesktop, name: str, window: Window | None = None) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    crop = (window.x, window.y, window.width, window.height) if window is not None else None
    return desktop.screenshot(SCREENSHOTS / name, crop=crop)


def shoot_tray(desktop: XDesktop, name: str, icon: TrayIcon, menu: Window | None = None) -> Path:
    """The top-right corner: the tray and, when open, its menu."""
    left = min(icon.x, menu.x if menu else icon.x) - 40
    bottom = max(icon.y + icon.height, (menu.y + menu.height) if menu else 0) + 10
    width = max(icon.x + icon.width, (menu.x + menu.width) if menu else 0) - left + 10
    return desktop.screenshot(SCREENSHOTS / name, crop=(max(0, left), 0, width, bottom))


def pool_and_app(
    tmp_path: Path,
    processes: list[Process],
    registry: LocalRegistry,
    daemon: DockerEngine,
    desktop: XDesktop,
) -> tuple[CoordinatorProcess, DesktopApp]:
    """A running coordinator with the web service, and an app (not started) pointed at it."""
    coordinator = web_service_coordinator(tmp_path, registry.image, SERVICE)
    processes.append(coordinator.start())
    app = DesktopApp(
        desktop,
        tmp_path / "home",
        {"RMA_COORDINATOR_URL": coordinator.url, "DOCKER_HOST": daemon.host},
    )
    return coordinator, app


def test_volunteer_journey_on_a_real_desktop(
    tmp_path: Path,
    processes: list[Process],
    local_registry: LocalRegistry,
    docker_engine: DockerEngine,
    x_desktop: XDesktop,
) -> None:
    daemon = docker_engine
    coordinator, app = pool_and_app(tmp_path, processes, local_registry, daemon, x_desktop)

    # First run: the guided check, and nothing joins before the volunteer agrees.
    icon = app.start()
    window = app.window()
    wait_until(lambda: "Checked this computer" in app.log(), 20, "the first-run check")
    shoot(x_desktop, "first-run.png", window)
    assert coordinator.workers() == {}
    assert app.process is not None
    app.process.terminate()
    assert app.process.wait(timeout=30) == 0, app.log()

    # Joined (as after pressing "Join the pool"): it starts in the tray and contributes.
    # Not "wait while my programs are busy": this machine's load (the tests) is not the point.
    app.write_settings({"joined": True, "rules": {"busy_pause": False}})
    icon = app.start()
    wait_until(
        lambda: service_state(coordinator) == "running",
        90,
        f"the service to run; the app said:\n{app.log()}",
    )
    assert len(running_containers(daemon)) == 1
    shoot_tray(x_desktop, "tray-contributing.png", icon)

    # The tray menu: Pause is the first enabled item.
    menu = app.menu(icon)
    shoot_tray(x_desktop, "tray-menu.png", icon, menu)
    x_desktop.key("Escape")
    app.wait_closed(menu)
    app.choose(icon, "Down")
    wait_until(lambda: only_worker(coordinator).get("schedulability") == "paused", 15, "paused")
    wait_until(lambda: running_containers(daemon) == [], 30, "the containers to stop on pause")
    shoot_tray(x_desktop, "tray-paused.png", icon)
    app.choose(icon, "Down")  # now Resume
    wait_until(lambda: service_state(coordinator) == "running", 60, "running again")

    # Each tab, brought forward by a second launch.
    for tab in ("overview", "schedule", "containers", "settings"):
        window = app.show(tab)
        if tab == "containers":
            # For the picture only: CPU, memory and uptime arrive off the UI thread.
            time.sleep(STATS_SETTLE_S)
        if tab != "schedule":  # its picture, with rules filled in: tests/ui/test_schedule_page.py
            shoot(x_desktop, f"{tab}.png", window)

    # Quit from the menu (its last item): containers stop first, the pool is told.
    app.choose(icon, "Up")
    assert app.process is not None
    assert app.process.wait(timeout=60) == 0, app.log()
    assert running_containers(daemon) == []
    wait_until(lambda: coordinator.workers() == {}, 10, "the worker to leave the pool")
    assert "Quitting: stopping the pool's containers first." in app.log()
