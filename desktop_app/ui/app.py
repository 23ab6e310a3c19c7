"""``rma-desktop``: builds the engine and the views, wires them, and runs Qt's event loop."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QEventLoop, QLockFile, QObject, QSocketNotifier, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from desktop_app import __version__
from desktop_app.agent.autostart import (
    Autostart,
    AutostartError,
    NullAutostart,
    create_autostart,
)
from desktop_app.agent.bundle import load_build_config
from desktop_app.agent.contribution import Contribution, Snapshot, utc_now
from desktop_app.agent.credentials import (
    add_credential_store_argument,
    default_credential_store,
)
from desktop_app.agent.hardware import CapabilityProbe
from desktop_app.agent.logs import add_log_level_argument, configure_logging
from desktop_app.agent.paths import AppPaths
from desktop_app.agent.presentation import NotificationGate, docker_fix
from desktop_app.agent.settings import SettingsStore, VolunteerSettings
from desktop_app.ui.bridge import ContributionBridge
from desktop_app.ui.containers import ContainersPage
from desktop_app.ui.first_run import FirstRunPage
from desktop_app.ui.icons import icon
from desktop_app.ui.main_window import TAB_NAMES, MainWindow
from desktop_app.ui.overview import OverviewPage
from desktop_app.ui.quit_command import LOCK_FILE, quit_running_app
from desktop_app.ui.schedule_page import SchedulePage
from desktop_app.ui.settings_page import SettingsPage
from desktop_app.ui.single_instance import SingleInstance, instance_name, send_to_running
from desktop_app.ui.tasks import BackgroundTasks
from desktop_app.ui.tray import TrayController, snooze_ends

log = logging.getLogger("rma-desktop")

LOG_FILE = "rma-desktop.log"
LOCK_WAIT_MS = 200
HANDOVER_ATTEMPTS = 20
HANDOVER_RETRY_S = 0.25
VOLUNTEER_ACTION_WINDOW_S = 3.0
"""Changes within this long after the volunteer's own click are theirs: not announced."""
TRAY_WAIT_AT_LOGIN_S = 60.0
"""Started at login (``--autostart``): how long to wait for the tray before using a window."""
TRAY_POLL_S = 0.5
QUIT_DEADLINE_MS = 60_000
"""Quit anyway if stopping the containers takes longer than this (it is logged)."""


