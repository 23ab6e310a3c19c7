"""The main window: the state header, then the first-run check or the tabs.

The tabs are Overview, Schedule (when the pool may use the computer), Containers and Settings.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.contribution import Snapshot
from desktop_app.ui.containers import ContainersPage
from desktop_app.ui.first_run import FirstRunPage
from desktop_app.ui.icons import icon
from desktop_app.ui.overview import OverviewPage
from desktop_app.ui.schedule_page import SchedulePage
from desktop_app.ui.settings_page import SettingsPage
from desktop_app.ui.widgets import Banner, StateHeader

TAB_NAMES = ("overview", "schedule", "containers", "settings")

NO_TRAY_TEXT = (
    "Your desktop has no system tray, so RMA Compute runs in this window. Closing it only "
    "minimises it; use Quit to stop contributing. On GNOME, the “AppIndicator and "
    "KStatusNotifierItem Support” extension adds a tray (install it from "
    "extensions.gnome.org or your distribution's gnome-shell-extension-appindicator package, "
    "then log out and in)."
)


class MainWindow(QMainWindow):
    """Shows a :class:`Snapshot`; the app wires its pages' signals to the engine."""

    quit_requested = Signal()

    def __init__(
        self,
        *,
        first_run: FirstRunPage,
        overview: OverviewPage,
        schedule: SchedulePage,
        containers: ContainersPage,
        settings: SettingsPage,
        tray_available: bool,
    ) -> None:
        super().__init__()
        self.setWindowTitle("RMA Compute")
        self.setWindowIcon(icon("app"))
        self.resize(760, 620)
        self.tray_available = tray_available
        self.first_run = first_run
        self.overview = overview
        self.schedule = schedule
        self.containers = containers
        self.settings = settings

        central = QWidget()
        layout = QVBoxLayout(central)
        self.no_tray_banner = Banner(dismissable=False)
        self.no_tray_banner.show_text(None if tray_available else NO_TRAY_TEXT)
        layout.addWidget(self.no_tray_banner)
        self.notice = Banner()
        layout.addWidget(self.notice)

        header_row = QHBoxLayout()
        self.header = StateHeader()
        header_row.addWidget(self.header, 1)
        self.quit_button = QPushButton("Quit")
        self.quit_button.setToolTip("Stop the pool's containers and close RMA Compute")
        self.quit_button.clicked.connect(self.quit_requested.emit)
        self.quit_button.setVisible(not tray_available)
        header_row.addWidget(self.quit_button)
        layout.addLayout(header_row)

        self.tabs = QTabWidget()
        self.tabs.addTab(overview, "Overview")
        self.tabs.addTab(schedule, "Schedule")
        self.tabs.addTab(containers, "Containers")
        self.tabs.addTab(settings, "Settings")
        self.pages = QStackedWidget()
        self.pages.addWidget(first_run)
        self.pages.addWidget(self.tabs)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` on every page."""
        self.header.show_situation(snapshot.situation)
        self.notice.show_text(snapshot.notice)
        if snapshot.settings.joined:
            self.pages.setCurrentWidget(self.tabs)
        else:
            self.pages.setCurrentWidget(self.first_run)
            self.first_run.show_snapshot(snapshot)
        self.overview.show_snapshot(snapshot)
        self.schedule.load(snapshot.settings.rules)
        self.containers.show_snapshot(snapshot)
        self.settings.load(snapshot.settings)

    def show_tab(self, name: str) -> None:
        """Bring the window forward at the tab ``name`` (one of :data:`TAB_NAMES`)."""
        if name in TAB_NAMES and self.pages.currentWidget() is self.tabs:
            self.tabs.setCurrentIndex(TAB_NAMES.index(name))
        self.bring_forward()

    def bring_forward(self) -> None:
        """Show, un-minimise and raise the window."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window never stops contribution (Quit does)."""
        # Closing the window never stops contribution: with a tray it hides to the tray,
        # without one it minimises (Quit stops).
        event.ignore()
        if self.tray_available:
            self.hide()
        else:
            self.showMinimized()
