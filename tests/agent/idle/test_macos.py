"""The macOS backend's IOKit/ioreg choice and ioreg parsing, with fakes (runs anywhere)."""

from __future__ import annotations

import pytest

from desktop_app.agent.idle import IdleUnavailable, MacosIdleDetector, parse_hid_idle_time
from desktop_app.agent.idle.macos import HidIdleSource, IoregSource

IOREG_OUTPUT = """\
+-o Root  <class IORegistryEntry, id 0x100000100, retain 27>
  +-o MacBookPro18,3  <class IOPlatformExpertDevice, id 0x100000110, registered, matched>
    +-o AppleARMPE  <class AppleARMPE, id 0x100000111, registered, matched, active>
      +-o IOHIDSystem  <class IOHIDSystem, id 0x1000004cb, registered, matched, active>
        | {
        |   "HIDParameters" = {"HIDClickTime"=500000000,"HIDIdleTime"=1}
        |   "HIDIdleTime" = 2750000000
        |   "IOClass" = "IOHIDSystem"
        | }
"""


class FakeIOKit:
    def __init__(self, nanoseconds: int) -> None:
        self.nanoseconds = nanoseconds
        self.closed = 0

    def hid_idle_ns(self) -> int:
        return self.nanoseconds

    def close(self) -> None:
        self.closed += 1


def no_iokit() -> HidIdleSource:
    raise OSError("dlopen(/System/Library/Frameworks/IOKit.framework/IOKit): image not found")


def test_parse_hid_idle_time() -> None:
    assert parse_hid_idle_time(IOREG_OUTPUT) == 2_750_000_000
    assert parse_hid_idle_time('"HIDIdleTime" = <00ca9a3b00000000>') == 1_000_000_000
    assert parse_hid_idle_time('"IOClass" = "IOHIDSystem"') is None
    assert parse_hid_idle_time("") is None


def test_iokit_reading_is_converted_to_seconds_and_released() -> None:
    iokit = FakeIOKit(1_500_000_000)
    detector = MacosIdleDetector(load_iokit=lambda: iokit, make_fallback=lambda: FakeIOKit(0))
    assert detector.idle_seconds() == 1.5
    iokit.nanoseconds = 250_000_000
    assert detector.idle_seconds() == 0.25
    assert detector.source == "macOS (IOKit HIDIdleTime)"
    detector.close()
    detector.close()
    assert iokit.closed == 1


def test_ioreg_is_the_fallback_when_iokit_does_not_load() -> None:
    runs: list[int] = []

    def run() -> str:
        runs.append(1)
        return IOREG_OUTPUT

    detector = MacosIdleDetector(load_iokit=no_iokit, make_fallback=lambda: IoregSource(run))
    assert detector.idle_seconds() == 2.75
    assert detector.idle_seconds() == 2.75
    assert len(runs) == 2  # a fresh reading each time
    assert detector.source == "macOS (HIDIdleTime from the ioreg command)"


def test_ioreg_without_the_property_says_so() -> None:
    detector = MacosIdleDetector(
        load_iokit=no_iokit, make_fallback=lambda: IoregSource(lambda: "+-o Root\n")
    )
    with pytest.raises(IdleUnavailable, match=r"^ioreg did not list HIDIdleTime$"):
        detector.idle_seconds()


def test_neither_iokit_nor_ioreg_says_so() -> None:
    # The real loaders, on Linux: no IOKit framework, no ioreg command.
    with pytest.raises(IdleUnavailable, match=r"^the ioreg command is not available$"):
        MacosIdleDetector().idle_seconds()
