"""A private D-Bus daemon and small fake desktop services on it, for the idle backends.

The services are real D-Bus peers (jeepney, in a thread) on a real ``dbus-daemon``, so
the backends are tested through the same wire protocol they meet on a desktop.
"""

from __future__ import annotations

import contextlib
import select
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from jeepney import MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.low_level import HeaderFields, Message

from tests.fixtures.x_desktop import stop_process

STARTUP_TIMEOUT_S = 10.0

MethodKey = tuple[str, str, str]
"""(object path, interface, method)."""
Handler = Callable[[tuple[Any, ...]], "tuple[str, tuple[Any, ...]] | None"]
"""Takes the call's body; returns (signature, body) of the reply, or None for no reply."""


class ServedError(Exception):
    """Raised by a handler to answer with a D-Bus error."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(text)
        self.name = name
        self.text = text


@contextlib.contextmanager
def private_bus_daemon(log_path: Path) -> Iterator[str]:
    """Run a fresh ``dbus-daemon --session``; yields its address, stops it on exit."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.fail("dbus-daemon is not installed (install dbus-daemon; see .ci/run)")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
        address = process.stdout.readline().decode().strip() if ready else ""
        if not address:
            pytest.fail(f"dbus-daemon did not print its address: {log_path.read_text()}")
        yield address
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


class FakeService:
    """Owns bus names and answers method calls from a table, in a thread, until closed."""

    def __init__(
        self,
        address: str,
        names: Sequence[str],
        methods: Mapping[MethodKey, Handler],
    ) -> None:
        self.address = address
        self.names = tuple(names)
        self.methods = dict(methods)
        self.calls: list[MethodKey] = []
        self._stop = threading.Event()
        self._connection: DBusConnection | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeService:
        self._connection = open_dbus_connection(self.address)
        for name in self.names:
            reply = self._connection.send_and_get_reply(message_bus.RequestName(name), timeout=5)
            assert reply.body == (1,), f"could not own {name}: {reply.body}"  # 1: primary owner
        self._thread = threading.Thread(target=self._serve, name="fake-dbus-service", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._connection is not None:
            self._connection.close()

    def _serve(self) -> None:
        assert self._connection is not None
        while not self._stop.is_set():
            try:
                message = self._connection.receive(timeout=0.05)
            except TimeoutError:
                continue
            except OSError:
                return
            if message.header.message_type is not MessageType.method_call:
                continue
            reply = self._answer(message)
            if reply is not None:
                self._connection.send(reply)

    def _answer(self, message: Message) -> Message | None:
        fields = message.header.fields
        key = (
            fields.get(HeaderFields.path, ""),
            fields.get(HeaderFields.interface, ""),
            fields.get(HeaderFields.member, ""),
        )
        self.calls.append(key)
        handler = self.methods.get(key)
        if handler is None:
            known_path = any(path == key[0] for path, _, _ in self.methods)
            name = "UnknownMethod" if known_path else "UnknownObject"
            return new_error(message, f"org.freedesktop.DBus.Error.{name}", "s", (f"no {key}",))
        try:
            result = handler(tuple(message.body))
        except ServedError as exc:
            return new_error(message, exc.name, "s", (exc.text,))
        if result is None:
            return None
        signature, body = result
        return new_method_return(message, signature, body)


def serve(address: str, names: Sequence[str], methods: Mapping[MethodKey, Handler]) -> FakeService:
    """A :class:`FakeService`, to be used as a context manager."""
    return FakeService(address, names, methods)


def constant(signature: str, *body: Any) -> Handler:
    """A handler that always answers ``body``."""
    return lambda _args: (signature, tuple(body))


# -- the desktop services the idle backends ask ---------------------------------------

MUTTER_NAME = "org.gnome.Mutter.IdleMonitor"
MUTTER_METHOD: MethodKey = (
    "/org/gnome/Mutter/IdleMonitor/Core",
    "org.gnome.Mutter.IdleMonitor",
    "GetIdletime",
)
SCREENSAVER_NAME = "org.freedesktop.ScreenSaver"


def screensaver_method(path: str = "/org/freedesktop/ScreenSaver") -> MethodKey:
    """``GetSessionIdleTime`` at ``path`` (KDE serves both paths; some only the short one)."""
    return (path, "org.freedesktop.ScreenSaver", "GetSessionIdleTime")


LOGIND_NAME = "org.freedesktop.login1"
SESSION_PATH = "/org/freedesktop/login1/session/_32"
PROPERTIES = "org.freedesktop.DBus.Properties"


def logind_methods(
    *, idle: bool, since_us: int, session_for_pid: Handler | None = None
) -> dict[MethodKey, Handler]:
    """logind's ``GetSessionByPID`` and one session's ``IdleHint`` and ``IdleSinceHint``."""
    values: dict[str, tuple[str, Any]] = {"IdleHint": ("b", idle), "IdleSinceHint": ("t", since_us)}

    def get_property(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        interface, name = args
        assert interface == "org.freedesktop.login1.Session"
        return "v", (values[name],)

    return {
        (
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
            "GetSessionByPID",
        ): session_for_pid or constant("o", SESSION_PATH),
        (SESSION_PATH, PROPERTIES, "Get"): get_property,
        ("/org/freedesktop/login1/session/auto", PROPERTIES, "Get"): get_property,
    }
