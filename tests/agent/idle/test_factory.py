"""The factory: which backends it tries where, in what order, and what it says when none works."""

from __future__ import annotations

import pytest

from desktop_app.agent.idle import (
    IdleDetector,
    IdleUnavailable,
    LogindIdleDetector,
    MacosIdleDetector,
    MutterIdleDetector,
    NullIdleDetector,
    ScreenSaverIdleDetector,
    WindowsIdleDetector,
    X11IdleDetector,
    create_idle_detector,
    idle_detector_candidates,
    is_wayland_session,
)
from tests.agent.idle.fake_dbus import (
    LOGIND_NAME,
    MUTTER_METHOD,
    MUTTER_NAME,
    SCREENSAVER_NAME,
    constant,
    logind_methods,
    screensaver_method,
    serve,
)


class Scripted(IdleDetector):
    """A backend that answers or fails as told, and records whether it was closed."""

    def __init__(self, source: str, result: float | Exception) -> None:
        self.source = source
        self.result = result
        self.reads = 0
        self.closed = 0

    def idle_seconds(self) -> float:
        self.reads += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def close(self) -> None:
        self.closed += 1


def kinds(detectors: list[IdleDetector]) -> list[type[IdleDetector]]:
    return [type(detector) for detector in detectors]


def wayland_environ(bus: str) -> dict[str, str]:
    return {
        "XDG_SESSION_TYPE": "wayland",
        "DBUS_SESSION_BUS_ADDRESS": bus,
        "DBUS_SYSTEM_BUS_ADDRESS": bus,
    }


# -- candidates (no I/O) --------------------------------------------------------------


def test_x11_session_prefers_x11_then_the_desktop_services() -> None:
    candidates = idle_detector_candidates(platform="linux", environ={"DISPLAY": ":0"})
    assert kinds(candidates) == [
        X11IdleDetector,
        MutterIdleDetector,
        ScreenSaverIdleDetector,
        LogindIdleDetector,
    ]


@pytest.mark.parametrize(
    "environ",
    [
        {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"},  # XWayland's DISPLAY is ignored
        {"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"},
    ],
)
def test_wayland_session_never_uses_x11(environ: dict[str, str]) -> None:
    assert is_wayland_session(environ)
    candidates = idle_detector_candidates(platform="linux", environ=environ)
    assert kinds(candidates) == [MutterIdleDetector, ScreenSaverIdleDetector, LogindIdleDetector]


def test_windows_and_macos_have_their_own_backend() -> None:
    assert kinds(idle_detector_candidates(platform="win32", environ={})) == [WindowsIdleDetector]
    assert kinds(idle_detector_candidates(platform="darwin", environ={})) == [MacosIdleDetector]


def test_an_unknown_system_gets_a_null_detector_that_says_so() -> None:
    detector = create_idle_detector(platform="plan9", environ={})
    assert isinstance(detector, NullIdleDetector)
    assert detector.source == "none"
    with pytest.raises(
        IdleUnavailable, match=r"^Idle time cannot be read on this system \(plan9\)"
    ):
        detector.idle_seconds()


# -- choosing with injected candidates ------------------------------------------------


def test_first_working_candidate_wins_and_the_others_are_closed() -> None:
    broken = Scripted("first", IdleUnavailable("it is not there"))
    working = Scripted("second", 3.0)
    unused = Scripted("third", 1.0)
    chosen = create_idle_detector(candidates=[broken, working, unused])
    assert chosen is working
    assert (broken.closed, working.closed, unused.closed) == (1, 0, 1)
    assert unused.reads == 0


def test_null_detector_lists_every_source_tried_and_survives_a_crashing_one() -> None:
    detector = create_idle_detector(
        candidates=[
            Scripted("the first way", IdleUnavailable("it is not installed")),
            Scripted("the second way", RuntimeError("segfault averted")),
            Scripted("the third way", IdleUnavailable("the third way is not running.")),
        ]
    )
    assert isinstance(detector, NullIdleDetector)
    assert detector.reason == (
        "No way to read idle time was found on this desktop (tried: "
        "the first way — it is not installed; "
        "the second way — failed unexpectedly (segfault averted); "
        "the third way is not running)."
    )
    with pytest.raises(IdleUnavailable) as raised:
        detector.idle_seconds()
    assert str(raised.value) == detector.reason


# -- on a real (private) session bus, as on Wayland -----------------------------------


def test_wayland_prefers_mutter_over_the_screensaver(private_bus: str) -> None:
    methods = {MUTTER_METHOD: constant("t", 1000), screensaver_method(): constant("u", 9000)}
    with serve(private_bus, [MUTTER_NAME, SCREENSAVER_NAME], methods):
        detector = create_idle_detector(platform="linux", environ=wayland_environ(private_bus))
        try:
            assert isinstance(detector, MutterIdleDetector)
            assert detector.idle_seconds() == 1.0
        finally:
            detector.close()


def test_wayland_uses_the_screensaver_when_mutter_is_absent(private_bus: str) -> None:
    with serve(private_bus, [SCREENSAVER_NAME], {screensaver_method(): constant("u", 9000)}):
        detector = create_idle_detector(platform="linux", environ=wayland_environ(private_bus))
        try:
            assert isinstance(detector, ScreenSaverIdleDetector)
            assert detector.idle_seconds() == 9.0
        finally:
            detector.close()


def test_wayland_falls_back_to_logind(private_bus: str) -> None:
    with serve(private_bus, [LOGIND_NAME], logind_methods(idle=False, since_us=0)):
        detector = create_idle_detector(platform="linux", environ=wayland_environ(private_bus))
        try:
            assert isinstance(detector, LogindIdleDetector)
            assert detector.idle_seconds() == 0.0
        finally:
            detector.close()


def test_wayland_with_nothing_there_lists_each_reason(private_bus: str) -> None:
    detector = create_idle_detector(platform="linux", environ=wayland_environ(private_bus))
    assert isinstance(detector, NullIdleDetector)
    assert detector.reason == (
        "No way to read idle time was found on this desktop (tried: "
        "GNOME's idle monitor is not running "
        "(org.gnome.Mutter.IdleMonitor is not on the session bus); "
        "the freedesktop screen saver service is not running "
        "(org.freedesktop.ScreenSaver is not on the session bus); "
        "systemd-logind's idle hint (coarse: set only after the desktop's own idle delay) — "
        "systemd-logind is not running (org.freedesktop.login1 is not on the system bus))."
    )


def test_x11_without_a_display_says_so_first() -> None:
    detector = create_idle_detector(
        platform="linux",
        environ={
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus",
            "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus",
        },
    )
    assert isinstance(detector, NullIdleDetector)
    assert detector.reason.startswith(
        "No way to read idle time was found on this desktop (tried: "
        "the X11 screen saver extension — there is no X display (DISPLAY is not set); "
        "GNOME's idle monitor — cannot connect to the session bus ("
    )