class DesktopApp(QObject):
    """The tray app: one engine, one tray icon, one window."""

    finished = Signal()
    """Contribution stopped after Quit; the event loop may end."""

    def __init__(
        self,
        contribution: Contribution,
        *,
        tray_available: bool,
        clock: Callable[[], datetime] = utc_now,
        open_url: Callable[[QUrl], object] = QDesktopServices.openUrl,
    ) -> None:
        super().__init__()
        self.contribution = contribution
        self.tray_available = tray_available
        self._clock = clock
        self._open_url = open_url
        self.bridge = ContributionBridge(contribution, self)
        self.tasks = BackgroundTasks(self)
        self.gate = NotificationGate()
        self._quitting = False
        self._probing = False
        self._volunteer_acted = 0.0
        self.volunteer_action_window_s = VOLUNTEER_ACTION_WINDOW_S
        self._window: MainWindow | None = None
        self.tray = TrayController(self)
        self._wire_tray()

    @property
    def window(self) -> MainWindow:
        """The main window, built the first time it is needed.

        A volunteer who leaves the app in the tray never pays for the window's widgets.
        """
        if self._window is None:
            self._window = self._build_window()
            self._window.show_snapshot(self.contribution.snapshot())
        return self._window

    def _build_window(self) -> MainWindow:
        contribution = self.contribution
        cores = os.cpu_count()
        window = MainWindow(
            first_run=FirstRunPage(cores, contribution.coordinator_url()),
            overview=OverviewPage(cores),
            schedule=SchedulePage(),
            containers=ContainersPage(contribution, self.tasks),
            settings=SettingsPage(
                cores,
                contribution.preset_coordinator_url(),
                contribution.credentials_note,
                str(contribution.settings_path),
                autostart_description=contribution.autostart_description,
                idle_reading=contribution.idle_reading,
                watch_idle=contribution.watch_idle,
            ),
            tray_available=self.tray_available,
        )
        window.quit_requested.connect(self.quit)
        window.notice.dismissed.connect(contribution.dismiss_notice)
        window.header.action_requested.connect(self._act)
        window.overview.fix_requested.connect(self._act)
        window.schedule.saved.connect(lambda rules: self._acted(contribution.update_rules, rules))
        window.overview.contribution_switched.connect(
            lambda on: self._acted(contribution.set_contributing, on)
        )
        window.first_run.join_requested.connect(self._join)
        window.first_run.check_again.connect(lambda: self.probe_hardware(fresh=True))
        window.first_run.not_now.connect(self._not_now)
        window.settings.saved.connect(contribution.update_settings)
        window.settings.open_logs.connect(self.open_logs)
        return window

    def _wire_tray(self) -> None:
        contribution, tray = self.contribution, self.tray
        self.bridge.changed.connect(self._show)
        self.bridge.stopped.connect(self._stopped)
        tray.pause_requested.connect(lambda: self._acted(contribution.set_contributing, False))
        tray.resume_requested.connect(lambda: self._acted(contribution.resume))
        tray.snooze_requested.connect(
            lambda choice: self._acted(contribution.snooze, snooze_ends(choice, self._clock()))
        )
        tray.open_requested.connect(lambda: self.window.bring_forward())
        tray.open_logs_requested.connect(self.open_logs)
        tray.why_requested.connect(lambda: self.window.show_tab("overview"))
        tray.fix_requested.connect(self._act)
        tray.quit_requested.connect(self.quit)

    # -- life cycle --------------------------------------------------------------------------

    def start(self, *, show_window: bool = False, tab: str | None = None) -> None:
        """Show the tray icon (and the window when it is needed), then start contributing."""
        snapshot = self.contribution.snapshot()
        self._show(snapshot)
        if self.tray_available:
            self.tray.show()
        if show_window or not snapshot.settings.joined or not self.tray_available:
            if tab:
                self.window.show_tab(tab)
            else:
                self.window.bring_forward()
        self.probe_hardware()
        self.contribution.start()

    def probe_hardware(self, *, fresh: bool = False) -> None:
        """Probe Docker and the hardware on a worker thread; the snapshot shows the result."""
        if self._probing:
            return
        self._probing = True

        def done(_result: object) -> None:
            self._probing = False

        self.tasks.run(lambda: self.contribution.probe_hardware(fresh=fresh), done, done)

    def quit(self) -> None:
        """Stop the containers and leave the pool, then end (see :attr:`finished`)."""
        if self._quitting:
            return
        self._quitting = True
        log.info("Quitting: stopping the pool's containers first.")
        QTimer.singleShot(QUIT_DEADLINE_MS, self._quit_anyway)
        self.bridge.shutdown()

    def _quit_anyway(self) -> None:
        log.error(
            "Stopping the containers took over %d s; closing anyway.", QUIT_DEADLINE_MS // 1000
        )
        self._stopped()

    def _stopped(self) -> None:
        self.bridge.detach()
        self.tray.hide()
        if self._window is not None:
            self._window.hide()
        self.finished.emit()

    def handle_message(self, message: str) -> None:
        """A second launch asked for something: ``show``, ``show:<tab>`` or ``quit``."""
        command, _, argument = message.partition(":")
        if command == "quit":  # rma-desktop --quit, e.g. from an uninstaller
            log.info("Asked to quit by another launch (rma-desktop --quit).")
            self.quit()
        elif command == "show":
            if argument in TAB_NAMES:
                self.window.show_tab(argument)
            else:
                self.window.bring_forward()

    # -- following the engine -----------------------------------------------------------------

    def _acted(self, action: Callable[..., None], *args: object) -> None:
        """Run the volunteer's choice; the change it causes is not announced back to them."""
        self._volunteer_acted = time.monotonic()
        action(*args)

    def _show(self, snapshot: Snapshot) -> None:
        if self._window is not None:
            self._window.show_snapshot(snapshot)
        self.tray.show_snapshot(snapshot)
        by_volunteer = time.monotonic() - self._volunteer_acted < self.volunteer_action_window_s
        notice = self.gate.consider(snapshot.situation, self._clock(), by_volunteer=by_volunteer)
        looking = self._window is not None and self._window.isActiveWindow()
        if notice is not None and snapshot.settings.notifications and not looking:
            self.tray.notify(notice)

    # -- the volunteer's choices -----------------------------------------------------------

    def _join(self, settings: VolunteerSettings) -> None:
        log.info("The volunteer joined the pool.")
        self.contribution.join(settings)
        self.window.show_tab("overview")

    def _not_now(self) -> None:
        if self.tray_available:
            self.window.hide()
        else:
            self.window.showMinimized()

    def _act(self, action: str) -> None:
        quick_fixes: dict[str, dict[str, object]] = {
            "allow_battery": {"battery": "allow"},
            "stop_busy_pause": {"busy_pause": False},
            "stop_idle_only": {"idle_only": False},
        }
        if action in quick_fixes:
            rules = self.contribution.settings.rules.model_copy(update=quick_fixes[action])
            self._acted(self.contribution.update_rules, rules)
        elif action == "resume":
            self._acted(self.contribution.resume)
        elif action == "open_schedule":
            self.window.show_tab("schedule")
        elif action == "open_settings":
            self.window.show_tab("settings")
        elif action == "open_containers":
            self.window.show_tab("containers")
        elif action == "join":
            self.window.bring_forward()
        elif action == "docker_help":
            snapshot = self.contribution.snapshot()
            docker = snapshot.status.docker if snapshot.status else None
            if docker is None and snapshot.hardware is not None:
                docker = snapshot.hardware.docker
            box = QMessageBox(
                QMessageBox.Icon.Information,
                "Docker",
                docker_fix(docker),
                QMessageBox.StandardButton.Ok,
                self.window,
            )
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()
            self.probe_hardware(fresh=True)

    def open_logs(self) -> None:
        """Open the log folder in the file manager."""
        self._open_url(QUrl.fromLocalFile(str(self.contribution.log_dir)))


