"""``rma-desktop --quit``: end this user's running app, then remove any containers it left.

Uninstallers run it before they remove the app's files (the Windows uninstaller and its
upgrades; see ``installers/windows/rma-compute.iss``). It needs no display: only the
single-instance lock file and local socket, which work under ``QCoreApplication``.

It asks the running app to quit over the local socket (the app stops the pool's
containers first), and asks again until the app holds no lock, because an app that is
still starting may not listen yet. A crashed app's lock is stale and taken over. With the
lock held, so that no app can start meanwhile, it removes any of the pool's containers
still on the computer. What it does is logged to ``rma-desktop-quit.log`` in the log
folder too, because a windowed Windows app has no console to print to.
"""

from __future__ import annotations

import logging
import sys
import time

from PySide6.QtCore import QCoreApplication, QLockFile

from desktop_app.agent.leftovers import LeftoversError, remove_leftover_containers
from desktop_app.agent.logs import configure_logging
from desktop_app.agent.paths import AppPaths
from desktop_app.ui.single_instance import instance_name, send_to_running

log = logging.getLogger("rma-desktop")

LOG_FILE = "rma-desktop-quit.log"
LOCK_FILE = "rma-desktop.lock"
QUIT_WAIT_S = 90.0
"""How long to wait for the running app to stop its containers and end."""
LOCK_POLL_MS = 500
ASK_AGAIN_S = 2.0


def quit_running_app(paths: AppPaths, wait_s: float = QUIT_WAIT_S) -> int:
    """End the running app (if any) and remove leftover containers.

    Returns:
        0 when no app runs and none of the pool's containers are left; 1 otherwise.
    """
    _app = QCoreApplication.instance() or QCoreApplication([sys.argv[0] if sys.argv else ""])
    paths.ensure()
    configure_logging("INFO", paths.log_dir, LOG_FILE, console=False)
    try:
        return _quit(paths, wait_s)
    except Exception:  # an uninstaller waits for this: never hang in an error dialog
        log.exception("rma-desktop --quit failed")
        return 1


def _say(message: str, *, problem: bool = False) -> None:
    (log.warning if problem else log.info)("%s", message)
    print(message, file=sys.stderr if problem else sys.stdout)


def _quit(paths: AppPaths, wait_s: float) -> int:
    lock = QLockFile(str(paths.config_dir / LOCK_FILE))
    name = instance_name(str(paths.config_dir))
    if not lock.tryLock(LOCK_POLL_MS):
        asked = send_to_running(name, "quit")
        if asked:
            _say("Asked RMA Compute to stop the pool's containers and quit; waiting.")
        else:
            _say("RMA Compute is running but does not answer yet; asking until it does.")
        deadline = time.monotonic() + wait_s
        last_ask = time.monotonic()
        # A crashed app's lock is stale, and tryLock takes it over.
        while not lock.tryLock(LOCK_POLL_MS):
            now = time.monotonic()
            if now > deadline:
                _say(
                    f"RMA Compute did not quit within {wait_s:.0f} s. Quit it from its tray "
                    "icon, or restart the computer, and try again.",
                    problem=True,
                )
                return 1
            if now - last_ask >= ASK_AGAIN_S:  # it may have been starting, not listening
                asked = send_to_running(name, "quit") or asked
                last_ask = now
        _say("RMA Compute has quit.")
    try:
        _say(remove_leftover_containers(paths.state_dir))
    except LeftoversError as exc:
        _say(str(exc), problem=True)
        return 1
    finally:
        lock.unlock()
    return 0
