"""The battery adapter: what psutil may say (or fail to say), and the real one here."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import psutil
import pytest

from desktop_app.agent.power import BatteryState, read_battery


class Reading(NamedTuple):
    percent: float
    secsleft: int
    power_plugged: bool | None


def sensors_saying(reading: Reading | None) -> Callable[[], Reading | None]:
    return lambda: reading


def raising(exc: BaseException) -> Callable[[], Reading | None]:
    def sensors() -> Reading | None:
        raise exc

    return sensors


def test_no_battery_is_none() -> None:
    assert read_battery(sensors_saying(None)) is None


@pytest.mark.parametrize(
    "exc",
    [
        NotImplementedError("no battery support here"),
        OSError(5, "Input/output error"),
        PermissionError(13, "Permission denied"),
        psutil.AccessDenied(),
    ],
)
def test_a_failing_os_is_none(exc: BaseException) -> None:
    assert read_battery(raising(exc)) is None


def test_a_bug_is_not_hidden() -> None:
    with pytest.raises(TypeError):
        read_battery(raising(TypeError("a bug")))


def test_on_battery_at_15_percent() -> None:
    reading = Reading(percent=15, secsleft=3600, power_plugged=False)
    assert read_battery(sensors_saying(reading)) == BatteryState(on_battery=True, percent=15.0)


def test_plugged_in() -> None:
    reading = Reading(percent=80.5, secsleft=psutil.POWER_TIME_UNLIMITED, power_plugged=True)
    assert read_battery(sensors_saying(reading)) == BatteryState(on_battery=False, percent=80.5)


def test_unknown_plug_counts_as_plugged_in_but_keeps_the_charge() -> None:
    reading = Reading(percent=42.0, secsleft=psutil.POWER_TIME_UNKNOWN, power_plugged=None)
    assert read_battery(sensors_saying(reading)) == BatteryState(on_battery=False, percent=42.0)


@pytest.mark.parametrize(
    ("reported", "percent"),
    [(100.4, 100.0), (-1.0, 0.0), (float("nan"), None), (0, 0.0)],
)
def test_odd_charges(reported: float, percent: float | None) -> None:
    reading = Reading(percent=reported, secsleft=0, power_plugged=False)
    assert read_battery(sensors_saying(reading)) == BatteryState(on_battery=True, percent=percent)


def test_this_machines_battery_reads_without_raising() -> None:
    state = read_battery()
    assert state is None or isinstance(state, BatteryState)
    if state is not None and state.percent is not None:
        assert 0.0 <= state.percent <= 100.0