# -- the program ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="rma-desktop",
        description="The RMA Compute tray app: contribute this computer's spare power.",
    )
    parser.add_argument(
        "--show",
        nargs="?",
        const="overview",
        choices=TAB_NAMES,
        help="open the window (at this tab); with the app already running, bring it forward",
    )
    parser.add_argument(
        "--autostart",
        action="store_true",
        help="started at login: stay in the tray, and do nothing if the app already runs",
    )
    parser.add_argument(
        "--quit",
        action="store_true",
        help="ask the running app to stop the pool's containers and quit, wait for it, then "
        "remove any of the pool's containers still left (uninstallers run this)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this computer and the app, print a report for support, and exit "
        "(with --report FILE, also save it there)",
    )
    add_credential_store_argument(parser)
    add_log_level_argument(parser)
    parser.add_argument("--version", action="version", version=f"rma-desktop {__version__}")
    return parser


def _quit_on_signals(app: QApplication, desktop: DesktopApp) -> Callable[[], None]:
    """SIGTERM and SIGINT quit cleanly; woken through a socket, so nothing polls."""
    if os.name != "posix":
        return lambda: None
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)

    def woken() -> None:
        with contextlib.suppress(OSError):
            reader.recv(64)
        desktop.quit()

    notifier.activated.connect(woken)
    previous = {
        # SIGHUP: the terminal it was started from closed; the containers must still stop.
        signum: signal.signal(signum, lambda *_: None)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }

    def restore() -> None:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        notifier.setEnabled(False)
        reader.close()
        writer.close()

    return restore


