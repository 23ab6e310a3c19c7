"""Start at login on Linux and BSD desktops: an XDG autostart entry.

GNOME, KDE Plasma, Xfce, Cinnamon, MATE, LXQt and the systemd XDG autostart generator all
start the ``.desktop`` files in ``$XDG_CONFIG_HOME/autostart`` when the volunteer logs in
(Desktop Application Autostart Specification). An entry there also overrides one with the
same name in a system folder (``$XDG_CONFIG_DIRS/autostart``, e.g. one a package installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .base import Autostart, AutostartError, remove_entry, write_entry
from .command import desktop_exec_value, escape_desktop_string

APP_ID = "rma-desktop"
"""The desktop file ID; the same name the tray app gives Qt (``setDesktopFileName``)."""

ENTRY_NAME = "RMA Compute Pool"
"""What session settings show for the entry."""

_ENTRY_GROUP = "Desktop Entry"
_TRUE = ("true", "1")
_FALSE = ("false", "0")


class XdgDesktopAutostart(Autostart):
    """An autostart desktop entry in the volunteer's config folder."""

    def __init__(
        self,
        command: Sequence[str],
        config_home: Path,
        *,
        config_dirs: Sequence[Path] = (),
        app_id: str = APP_ID,
    ) -> None:
        """Create the backend. Nothing is read or written until a method is called.

        Args:
            command: What the entry starts (see :func:`.launch_command`).
            config_home: ``$XDG_CONFIG_HOME``, usually ``~/.config``; the entry goes in its
                ``autostart`` folder.
            config_dirs: ``$XDG_CONFIG_DIRS``, where a package may have put a system-wide
                entry of the same name that :meth:`disable` must then hide.
            app_id: The entry's file name without ``.desktop``; also its icon name.
        """
        self._command = list(command)
        self._autostart_dir = config_home / "autostart"
        self._system_entries = [
            folder / "autostart" / f"{app_id}.desktop" for folder in config_dirs
        ]
        self._app_id = app_id
        self.path = self._autostart_dir / f"{app_id}.desktop"
        """The entry :meth:`enable` writes."""
        self.description = f"an autostart entry in {self._autostart_dir}"

    def entry_text(self, *, hidden: bool = False) -> str:
        """The desktop entry :meth:`enable` writes (with ``hidden``, what :meth:`disable` may).

        Args:
            hidden: Add ``Hidden=true``, which makes the session ignore this entry and any
                system entry of the same name.

        Returns:
            The file's text.
        """
        lines = [
            f"[{_ENTRY_GROUP}]",
            "Type=Application",
            f"Name={ENTRY_NAME}",
            "Comment=Contribute this computer's spare power to the RMA compute pool",
            f"Exec={desktop_exec_value(self._command)}",
            # Sessions skip an entry whose TryExec is missing, so an app uninstalled without
            # disabling this first is quietly not started instead of failing at every login.
            f"TryExec={escape_desktop_string(self._command[0])}",
            f"Icon={self._app_id}",
            "Terminal=false",
            "Categories=Network;",
            "StartupNotify=false",
            "X-GNOME-Autostart-enabled=true",
        ]
        if hidden:
            lines.append("Hidden=true")
        return "\n".join(lines) + "\n"

    def is_enabled(self) -> bool:
        """Whether the session will start the entry: ours, or else a system one.

        An entry counts unless it says ``Hidden=true`` or ``X-GNOME-Autostart-enabled=false``
        (what GNOME Tweaks and older session settings write to turn one off).

        Raises:
            AutostartError: The entry exists but could not be read.
        """
        for path in (self.path, *self._system_entries):
            keys = _read_entry(path)
            if keys is not None:
                hidden = keys.get("Hidden", "").strip().lower() in _TRUE
                switched_off = keys.get("X-GNOME-Autostart-enabled", "").strip().lower() in _FALSE
                return not hidden and not switched_off
        return False

    def enable(self) -> None:
        """Write the entry with the current command (atomically, replacing any earlier one).

        Raises:
            AutostartError: The entry could not be written.
        """
        write_entry(self.path, self.entry_text())

    def disable(self) -> None:
        """Remove the entry; where a system entry exists, write a hidden one that masks it.

        Raises:
            AutostartError: The entry could not be removed or written.
        """
        if any(path.is_file() for path in self._system_entries):
            # Deleting ours would let the system entry start the app again.
            write_entry(self.path, self.entry_text(hidden=True), starts=False)
        else:
            remove_entry(self.path)


def _read_entry(path: Path) -> dict[str, str] | None:
    """The keys of the ``[Desktop Entry]`` group, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AutostartError(
            f"Whether RMA Compute Pool starts at login cannot be told: {path} could not be "
            f"read ({exc.strerror or exc}).",
            title="Start at login unknown",
        ) from exc
    keys: dict[str, str] = {}
    group = None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif group == _ENTRY_GROUP and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), value.strip())
    return keys
