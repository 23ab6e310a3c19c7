"""Time as the coordinator sees it, injectable so tests can move it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Returns the current time in Unix seconds."""

system_clock: Clock = time.time


def to_datetime(timestamp: float) -> datetime:
    """A stored Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC)
