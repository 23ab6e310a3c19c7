""" "Only when I am away", for real: ``rma-desktop`` on an X server reads the X idle counter
(libXss), starts the pool's real containers once nobody has touched the computer for the
threshold, and stops them within two seconds of the next input (xdotool).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.processes import Process
from tests.e2e.test_desktop_process import (
    only_worker,
    pool_and_app,
    running_containers,
    service_state,
    shoot,
)
from tests.fixtures.container_images import LocalRegistry
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.x_desktop import XDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.desktop]

IDLE_S = 4.0
"""The idle threshold the volunteer chose (short, for the test)."""
COMEBACK_LIMIT_S = 2.0
"""The promise: the computer is theirs again within this long after they touch it."""


def touch(desktop: XDesktop) -> float:
    """Real pointer input; the time it reached the X server."""
    desktop.nudge_pointer()
    return time.monotonic()


def test_contributes_only_while_nobody_uses_the_computer(
    tmp_path: Path,
    processes: list[Process],
    local_registry: LocalRegistry,
    docker_engine: DockerEngine,
    x_desktop: XDesktop,
) -> None:
    daemon = docker_engine
    coordinator, app = pool_and_app(tmp_path, processes, local_registry, daemon, x_desktop)
    rules = {"idle_only": True, "idle_minutes": IDLE_S / 60, "busy_pause": False}
    app.write_settings({"joined": True, "rules": rules})

    # Someone is at the computer: the app joins the pool, but nothing runs.
    app.start()
    wait_until(lambda: only_worker(coordinator), 30, f"registration; the app said:\n{app.log()}")
    touched = touch(x_desktop)
    wait_until(
        lambda: "Waiting: you are using the computer" in app.log(), 10, "the waiting decision"
    )
    assert "Idle detection works (the X11 screen saver extension" in app.log(), app.log()
    assert running_containers(daemon) == []
    assert only_worker(coordinator)["schedulability"] == "paused"

    # Left alone: the service starts once the threshold has passed, not before.
    wait_until(lambda: running_containers(daemon), 60, f"the service to start:\n{app.log()}")
    started = time.monotonic()
    assert started - touched >= IDLE_S
    wait_until(lambda: service_state(coordinator) == "running", 60, "the pool to see it run")
    assert only_worker(coordinator)["schedulability"] == "active"
    window = app.show("settings")  # a second launch is not input: it keeps contributing
    shoot(x_desktop, "settings-idle.png", window)
    window = app.show("overview")
    assert running_containers(daemon)

    # The volunteer comes back: the pool is told and the containers stop within 2 s.
    came_back = touch(x_desktop)
    wait_until(lambda: running_containers(daemon) == [], 10, "the containers to stop")
    reaction = time.monotonic() - came_back
    assert reaction < COMEBACK_LIMIT_S, f"stopped {reaction:.2f} s after the input"
    wait_until(lambda: only_worker(coordinator)["schedulability"] == "paused", 5, "paused")
    shoot(x_desktop, "overview-in-use.png", window)
