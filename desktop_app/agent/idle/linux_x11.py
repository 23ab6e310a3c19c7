"""Idle time from the X server's screen saver extension (libXss), through ctypes.

Right on an X11 session. Wrong on Wayland: there the X server is XWayland, which only
sees input going to X clients, so the factory does not use this backend on Wayland.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Sequence

from .base import IdleDetector, IdleUnavailable


class XScreenSaverInfo(ctypes.Structure):
    """``XScreenSaverInfo`` from ``<X11/extensions/scrnsaver.h>``."""

    # Declared for type checkers; ctypes makes the fields from _fields_.
    window: int
    state: int
    kind: int
    til_or_since: int
    idle: int
    eventMask: int

    _fields_ = [
        ("window", ctypes.c_ulong),  # Window (an XID)
        ("state", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("til_or_since", ctypes.c_ulong),
        ("idle", ctypes.c_ulong),  # milliseconds since the last input
        ("eventMask", ctypes.c_ulong),
    ]


LibraryLoader = Callable[[Sequence[str], str], ctypes.CDLL]
"""Loads the first shared library that opens from ``(file names, find_library name)``."""


def load_library(file_names: Sequence[str], short_name: str) -> ctypes.CDLL:
    """Load a shared library by its usual file names, then by ``ctypes.util.find_library``.

    Args:
        file_names: Names to try first, e.g. ``["libXss.so.1"]`` (no search, no subprocess).
        short_name: The name for ``find_library``, e.g. ``"Xss"``.

    Returns:
        The loaded library.

    Raises:
        OSError: None of them could be loaded.
    """
    for name in file_names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    found = ctypes.util.find_library(short_name)
    if found is None:
        raise OSError(f"lib{short_name} not found")
    return ctypes.CDLL(found)


class X11IdleDetector(IdleDetector):
    """Reads the ``idle`` field of ``XScreenSaverQueryInfo`` on one X display.

    The display is opened on the first read and kept open until :meth:`close`.

    Known limit: if the X server goes away while the display is open, Xlib's default I/O
    error handler ends the process. That only happens when the volunteer's session ends,
    which ends the app too.
    """

    source = "the X11 screen saver extension"

    def __init__(self, display: str | None, *, load: LibraryLoader = load_library) -> None:
        """Create the detector. Nothing is loaded or opened until :meth:`idle_seconds`.

        Args:
            display: The ``DISPLAY`` to ask, e.g. ``":0"``; None or empty when there is none.
            load: Loads a shared library (tests pass one that fails).
        """
        self._display_name = display or ""
        self._load = load
        self._x11: ctypes.CDLL | None = None
        self._xss: ctypes.CDLL | None = None
        self._display: int | None = None  # Display*
        self._root = 0
        self._info: ctypes._Pointer[XScreenSaverInfo] | None = None

    def idle_seconds(self) -> float:
        """Seconds since the last input on this X display.

        Raises:
            IdleUnavailable: No display, the libraries are missing, the display cannot be
                opened, or the server lacks the screen saver extension.
        """
        if self._display is None or self._info is None:
            self._open()
        assert self._xss is not None and self._display is not None and self._info is not None
        if not self._xss.XScreenSaverQueryInfo(self._display, self._root, self._info):
            raise IdleUnavailable(f"the X server at {self._display_name} did not report idle time")
        return float(self._info.contents.idle) / 1000.0

    def close(self) -> None:
        """Free the info record and close the display. Safe to call more than once."""
        if self._x11 is not None:
            if self._info is not None:
                self._x11.XFree(self._info)
            if self._display is not None:
                self._x11.XCloseDisplay(self._display)
        self._info = None
        self._display = None

    def _open(self) -> None:
        if not self._display_name:
            raise IdleUnavailable("there is no X display (DISPLAY is not set)")
        x11, xss = self._libraries()
        display = x11.XOpenDisplay(self._display_name.encode())
        if not display:
            raise IdleUnavailable(f"the X display {self._display_name} cannot be opened")
        event_base, error_base = ctypes.c_int(), ctypes.c_int()
        if not xss.XScreenSaverQueryExtension(
            display, ctypes.byref(event_base), ctypes.byref(error_base)
        ):
            x11.XCloseDisplay(display)
            raise IdleUnavailable(
                f"the X server at {self._display_name} has no screen saver extension"
            )
        info = xss.XScreenSaverAllocInfo()
        if not info:
            x11.XCloseDisplay(display)
            raise IdleUnavailable("the X11 screen saver library could not allocate memory")
        self._display = display
        self._root = x11.XDefaultRootWindow(display)
        self._info = info

    def _libraries(self) -> tuple[ctypes.CDLL, ctypes.CDLL]:
        if self._x11 is None:
            try:
                x11 = self._load(["libX11.so.6"], "X11")
            except OSError:
                raise IdleUnavailable("the X11 client library (libX11) is not installed") from None
            _declare_x11(x11)
            self._x11 = x11
        if self._xss is None:
            try:
                xss = self._load(["libXss.so.1"], "Xss")
            except OSError:
                raise IdleUnavailable(
                    "the X11 screen saver library (libXss) is not installed"
                ) from None
            try:
                _declare_xss(xss)
            except AttributeError:  # an unrelated library that happens to bear the name
                raise IdleUnavailable(
                    "the X11 screen saver library (libXss) lacks XScreenSaverQueryInfo"
                ) from None
            self._xss = xss
        return self._x11, self._xss


def _declare_x11(x11: ctypes.CDLL) -> None:
    # Without argtypes/restype ctypes passes and returns C int, truncating 64-bit pointers.
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.restype = ctypes.c_int
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XFree.restype = ctypes.c_int


def _declare_xss(xss: ctypes.CDLL) -> None:
    xss.XScreenSaverQueryExtension.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
    ]
    xss.XScreenSaverQueryExtension.restype = ctypes.c_int
    xss.XScreenSaverAllocInfo.argtypes = []
    xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(XScreenSaverInfo)
    xss.XScreenSaverQueryInfo.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(XScreenSaverInfo),
    ]
    xss.XScreenSaverQueryInfo.restype = ctypes.c_int
