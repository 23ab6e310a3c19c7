"""The smallest honest PySide6 tray app: the baseline for ``bench/tray_footprint.py``.

A ``QApplication``, one ``QSystemTrayIcon`` showing ``assets/icons/app.svg`` (through Qt's
svg icon plugin), a tooltip and a context menu with Pause, Resume, Open and Quit. Nothing
else: no timers, no network, no windows, no signal handling. Quit exits with status 0;
SIGTERM ends it the default way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

APP_NAME = "empty_tray_app"
ICON_PATH = Path(__file__).resolve().parent.parent / "assets" / "icons" / "app.svg"


def main() -> int:
    app = QApplication(sys.argv)
    app.setApplicationName(APP_NAME)
    app.setQuitOnLastWindowClosed(False)

    icon = QIcon(str(ICON_PATH))
    if icon.pixmap(32, 32).isNull():
        print(f"could not load {ICON_PATH} (is Qt's svg plugin there?)", file=sys.stderr)
        return 1

    menu = QMenu()
    for text in ("Pause", "Resume", "Open"):
        menu.addAction(text)
    menu.addSeparator()
    quit_action = menu.addAction("Quit")
    quit_action.triggered.connect(app.quit)

    tray = QSystemTrayIcon(icon)
    tray.setToolTip("RMA Compute (empty baseline)")
    tray.setContextMenu(menu)
    tray.show()

    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
