"""The Windows backend's arithmetic and failures, with fake Win32 functions (runs anywhere)."""

from __future__ import annotations

import ctypes

import pytest

from desktop_app.agent.idle import IdleUnavailable, WindowsIdleDetector, create_idle_detector
from desktop_app.agent.idle.windows import LASTINPUTINFO, Win32Functions, elapsed_ticks


class FakeUser32:
    """GetLastInputInfo and GetTickCount over a settable clock."""

    def __init__(self, last_input: int, now: int, succeeds: bool = True) -> None:
        self.last_input = last_input
        self.now = now
        self.succeeds = succeeds
        self.sizes: list[int] = []

    def get_last_input_info(self, info: ctypes._Pointer[LASTINPUTINFO]) -> int:
        self.sizes.append(info.contents.cbSize)
        if not self.succeeds:
            return 0
        info.contents.dwTime = self.last_input
        return 1

    def functions(self) -> Win32Functions:
        return Win32Functions(
            get_last_input_info=self.get_last_input_info,
            get_tick_count=lambda: self.now,
            get_last_error=lambda: 87,  # ERROR_INVALID_PARAMETER
        )


def test_idle_is_the_tick_difference_in_seconds() -> None:
    user32 = FakeUser32(last_input=10_000, now=12_500)
    detector = WindowsIdleDetector(load=user32.functions)
    assert detector.idle_seconds() == 2.5
    user32.now = 13_000
    assert detector.idle_seconds() == 3.0
    assert user32.sizes == [ctypes.sizeof(LASTINPUTINFO)] * 2 == [8, 8]
    detector.close()
    assert detector.source == "Windows (GetLastInputInfo)"


def test_tick_count_wrapping_after_49_days_is_handled() -> None:
    # Input 1 s before the 32-bit counter wrapped; now 0.5 s after it.
    user32 = FakeUser32(last_input=0xFFFFFFFF - 999, now=500)
    assert WindowsIdleDetector(load=user32.functions).idle_seconds() == 1.5
    assert elapsed_ticks(0, 0xFFFFFFFF) == 1
    assert elapsed_ticks(5, 5) == 0


def test_a_failed_call_says_so() -> None:
    user32 = FakeUser32(last_input=0, now=0, succeeds=False)
    with pytest.raises(IdleUnavailable, match=r"^Windows did not report the last input time"):
        WindowsIdleDetector(load=user32.functions).idle_seconds()


def test_libraries_that_do_not_load_say_so() -> None:
    # The real loader, on Linux: user32 is not there.
    with pytest.raises(IdleUnavailable, match=r"^Windows' input functions cannot be loaded \("):
        WindowsIdleDetector().idle_seconds()


def test_factory_on_windows_tries_the_windows_backend() -> None:
    detector = create_idle_detector(platform="win32", environ={})
    with pytest.raises(IdleUnavailable) as raised:
        detector.idle_seconds()
    assert str(raised.value) == (
        "No way to read idle time was found on this desktop (tried: Windows' input functions "
        "cannot be loaded (user32 and kernel32 exist only on Windows))."
    )
