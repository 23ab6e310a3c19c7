"""Fixtures for the idle backends' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.idle.fake_dbus import private_bus_daemon


@pytest.fixture
def private_bus(tmp_path: Path) -> Iterator[str]:
    """A fresh private ``dbus-daemon --session`` for one test; yields its address."""
    with private_bus_daemon(tmp_path / "dbus.log") as address:
        yield address
