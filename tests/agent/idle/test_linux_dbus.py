"""The D-Bus idle backends against a real private dbus-daemon and fake desktop services."""

from __future__ import annotations

import time
from typing import Any

import pytest

from desktop_app.agent.idle import (
    IdleHint,
    IdleUnavailable,
    LogindIdleDetector,
    MutterIdleDetector,
    ScreenSaverIdleDetector,
    idle_seconds_from_hint,
)
from desktop_app.agent.idle.linux_dbus import session_bus_address, system_bus_address
from tests.agent.idle.fake_dbus import (
    LOGIND_NAME,
    MUTTER_METHOD,
    MUTTER_NAME,
    PROPERTIES,
    SCREENSAVER_NAME,
    SESSION_PATH,
    ServedError,
    constant,
    logind_methods,
    screensaver_method,
    serve,
)

# -- GNOME / Mutter -------------------------------------------------------------------


def test_mutter_reads_the_served_idle_time_and_reuses_its_connection(private_bus: str) -> None:
    idle_ms = [1500]
    methods = {MUTTER_METHOD: lambda _args: ("t", (idle_ms[0],))}
    detector = MutterIdleDetector(private_bus)
    with serve(private_bus, [MUTTER_NAME], methods):
        try:
            assert detector.idle_seconds() == 1.5
            idle_ms[0] = 42
            assert detector.idle_seconds() == 0.042
        finally:
            detector.close()
            detector.close()  # idempotent
    assert detector.source == "GNOME's idle monitor"


def test_mutter_absent_says_so_plainly(private_bus: str) -> None:
    detector = MutterIdleDetector(private_bus)
    try:
        with pytest.raises(IdleUnavailable) as raised:
            detector.idle_seconds()
    finally:
        detector.close()
    assert str(raised.value) == (
        "GNOME's idle monitor is not running "
        "(org.gnome.Mutter.IdleMonitor is not on the session bus)"
    )


def test_mutter_that_does_not_answer_times_out(private_bus: str) -> None:
    detector = MutterIdleDetector(private_bus, timeout_s=0.2)
    with serve(private_bus, [MUTTER_NAME], {MUTTER_METHOD: lambda _args: None}):
        started = time.monotonic()
        try:
            with pytest.raises(IdleUnavailable, match=r"did not answer within 0\.2 s"):
                detector.idle_seconds()
        finally:
            detector.close()
    assert time.monotonic() - started < 2


def test_mutter_error_reply_is_reported(private_bus: str) -> None:
    def fail(_args: tuple[Any, ...]) -> None:
        raise ServedError("org.gnome.Mutter.Error.Broken", "the compositor is confused")

    detector = MutterIdleDetector(private_bus)
    with serve(private_bus, [MUTTER_NAME], {MUTTER_METHOD: fail}):
        try:
            with pytest.raises(IdleUnavailable) as raised:
                detector.idle_seconds()
        finally:
            detector.close()
    assert str(raised.value) == (
        "GNOME's idle monitor answered with an error "
        "(org.gnome.Mutter.Error.Broken: the compositor is confused)"
    )


def test_no_bus_or_a_dead_bus_says_so(tmp_path: Any) -> None:
    with pytest.raises(IdleUnavailable, match=r"^the session bus cannot be found"):
        MutterIdleDetector(None).idle_seconds()
    with pytest.raises(IdleUnavailable, match=r"^cannot connect to the session bus \("):
        MutterIdleDetector(f"unix:path={tmp_path}/no-bus").idle_seconds()


def test_bus_addresses_come_from_the_environment() -> None:
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/a"}) == "unix:path=/a"
    assert session_bus_address({"XDG_RUNTIME_DIR": "/run/user/7"}) == "unix:path=/run/user/7/bus"
    assert session_bus_address({}) is None
    assert system_bus_address({}) == "unix:path=/var/run/dbus/system_bus_socket"
    assert system_bus_address({"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/b"}) == "unix:path=/b"


# -- freedesktop ScreenSaver ----------------------------------------------------------


def test_screensaver_reads_milliseconds(private_bus: str) -> None:
    detector = ScreenSaverIdleDetector(private_bus)
    with serve(private_bus, [SCREENSAVER_NAME], {screensaver_method(): constant("u", 2500)}):
        try:
            assert detector.idle_seconds() == 2.5
        finally:
            detector.close()


