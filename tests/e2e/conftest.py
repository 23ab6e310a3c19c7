"""Fixtures of the whole-system tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.processes import Process


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test started; stopped in reverse order when it ends."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()
