"""The self-test's Qt child: start Qt as the app would, print what it found, and exit.

``rma-desktop --qt-probe`` (hidden) prints one JSON line: Qt's version, the platform plugin
in use (``xcb``, ``wayland``, ``windows``, ``cocoa``…), the number of screens and whether a
system tray is available. :mod:`desktop_app.self_test` runs it as a child process, because
Qt ends the process when it cannot reach a display.
"""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QApplication, QSystemTrayIcon


def main() -> int:
    """Print the JSON line; 0 when Qt started."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    facts = {
        "version": qVersion(),
        "platform": QApplication.platformName(),
        "screens": len(QApplication.screens()),
        "tray": QSystemTrayIcon.isSystemTrayAvailable(),
    }
    print(json.dumps(facts), flush=True)
    return 0