def test_screensaver_found_at_the_short_path_and_remembered(private_bus: str) -> None:
    detector = ScreenSaverIdleDetector(private_bus)
    methods = {screensaver_method("/ScreenSaver"): constant("u", 700)}
    with serve(private_bus, [SCREENSAVER_NAME], methods) as service:
        try:
            assert detector.idle_seconds() == 0.7
            assert detector.idle_seconds() == 0.7
        finally:
            detector.close()
    paths = [path for path, _, _ in service.calls]
    assert paths == ["/org/freedesktop/ScreenSaver", "/ScreenSaver", "/ScreenSaver"]


def test_screensaver_without_the_method_says_so(private_bus: str) -> None:
    methods = {
        ("/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver", "Lock"): constant("")
    }
    detector = ScreenSaverIdleDetector(private_bus)
    with serve(private_bus, [SCREENSAVER_NAME], methods):
        try:
            with pytest.raises(IdleUnavailable) as raised:
                detector.idle_seconds()
        finally:
            detector.close()
    assert str(raised.value) == (
        "the freedesktop screen saver service runs but does not offer GetSessionIdleTime "
        "(tried /org/freedesktop/ScreenSaver and /ScreenSaver)"
    )


def test_screensaver_absent_says_so_plainly(private_bus: str) -> None:
    detector = ScreenSaverIdleDetector(private_bus)
    try:
        with pytest.raises(IdleUnavailable, match=r"^the freedesktop screen saver service is not"):
            detector.idle_seconds()
    finally:
        detector.close()


# -- systemd-logind -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "now_s", "expected"),
    [
        (IdleHint(idle=False, since_us=1_000_000_000_000_000), 1_000_000_100.0, 0.0),
        (IdleHint(idle=True, since_us=1_000_000_000_000_000), 1_000_000_090.5, 90.5),
        (IdleHint(idle=True, since_us=0), 1_000_000_000.0, 0.0),  # idle, but since when?
        (IdleHint(idle=True, since_us=2_000_000_000_000_000), 1_000_000_000.0, 0.0),  # clock
    ],
)
def test_logind_hint_arithmetic(hint: IdleHint, now_s: float, expected: float) -> None:
    assert idle_seconds_from_hint(hint, now_s) == pytest.approx(expected)
    detector = LogindIdleDetector(None, read_hint=lambda: hint, now=lambda: now_s)
    assert detector.idle_seconds() == pytest.approx(expected)
    assert "coarse" in detector.source


def test_logind_reads_this_sessions_hint_over_the_bus(private_bus: str) -> None:
    pids: list[int] = []

    def session_for_pid(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        pids.append(args[0])
        return "o", (SESSION_PATH,)

    since_us = 1_700_000_000_000_000
    methods = logind_methods(idle=True, since_us=since_us, session_for_pid=session_for_pid)
    detector = LogindIdleDetector(private_bus, now=lambda: since_us / 1e6 + 12.0, pid=4242)
    with serve(private_bus, [LOGIND_NAME], methods) as service:
        try:
            assert detector.idle_seconds() == pytest.approx(12.0)
            assert detector.idle_seconds() == pytest.approx(12.0)
        finally:
            detector.close()
    assert pids == [4242]  # the session is looked up once
    assert [path for path, _, _ in service.calls].count(SESSION_PATH) == 4


def test_logind_falls_back_to_the_auto_session(private_bus: str) -> None:
    def no_session(_args: tuple[Any, ...]) -> None:
        raise ServedError("org.freedesktop.login1.NoSessionForPID", "PID 7 has no session")

    methods = logind_methods(idle=False, since_us=5, session_for_pid=no_session)
    detector = LogindIdleDetector(private_bus)
    with serve(private_bus, [LOGIND_NAME], methods) as service:
        try:
            assert detector.idle_seconds() == 0.0
        finally:
            detector.close()
    assert ("/org/freedesktop/login1/session/auto", PROPERTIES, "Get") in service.calls


def test_logind_absent_says_so_plainly(private_bus: str) -> None:
    detector = LogindIdleDetector(private_bus)
    try:
        with pytest.raises(IdleUnavailable) as raised:
            detector.idle_seconds()
    finally:
        detector.close()
    assert str(raised.value) == (
        "systemd-logind is not running (org.freedesktop.login1 is not on the system bus)"
    )
