"""Idle time on macOS: ``HIDIdleTime`` of the ``IOHIDSystem`` service in the I/O Registry.

Read through IOKit and CoreFoundation with ctypes. If those cannot be loaded (an unusual
Python build or sandbox), the detector falls back to running ``ioreg``, which prints
the same property; that costs a process per read, hence only as a fallback.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from collections.abc import Callable
from typing import Protocol

from .base import IdleDetector, IdleUnavailable

IOKIT_PATH = "/System/Library/Frameworks/IOKit.framework/IOKit"
CORE_FOUNDATION_PATH = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
IOREG_COMMAND = ("ioreg", "-c", "IOHIDSystem", "-d", "4")
IOREG_TIMEOUT_S = 2.0

K_IO_MASTER_PORT_DEFAULT = 0  # kIOMainPortDefault (formerly kIOMasterPortDefault)
K_CF_NUMBER_SINT64_TYPE = 4
K_CF_STRING_ENCODING_UTF8 = 0x08000100


class HidIdleSource(Protocol):
    """Reads ``HIDIdleTime`` once per call; holds whatever it needs until :meth:`close`."""

    def hid_idle_ns(self) -> int:
        """``HIDIdleTime``: nanoseconds since the last input.

        Raises:
            IdleUnavailable: The value cannot be read.
        """
        ...

    def close(self) -> None:
        """Release what it holds. Safe to call more than once."""
        ...


# The service's own property: a line of its own, `  |   "HIDIdleTime" = 123`. Nested
# dictionaries print inline as `{"Key"=value,...}`, so anchoring to the line skips them.
_HID_IDLE_TIME = re.compile(r'^[\s|]*"HIDIdleTime" = (?:(\d+)|<([0-9a-fA-F]+)>)\s*$', re.MULTILINE)


def parse_hid_idle_time(ioreg_output: str) -> int | None:
    """The first ``"HIDIdleTime" = <ns>`` in ``ioreg`` output, in nanoseconds.

    Args:
        ioreg_output: What ``ioreg -c IOHIDSystem -d 4`` printed.

    Returns:
        The nanoseconds, or None when the property is not there. Old macOS versions print
        it as raw bytes (``<0a1b...>``, little-endian); those are decoded too.
    """
    match = _HID_IDLE_TIME.search(ioreg_output)
    if match is None:
        return None
    if match.group(1) is not None:
        return int(match.group(1))
    hex_digits = match.group(2)
    if len(hex_digits) % 2:
        return None
    return int.from_bytes(bytes.fromhex(hex_digits), "little")


def run_ioreg() -> str:
    """Run ``ioreg -c IOHIDSystem -d 4`` and return what it printed.

    Raises:
        IdleUnavailable: ``ioreg`` is missing, failed or hung.
    """
    try:
        result = subprocess.run(
            IOREG_COMMAND,
            capture_output=True,
            text=True,
            timeout=IOREG_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise IdleUnavailable("the ioreg command is not available") from None
    except subprocess.TimeoutExpired:
        raise IdleUnavailable(f"ioreg did not finish within {IOREG_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise IdleUnavailable(f"ioreg could not be run ({exc})") from None
    if result.returncode != 0:
        raise IdleUnavailable(f"ioreg failed with status {result.returncode}")
    return result.stdout


class IoregSource:
    """Reads ``HIDIdleTime`` by running ``ioreg`` each time (the fallback)."""

    def __init__(self, run: Callable[[], str] = run_ioreg) -> None:
        """Create the source; nothing runs until :meth:`hid_idle_ns`.

        Args:
            run: Runs ``ioreg`` and returns its output (tests pass canned text).
        """
        self._run = run

    def hid_idle_ns(self) -> int:
        """``HIDIdleTime`` parsed from a fresh ``ioreg`` run."""
        nanoseconds = parse_hid_idle_time(self._run())
        if nanoseconds is None:
            raise IdleUnavailable("ioreg did not list HIDIdleTime")
        return nanoseconds

    def close(self) -> None:
        """Nothing to release."""


class IOKitSource:
    """Reads ``HIDIdleTime`` through IOKit; keeps the ``IOHIDSystem`` service between reads."""

    def __init__(self, iokit: ctypes.CDLL, core_foundation: ctypes.CDLL) -> None:
        """Create the source from loaded libraries (see :func:`load_iokit`).

        Args:
            iokit: The IOKit framework, with its functions declared.
            core_foundation: The CoreFoundation framework, with its functions declared.
        """
        self._iokit = iokit
        self._cf = core_foundation
        self._service = 0  # io_service_t; 0 is IO_OBJECT_NULL
        self._key: int | None = None  # the CFString "HIDIdleTime"

    def hid_idle_ns(self) -> int:
        """``HIDIdleTime`` read from the I/O Registry."""
        if not self._service:
            # IOServiceGetMatchingService consumes the matching dictionary: no CFRelease.
            matching = self._iokit.IOServiceMatching(b"IOHIDSystem")
            self._service = self._iokit.IOServiceGetMatchingService(
                K_IO_MASTER_PORT_DEFAULT, matching
            )
            if not self._service:
                raise IdleUnavailable("macOS has no IOHIDSystem service to ask")
        if self._key is None:
            self._key = self._cf.CFStringCreateWithCString(
                None, b"HIDIdleTime", K_CF_STRING_ENCODING_UTF8
            )
            if not self._key:
                self._key = None
                raise IdleUnavailable("CoreFoundation could not make a string")
        value = self._iokit.IORegistryEntryCreateCFProperty(self._service, self._key, None, 0)
        if not value:
            raise IdleUnavailable("IOHIDSystem has no HIDIdleTime")
        try:
            if self._cf.CFGetTypeID(value) != self._cf.CFNumberGetTypeID():
                raise IdleUnavailable("IOHIDSystem's HIDIdleTime is not a number")
            nanoseconds = ctypes.c_int64()
            if not self._cf.CFNumberGetValue(
                value, K_CF_NUMBER_SINT64_TYPE, ctypes.byref(nanoseconds)
            ):
                raise IdleUnavailable("IOHIDSystem's HIDIdleTime does not fit 64 bits")
            return nanoseconds.value
        finally:
            self._cf.CFRelease(value)

    def close(self) -> None:
        """Release the service and the key string. Safe to call more than once."""
        if self._service:
            self._iokit.IOObjectRelease(self._service)
            self._service = 0
        if self._key is not None:
            self._cf.CFRelease(self._key)
            self._key = None


def load_iokit() -> IOKitSource:
    """Load IOKit and CoreFoundation and declare the functions used.

    Raises:
        OSError: A framework cannot be loaded (not macOS, or a sandbox).
        AttributeError: A function is missing from it.
    """
    iokit = ctypes.CDLL(IOKIT_PATH)
    cf = ctypes.CDLL(CORE_FOUNDATION_PATH)
    # Without argtypes/restype ctypes passes and returns C int, truncating 64-bit pointers.
    iokit.IOServiceMatching.argtypes = [ctypes.c_char_p]
    iokit.IOServiceMatching.restype = ctypes.c_void_p
    iokit.IOServiceGetMatchingService.argtypes = [ctypes.c_uint32, ctypes.c_void_p]
    iokit.IOServiceGetMatchingService.restype = ctypes.c_uint32
    iokit.IORegistryEntryCreateCFProperty.argtypes = [
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint32,
    ]
    iokit.IORegistryEntryCreateCFProperty.restype = ctypes.c_void_p
    iokit.IOObjectRelease.argtypes = [ctypes.c_uint32]
    iokit.IOObjectRelease.restype = ctypes.c_int
    cf.CFStringCreateWithCString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    cf.CFStringCreateWithCString.restype = ctypes.c_void_p
    cf.CFGetTypeID.argtypes = [ctypes.c_void_p]
    cf.CFGetTypeID.restype = ctypes.c_ulong
    cf.CFNumberGetTypeID.argtypes = []
    cf.CFNumberGetTypeID.restype = ctypes.c_ulong
    cf.CFNumberGetValue.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p]
    cf.CFNumberGetValue.restype = ctypes.c_bool
    cf.CFRelease.argtypes = [ctypes.c_void_p]
    cf.CFRelease.restype = None
    return IOKitSource(iokit, cf)


class MacosIdleDetector(IdleDetector):
    """Seconds since the last input on this Mac (``HIDIdleTime``, nanoseconds)."""

    IOKIT_SOURCE = "macOS (IOKit HIDIdleTime)"
    IOREG_SOURCE = "macOS (HIDIdleTime from the ioreg command)"
    source = IOKIT_SOURCE

    def __init__(
        self,
        *,
        load_iokit: Callable[[], HidIdleSource] = load_iokit,
        make_fallback: Callable[[], HidIdleSource] = IoregSource,
    ) -> None:
        """Create the detector. Nothing is loaded until :meth:`idle_seconds`.

        Args:
            load_iokit: Loads the IOKit reader; raises ``OSError`` or ``AttributeError``
                when it cannot (tests pass fakes).
            make_fallback: Makes the reader used when IOKit cannot be loaded.
        """
        self._load_iokit = load_iokit
        self._make_fallback = make_fallback
        self._reader: HidIdleSource | None = None

    def idle_seconds(self) -> float:
        """Seconds since the last keyboard, mouse or trackpad input.

        Raises:
            IdleUnavailable: Neither IOKit nor ``ioreg`` could give ``HIDIdleTime``.
        """
        if self._reader is None:
            try:
                self._reader = self._load_iokit()
                self.source = self.IOKIT_SOURCE
            except (OSError, AttributeError):
                self._reader = self._make_fallback()
                self.source = self.IOREG_SOURCE
        return max(0, self._reader.hid_idle_ns()) / 1e9

    def close(self) -> None:
        """Release the IOKit service. Safe to call more than once."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
