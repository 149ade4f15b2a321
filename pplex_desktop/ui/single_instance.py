"""A second start of the desktop app on the same data folder brings the first one's window forward.

The folder lock (core/folder_lock.py) decides who runs; this only carries "show yourself" from
the refused start to the running one, over a local socket named after the folder. If nothing
answers (the holder is ``pplex-gateway``, or an older version), the refused start says why and
exits instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

_log = logging.getLogger(__name__)
CONNECT_MS = 1000
MESSAGE = b"show\n"


def server_name(folder: Path) -> str:
    digest = hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:16]
    return f"pplex-desktop-{digest}"


def ask_running_to_show(folder: Path) -> bool:
    """True when a running pplex-desktop on ``folder`` got the request."""
    socket = QLocalSocket()
    socket.connectToServer(server_name(folder))
    if not socket.waitForConnected(CONNECT_MS):
        return False
    socket.write(MESSAGE)
    sent = socket.waitForBytesWritten(CONNECT_MS)
    socket.disconnectFromServer()
    return sent


class InstanceServer(QObject):
    """Listens for later starts on the same folder and calls ``show`` for each."""

    def __init__(self, folder: Path, show: Callable[[], None]) -> None:
        super().__init__()
        self._show = show
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        name = server_name(folder)
        # We hold the folder lock, so a socket by this name is a crashed instance's leftover.
        QLocalServer.removeServer(name)
        if not self._server.listen(name):
            _log.warning(
                "Later starts cannot bring this window forward: %s.", self._server.errorString()
            )

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            connection.readyRead.connect(lambda c=connection: self._read(c))
            connection.disconnected.connect(connection.deleteLater)

    def _read(self, connection: QLocalSocket) -> None:
        if bytes(connection.readAll().data()).startswith(MESSAGE.strip()):
            _log.info("Another start of pplex-desktop brought this window forward.")
            self._show()

    def close(self) -> None:
        self._server.close()
