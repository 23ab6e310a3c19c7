"""One instance per user: a second launch hands its request to the first and exits.

The first instance listens on a local socket (a Unix socket, or a named pipe on Windows)
named after the user and the settings folder; a later launch connects, sends one line
(``show`` or ``show:<tab>``, or ``quit`` from ``rma-desktop --quit``) and exits, and the
first brings its window forward (or quits).
"""

from __future__ import annotations

import getpass
import hashlib
import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_MS = 1000


def instance_name(config_dir: str) -> str:
    """The socket's name: per user and per settings folder (tests run apart)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment (rare services): still per folder
        user = "user"
    digest = hashlib.sha256(f"{user}\0{config_dir}".encode()).hexdigest()[:16]
    return f"rma-compute-{digest}"


def send_to_running(name: str, message: str) -> bool:
    """Hand ``message`` to a running instance; False when none answers."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    socket.write((message + "\n").encode())
    socket.flush()
    socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
    socket.disconnectFromServer()
    if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        socket.waitForDisconnected(CONNECT_TIMEOUT_MS)
    return True


class SingleInstance(QObject):
    """The first instance's listener; :attr:`message` carries what a later launch asked.

    Give it a parent that lives as long as the app: the connections it accepts are its
    children, and destroying it under a connection still being read crashes Qt.
    """

    message = Signal(str)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server = QLocalServer(self)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start listening; clears a socket left behind by a crashed instance."""
        if self._server.listen(self.name):
            return True
        # Nobody answered (the caller checked), so the socket file is stale.
        QLocalServer.removeServer(self.name)
        if self._server.listen(self.name):
            return True
        log.warning("Could not listen for other launches: %s", self._server.errorString())
        return False

    def close(self) -> None:
        """Stop listening."""
        self._server.close()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            buffer = bytearray()

            def read(connection: QLocalSocket = connection, buffer: bytearray = buffer) -> None:
                buffer.extend(bytes(connection.readAll().data()))
                if b"\n" in buffer:
                    line = buffer.split(b"\n", 1)[0].decode(errors="replace").strip()
                    buffer.clear()
                    self.message.emit(line[:100])

            connection.readyRead.connect(read)
            connection.disconnected.connect(connection.deleteLater)
            read()
