"""The X11 backend on a real X server (Xvfb), with real input from xdotool (XTEST)."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator, Sequence

import pytest

from desktop_app.agent.idle import (
    IdleUnavailable,
    X11IdleDetector,
    create_idle_detector,
)
from desktop_app.agent.idle.linux_x11 import load_library
from tests.fixtures.waiting import wait_until
from tests.fixtures.x_desktop import XDesktop


@pytest.fixture
def detector(x_desktop: XDesktop) -> Iterator[X11IdleDetector]:
    """An X11 detector on the test desktop, closed before the X server stops."""
    detector = X11IdleDetector(x_desktop.display)
    yield detector
    detector.close()
    detector.close()  # idempotent


@pytest.mark.desktop
def test_idle_grows_without_input_and_input_resets_it(
    x_desktop: XDesktop, detector: X11IdleDetector
) -> None:
    x_desktop.key("shift")
    assert detector.idle_seconds() < 0.5

    # Without input the count goes up with the wall clock.
    first, first_at = detector.idle_seconds(), time.monotonic()
    later = wait_until(
        lambda: (idle := detector.idle_seconds()) >= first + 1.2 and idle,
        timeout=5,
        what="the idle time to grow by 1.2 s",
    )
    elapsed = time.monotonic() - first_at
    assert later - first == pytest.approx(elapsed, abs=0.3)

    x_desktop.nudge_pointer()  # a mouse move resets it
    assert detector.idle_seconds() < 0.5

    wait_until(lambda: detector.idle_seconds() >= 0.6, timeout=5, what="idle time again")
    x_desktop.key("a")  # and so does a key press
    assert detector.idle_seconds() < 0.5


@pytest.mark.desktop
def test_factory_picks_x11_on_an_x_display(x_desktop: XDesktop) -> None:
    detector = create_idle_detector(platform="linux", environ={"DISPLAY": x_desktop.display})
    try:
        assert isinstance(detector, X11IdleDetector)
        assert detector.source == "the X11 screen saver extension"
        assert detector.idle_seconds() >= 0.0
    finally:
        detector.close()


def test_no_display_says_so() -> None:
    with pytest.raises(IdleUnavailable, match=r"^there is no X display \(DISPLAY is not set\)$"):
        X11IdleDetector(None).idle_seconds()


def test_a_display_that_is_not_there_says_so() -> None:
    # A display number no X server in a test uses; Xlib fails at once on the missing socket.
    detector = X11IdleDetector(":9731")
    with pytest.raises(IdleUnavailable, match=r"^the X display :9731 cannot be opened$"):
        detector.idle_seconds()
    detector.close()


def test_missing_libxss_says_so_plainly() -> None:
    def without_xss(file_names: Sequence[str], short_name: str) -> ctypes.CDLL:
        if short_name == "Xss":
            raise OSError("libXss.so.1: cannot open shared object file")
        return load_library(file_names, short_name)

    detector = X11IdleDetector(":0", load=without_xss)
    with pytest.raises(IdleUnavailable) as raised:
        detector.idle_seconds()
    assert str(raised.value) == "the X11 screen saver library (libXss) is not installed"
    detector.close()


def test_missing_libx11_says_so_plainly() -> None:
    def nothing(file_names: Sequence[str], short_name: str) -> ctypes.CDLL:
        raise OSError(f"lib{short_name} not found")

    with pytest.raises(
        IdleUnavailable, match=r"^the X11 client library \(libX11\) is not installed$"
    ):
        X11IdleDetector(":0", load=nothing).idle_seconds()
