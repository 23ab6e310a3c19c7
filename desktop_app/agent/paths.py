"""Where the agent keeps its files: one object, built once and passed to whoever needs it.

Nothing in the agent computes a path on its own; it receives an :class:`AppPaths`. The
desktop app and ``rma-worker`` build it with :meth:`AppPaths.for_user`; ``rma-worker
--state-dir D`` and the tests build it with :meth:`AppPaths.under`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "RMA Compute"
"""The folder name the operating system shows for our files."""

APP_AUTHOR = "RMA"
"""The publisher folder on Windows (``%LOCALAPPDATA%\\RMA\\RMA Compute``)."""

_PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class AppPaths:
    """The agent's folders. Building one touches nothing on disk; call :meth:`ensure`."""

    config_dir: Path
    """Settings the volunteer chose."""
    state_dir: Path
    """What the agent remembers between runs: worker identity, credentials file."""
    log_dir: Path
    """Log files."""
    cache_dir: Path
    """Things that can be rebuilt: downloaded data, probe caches."""

    @classmethod
    def for_user(cls, app_name: str = APP_NAME, app_author: str = APP_AUTHOR) -> AppPaths:
        """The current user's folders in the places this operating system expects.

        Args:
            app_name: The application's folder name.
            app_author: The publisher's folder name (used on Windows only).

        Returns:
            The paths; nothing is created.
        """
        dirs = PlatformDirs(appname=app_name, appauthor=app_author)
        return cls(
            config_dir=dirs.user_config_path,
            state_dir=dirs.user_state_path,
            log_dir=dirs.user_log_path,
            cache_dir=dirs.user_cache_path,
        )

    @classmethod
    def under(cls, root: Path) -> AppPaths:
        """All four folders inside one folder (``rma-worker --state-dir``, tests).

        Args:
            root: The folder that holds ``config``, ``state``, ``logs`` and ``cache``.

        Returns:
            The paths; nothing is created.
        """
        return cls(
            config_dir=root / "config",
            state_dir=root / "state",
            log_dir=root / "logs",
            cache_dir=root / "cache",
        )

    def all(self) -> tuple[Path, ...]:
        """The four folders, in a fixed order (duplicates kept; macOS shares some)."""
        return (self.config_dir, self.state_dir, self.log_dir, self.cache_dir)

    def ensure(self) -> AppPaths:
        """Create the folders, readable by this user only where the OS has POSIX modes.

        Folders that already exist are tightened to ``0700`` too, because the state folder
        can hold a worker's secret.

        Returns:
            ``self``, for chaining.
        """
        for directory in dict.fromkeys(self.all()):
            directory.mkdir(mode=_PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            if os.name == "posix":
                # mkdir's mode is filtered by the umask and ignored for existing folders.
                directory.chmod(_PRIVATE_DIR_MODE)
        return self