def _wait_for_tray(app: QApplication, seconds: float) -> bool:
    """At login the desktop's tray may come up after the app: wait for it a while."""
    log.info("Waiting up to %.0f s for the desktop's system tray.", seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 100)
        if QSystemTrayIcon.isSystemTrayAvailable():
            return True
        time.sleep(TRAY_POLL_S)
    return False


def _autostart() -> Autostart:
    try:
        return create_autostart()
    except AutostartError as exc:  # e.g. no interpreter path to start: offer nothing
        log.warning("Starting at login is not available: %s", exc)
        return NullAutostart(str(exc))


def main(argv: list[str] | None = None) -> int:
    """Run the tray app until Quit (or SIGTERM); a second launch brings the first forward."""
    args = build_parser().parse_args(argv)
    paths = AppPaths.for_user()
    if args.quit:  # before the QApplication: an uninstaller may run it without a display
        return quit_running_app(paths)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("rma-desktop")
    app.setApplicationDisplayName("RMA Compute")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("rma-desktop")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(icon("app"))

    name = instance_name(str(paths.config_dir))
    request = f"show:{args.show}" if args.show else "show"
    paths.ensure()
    # The lock file is the guard (two launches at the same moment cannot both hold it; a
    # crashed instance's lock is stale and taken over); the socket only carries messages.
    lock = QLockFile(str(paths.config_dir / LOCK_FILE))
    if not lock.tryLock(LOCK_WAIT_MS):
        if args.autostart:
            return 0  # already running: logging in again must not open its window
        for _ in range(HANDOVER_ATTEMPTS):  # the first may still be starting to listen
            if send_to_running(name, request):
                print("RMA Compute is already running; its window was brought forward.")
                return 0
            time.sleep(HANDOVER_RETRY_S)
        print("RMA Compute is already running but does not answer.", file=sys.stderr)
        return 1
    # Parented to the app: it must outlive every connection it accepts.
    instance = SingleInstance(name, app)
    # What later launches ask before the app is ready (waiting for the tray at login can
    # take a minute) is kept, and handled once it is.
    early: list[str] = []

    def remember(message: str) -> None:
        early.append(message)

    instance.message.connect(remember)
    instance.listen()
    log_file = configure_logging(args.log_level, paths.log_dir, LOG_FILE)
    store = SettingsStore(paths.config_dir)
    loaded = store.load()
    credentials = default_credential_store(paths.state_dir, prefer=args.credential_store)
    log.info("rma-desktop %s; logging to %s", __version__, log_file)
    if loaded.notice:
        log.warning("%s", loaded.notice)
    probe = CapabilityProbe()
    contribution = Contribution(
        paths=paths,
        store=store,
        settings=loaded.settings,
        credentials=credentials,
        probe=probe.probe,
        notice=loaded.notice,
        autostart=_autostart(),
        built_in_coordinator=load_build_config().coordinator_url,
    )
    tray_available = QSystemTrayIcon.isSystemTrayAvailable()
    if not tray_available and args.autostart:
        tray_available = _wait_for_tray(app, TRAY_WAIT_AT_LOGIN_S)
    if not tray_available:
        log.warning("No system tray on this desktop; showing the window instead.")
    desktop = DesktopApp(contribution, tray_available=tray_available)
    instance.message.disconnect(remember)
    instance.message.connect(desktop.handle_message)
    desktop.finished.connect(app.quit)
    restore_signals = _quit_on_signals(app, desktop)
    desktop.start(show_window=args.show is not None, tab=args.show)
    for message in early:
        QTimer.singleShot(0, lambda message=message: desktop.handle_message(message))
    try:
        return app.exec()
    finally:
        restore_signals()
        instance.close()
        lock.unlock()
        log.info("RMA Compute closed.")


if __name__ == "__main__":
    sys.exit(main())
