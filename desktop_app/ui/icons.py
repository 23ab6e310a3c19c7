"""The app's icons, drawn from ``assets/icons`` (SVG, so they are crisp at any size and DPR)."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from desktop_app.agent.bundle import bundle_dir
from desktop_app.agent.presentation import Kind

log = logging.getLogger(__name__)

_FALLBACK_COLOURS: dict[str, str] = {
    "app": "#1f6f5c",
    "contributing": "#1f6f5c",
    "paused": "#7a7f87",
    "waiting": "#3b7691",
    "attention": "#d93a2b",
}


def assets_dir() -> Path | None:
    """The ``assets`` folder: beside the frozen app, or at the top of the source tree."""
    candidates = []
    frozen_root = bundle_dir()
    if frozen_root is not None:
        candidates.append(frozen_root / "assets")
    candidates.append(Path(__file__).resolve().parents[2] / "assets")
    for candidate in candidates:
        if (candidate / "icons").is_dir():
            return candidate
    return None


def _fallback(name: str) -> QIcon:
    # Installed without the assets (a bare wheel): a plain coloured disc still tells states apart.
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(_FALLBACK_COLOURS.get(name, "#1f6f5c")))
    painter.setPen(QColor("white"))
    painter.drawEllipse(4, 4, 56, 56)
    painter.end()
    return QIcon(pixmap)


@cache
def icon(name: str) -> QIcon:
    """``app`` or a tray state's icon (``tray-<state>.svg``)."""
    root = assets_dir()
    file_name = "app.svg" if name == "app" else f"tray-{name}.svg"
    if root is not None:
        path = root / "icons" / file_name
        if path.is_file():
            loaded = QIcon(str(path))
            if not loaded.isNull():
                return loaded
    log.warning("Icon %s not found in the assets; using a plain one", file_name)
    return _fallback(name)


def state_icon(kind: Kind) -> QIcon:
    """The tray icon for a situation's kind."""
    return icon(kind)
