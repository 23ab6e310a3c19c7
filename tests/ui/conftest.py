"""The tray app's real widgets (offscreen) over a real engine and a real coordinator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QUrl

from desktop_app.agent.settings import VolunteerSettings
from desktop_app.ui.app import DesktopApp
from tests.agent.test_contribution import make
from tests.fixtures.coordinator import LiveCoordinator
from tests.fixtures.machine_signals import MachineSignals

DesktopFactory = Callable[..., DesktopApp]


@pytest.fixture
def opened_urls() -> list[QUrl]:
    return []


@pytest.fixture
def make_desktop(
    qtbot: object, tmp_path: Path, live_coordinator: LiveCoordinator, opened_urls: list[QUrl]
) -> Iterator[DesktopFactory]:
    made: list[DesktopApp] = []

    def factory(
        settings: VolunteerSettings | None = None,
        *,
        tray_available: bool = True,
        notice: str | None = None,
        signals: MachineSignals | None = None,
        **options: Any,
    ) -> DesktopApp:
        contribution = make(
            tmp_path,
            live_coordinator,
            settings or VolunteerSettings(),
            notice,
            signals=signals,
            **options,
        )
        desktop = DesktopApp(
            contribution, tray_available=tray_available, open_url=opened_urls.append
        )
        made.append(desktop)
        return desktop

    yield factory
    for desktop in made:
        desktop.quit()
        desktop.tasks.wait(10_000)
        # The engine stops on its own thread; wait so no agent outlives its coordinator.
        thread = desktop.contribution._thread
        if thread is not None:
            thread.join(20)
        desktop.window.close()
        desktop.window.deleteLater()
