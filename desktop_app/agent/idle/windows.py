"""Idle time on Windows: ``GetLastInputInfo`` and ``GetTickCount`` from user32/kernel32.

Both count milliseconds since boot in a 32-bit ``DWORD`` that wraps after 49.7 days, so
the difference is taken modulo 2**32: right across a wrap, as long as the person was
idle for less than 49.7 days.

Importable on every system (the ctypes libraries are loaded on the first read), so the
arithmetic can be tested anywhere with fake functions.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .base import IdleDetector, IdleUnavailable

DWORD_MASK = 0xFFFFFFFF


class LASTINPUTINFO(ctypes.Structure):
    """``LASTINPUTINFO`` from ``winuser.h``."""

    # Declared for type checkers; ctypes makes the fields from _fields_.
    cbSize: int
    dwTime: int

    _fields_ = [("cbSize", ctypes.c_uint32), ("dwTime", ctypes.c_uint32)]


@dataclass(frozen=True)
class Win32Functions:
    """The three Win32 functions this backend calls (tests pass fakes)."""

    get_last_input_info: Callable[[ctypes._Pointer[LASTINPUTINFO]], int]
    """``user32.GetLastInputInfo``: fills in ``dwTime``; returns nonzero on success."""
    get_tick_count: Callable[[], int]
    """``kernel32.GetTickCount``: milliseconds since boot, as a wrapping 32-bit number."""
    get_last_error: Callable[[], int]
    """``ctypes.get_last_error``: why the last call failed."""


def load_win32_functions() -> Win32Functions:
    """Load the real functions from user32 and kernel32.

    Raises:
        OSError: Not on Windows, or the libraries cannot be loaded.
    """
    if sys.platform != "win32":
        raise OSError("user32 and kernel32 exist only on Windows")
    user32 = ctypes.WinDLL("user32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    get_last_input_info = user32.GetLastInputInfo
    get_last_input_info.argtypes = [ctypes.POINTER(LASTINPUTINFO)]
    get_last_input_info.restype = ctypes.c_int  # BOOL
    get_tick_count = kernel32.GetTickCount
    get_tick_count.argtypes = []
    get_tick_count.restype = ctypes.c_uint32  # DWORD
    return Win32Functions(
        get_last_input_info=get_last_input_info,
        get_tick_count=get_tick_count,
        get_last_error=ctypes.get_last_error,
    )


def elapsed_ticks(now_tick: int, last_input_tick: int) -> int:
    """Milliseconds from ``last_input_tick`` to ``now_tick``, across a 32-bit wrap."""
    return (now_tick - last_input_tick) & DWORD_MASK


class WindowsIdleDetector(IdleDetector):
    """Seconds since the last input in this Windows session (``GetLastInputInfo``).

    ``GetLastInputInfo`` sees only the caller's session: it works in the volunteer's
    desktop session, not from a service in session 0.
    """

    source = "Windows (GetLastInputInfo)"

    def __init__(self, load: Callable[[], Win32Functions] = load_win32_functions) -> None:
        """Create the detector. The libraries are loaded on the first read.

        Args:
            load: Loads the Win32 functions (tests pass fakes).
        """
        self._load = load
        self._functions: Win32Functions | None = None
        self._info = LASTINPUTINFO()
        # Windows rejects the call unless cbSize is the struct's size.
        self._info.cbSize = ctypes.sizeof(LASTINPUTINFO)
        self._info_pointer = ctypes.pointer(self._info)

    def idle_seconds(self) -> float:
        """Seconds since the last keyboard or mouse input in this session.

        Raises:
            IdleUnavailable: The Win32 functions cannot be loaded, or the call failed.
        """
        functions = self._functions
        if functions is None:
            try:
                functions = self._functions = self._load()
            except (OSError, AttributeError) as exc:
                raise IdleUnavailable(
                    f"Windows' input functions cannot be loaded ({exc})"
                ) from None
        if not functions.get_last_input_info(self._info_pointer):
            raise IdleUnavailable(
                f"Windows did not report the last input time (error {functions.get_last_error()})"
            )
        # Read the clock after the last input time, so that "now" is never before it.
        return elapsed_ticks(functions.get_tick_count(), self._info.dwTime) / 1000.0
