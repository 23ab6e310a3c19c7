"""The real-desktop harness, end to end: a real tray app on Xvfb + trayer, driven by xdotool.

Runs ``bench/empty_tray_app.py`` (the footprint baseline) as its own process, finds its icon
in trayer's panel, opens its context menu with a real right-click, screenshots it and quits
it through the menu's Quit item.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.waiting import wait_until
from tests.fixtures.x_desktop import XDesktop

pytestmark = pytest.mark.desktop

REPO = Path(__file__).resolve().parent.parent
EMPTY_TRAY_APP = REPO / "bench" / "empty_tray_app.py"
APP_CLASS = "empty_tray_app"  # QCoreApplication.applicationName() -> WM_CLASS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _colour_count(path: Path) -> int:
    result = subprocess.run(
        ["identify", "-format", "%k", str(path)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip())


def test_tray_icon_menu_screenshot_and_quit(x_desktop: XDesktop, tmp_path: Path) -> None:
    app = x_desktop.spawn([sys.executable, str(EMPTY_TRAY_APP)], cwd=REPO)

    icon = x_desktop.wait_for_tray_icon(APP_CLASS, timeout=20, process=app)
    assert icon.width > 0 and icon.height > 0
    panel_icons = x_desktop.tray_icons()
    assert [i.id for i in panel_icons] == [icon.id], panel_icons

    # Qt's popup menu is an override-redirect top-level window of the app's class, so look
    # for a new viewable one rather than by name.
    before = {window.id for window in x_desktop.windows()}
    x_desktop.click(*icon.center, button=3)
    menu = x_desktop.wait_for_window(wm_class=APP_CLASS, exclude_ids=before, timeout=10)
    geometry = x_desktop.window_geometry(menu.id)
    assert geometry is not None and geometry.viewable and geometry.override_redirect
    assert menu.width > 40 and menu.height > 40, menu

    screen = x_desktop.screenshot(tmp_path / "desktop.png")
    assert _png_size(screen) == (1280, 800)
    crop = x_desktop.screenshot(
        tmp_path / "menu.png", crop=(menu.x, menu.y, menu.width, menu.height)
    )
    assert _png_size(crop) == (menu.width, menu.height)
    # Drawn text is anti-aliased: many colours, where an undrawn window has one or two.
    assert _colour_count(crop) > 10, "the menu looks blank (no fonts?)"

    # Quit is the last item: click the middle of the menu's bottom row.
    x_desktop.click(menu.x + menu.width // 2, menu.y + menu.height - 8)
    try:
        status = app.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the app did not quit; its log ends:\n{x_desktop.log_tail(app)}")
    assert status == 0, x_desktop.log_tail(app)
    wait_until(lambda: x_desktop.tray_icons() == [], 5, "the icon to leave the tray")
