"""One D-Bus connection for the idle backends that ask a desktop service (via ``jeepney``).

The backends (``linux_mutter``, ``linux_screensaver``, ``linux_logind``) share this
helper: it connects on the first call, reuses the connection, puts a time limit on every
call and turns every failure into :class:`~.base.IdleUnavailable` with plain words.

``jeepney`` is imported only when a connection is opened: it is a Linux-only dependency,
and this package is imported on every operating system.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .base import IdleUnavailable

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 1.0
"""How long a call (and connecting) may take; the backends are read twice a second."""

SYSTEM_BUS_DEFAULT = "unix:path=/var/run/dbus/system_bus_socket"
"""Where the system bus listens when ``DBUS_SYSTEM_BUS_ADDRESS`` is not set (the spec's default)."""

# Error names that mean "nobody serves this here", as opposed to a service that failed.
_ABSENT = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
}
_NO_SUCH_METHOD = {
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.UnknownProperty",
}


def session_bus_address(environ: Mapping[str, str]) -> str | None:
    """The session bus address from an environment, or None when it names none.

    Args:
        environ: Environment variables, e.g. ``os.environ``.

    Returns:
        ``DBUS_SESSION_BUS_ADDRESS``, else systemd's per-user bus in ``XDG_RUNTIME_DIR``
        (where the variable is often missing for programs not started by the desktop).
    """
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime_dir = environ.get("XDG_RUNTIME_DIR", "")
    return f"unix:path={runtime_dir}/bus" if runtime_dir else None


def system_bus_address(environ: Mapping[str, str]) -> str:
    """The system bus address: ``DBUS_SYSTEM_BUS_ADDRESS`` or the spec's default socket."""
    return environ.get("DBUS_SYSTEM_BUS_ADDRESS", "") or SYSTEM_BUS_DEFAULT


def _jeepney() -> Any:
    """The ``jeepney`` package with its blocking I/O module loaded."""
    try:
        import jeepney  # type: ignore[import-untyped]
        import jeepney.io.blocking  # type: ignore[import-untyped]
    except ImportError:
        raise IdleUnavailable("the D-Bus library for Python (jeepney) is not installed") from None
    return jeepney


class DBusErrorReply(IdleUnavailable):
    """The call was answered with a D-Bus error.

    Attributes:
        error_name: The D-Bus error name, e.g. ``"org.freedesktop.DBus.Error.ServiceUnknown"``.
    """

    def __init__(self, message: str, error_name: str) -> None:
        """Create the error.

        Args:
            message: The plain words (``str(exc)``).
            error_name: The D-Bus error name.
        """
        super().__init__(message)
        self.error_name = error_name


class DBusServiceAbsent(DBusErrorReply):
    """Nobody on the bus owns the service's name (it is not running here)."""


class DBusMethodMissing(DBusErrorReply):
    """The service runs but has no such object, interface, method or property."""


class BusConnection:
    """A lazily opened, reused connection to one bus, with a time limit on each call.

    Not thread-safe: like the detectors that own it, use it from one thread.
    """

    def __init__(self, address: str | None, bus_words: str, timeout_s: float = CALL_TIMEOUT_S):
        """Create the connection object. Nothing is opened until :meth:`call`.

        Args:
            address: The bus address (``unix:path=...``); None when there is no bus to use.
            bus_words: The bus in plain words for messages, e.g. ``"the session bus"``.
            timeout_s: Time limit for connecting and for each call.
        """
        self._address = address
        self._bus_words = bus_words
        self._timeout_s = timeout_s
        self._connection: Any = None  # jeepney.io.blocking.DBusConnection

    def call(
        self,
        *,
        service_words: str,
        bus_name: str,
        object_path: str,
        interface: str,
        method: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
    ) -> tuple[Any, ...]:
        """Call one method and return the reply's body.

        Args:
            service_words: The service in plain words for messages, e.g.
                ``"GNOME's idle monitor"``.
            bus_name: The well-known name to call, e.g. ``"org.gnome.Mutter.IdleMonitor"``.
            object_path: The object, e.g. ``"/org/gnome/Mutter/IdleMonitor/Core"``.
            interface: The interface of the method.
            method: The method's name.
            signature: The D-Bus signature of ``body``; None for no arguments.
            body: The arguments.

        Returns:
            The reply's values.

        Raises:
            DBusServiceAbsent: The service is not running on this bus.
            DBusMethodMissing: The service has no such object or method.
            DBusErrorReply: Another error reply.
            IdleUnavailable: No bus, a timeout, or a lost connection.
        """
        jeepney = _jeepney()
        connection = self._connect()
        message = jeepney.new_method_call(
            jeepney.DBusAddress(object_path, bus_name=bus_name, interface=interface),
            method,
            signature,
            body,
        )
        # Never let an idle probe start a service through D-Bus activation.
        message.header.flags |= jeepney.MessageFlag.no_auto_start
        try:
            reply = connection.send_and_get_reply(message, timeout=self._timeout_s)
        except TimeoutError:
            raise IdleUnavailable(
                f"{service_words} did not answer within {self._timeout_s:g} s"
            ) from None
        except (OSError, ValueError) as exc:  # the bus went away, or sent garbage
            self.close()
            raise IdleUnavailable(f"the connection to {self._bus_words} broke ({exc})") from None
        if reply.header.message_type is jeepney.MessageType.error:
            error = jeepney.DBusErrorResponse(reply)
            name = str(error.name)
            if name in _ABSENT:
                raise DBusServiceAbsent(
                    f"{service_words} is not running ({bus_name} is not on {self._bus_words})",
                    name,
                )
            if name in _NO_SUCH_METHOD:
                raise DBusMethodMissing(
                    f"{service_words} does not offer {interface}.{method} at {object_path}", name
                )
            detail = f": {error.data[0]}" if error.data and isinstance(error.data[0], str) else ""
            raise DBusErrorReply(f"{service_words} answered with an error ({name}{detail})", name)
        return tuple(reply.body)

    def close(self) -> None:
        """Close the connection if open. Safe to call more than once."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except OSError:  # already broken; nothing left to release
                logger.debug("closing the D-Bus connection failed", exc_info=True)

    def _connect(self) -> Any:
        if self._connection is not None:
            return self._connection
        if not self._address:
            raise IdleUnavailable(f"{self._bus_words} cannot be found (its address is not set)")
        jeepney = _jeepney()
        try:
            self._connection = jeepney.io.blocking.open_dbus_connection(
                self._address, auth_timeout=self._timeout_s
            )
        except TimeoutError:
            raise IdleUnavailable(
                f"{self._bus_words} did not answer within {self._timeout_s:g} s"
            ) from None
        except (OSError, ValueError, RuntimeError, KeyError, jeepney.DBusErrorResponse) as exc:
            # OSError: no socket there; RuntimeError: a transport jeepney lacks (e.g. tcp:);
            # ValueError: failed authentication or a malformed address (KeyError too);
            # DBusErrorResponse: the bus refused our Hello.
            raise IdleUnavailable(f"cannot connect to {self._bus_words} ({exc})") from None
        return self._connection
