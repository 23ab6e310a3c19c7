"""What the frozen app carries besides code: its build settings, and the modules it must bundle.

The installers freeze the tray app with PyInstaller (``build.spec``). Two things come from
the build rather than from the code:

- **The build settings** (:class:`BuildConfig`): the pool's address an organisation's build
  is preset with (``RMA_BUILD_COORDINATOR_URL`` when ``build.spec`` runs) and when the app
  was built. ``build.spec`` writes them to :data:`BUILD_CONFIG_FILE` inside the bundle, and
  :func:`load_build_config` reads it at run time. A pip installation has no such file.
- **The modules PyInstaller cannot see** (:func:`lazy_modules`): those imported inside a
  function, only on some operating systems, or through a plug-in mechanism. ``build.spec``
  lists them as hidden imports and ``rma-desktop --self-test`` imports them, so a frozen
  build that lacks one fails its self-test instead of failing on a volunteer's computer.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop_app.agent.settings import check_coordinator_url

log = logging.getLogger(__name__)

BUILD_CONFIG_FILE = "build-config.json"
"""The build settings' file name, at the top of the frozen app's bundle folder."""

BUILD_COORDINATOR_ENV = "RMA_BUILD_COORDINATOR_URL"
"""Read by ``build.spec`` when the app is frozen: the pool address the build is preset with."""

BACKEND_PACKAGES = (
    "desktop_app.agent.autostart",
    "desktop_app.agent.hardware",
    "desktop_app.agent.idle",
    "desktop_app.agent.relay",
)
"""Packages whose every module is bundled: each OS picks its own backends from them."""

_EVERYWHERE = (
    # Imported inside functions (desktop_app.agent.hardware, credentials).
    "docker",
    "pynvml",
    "keyring.backends.chainer",
    "keyring.backends.fail",
    "keyring.backends.null",
    # The relay tunnel and its loopback HTTP client (desktop_app.agent.relay).
    "websockets.asyncio.client",
    "httptools",
    # What the tray app is built from; imported by desktop_app.main only when it starts.
    "desktop_app.ui.app",
)
_BY_PLATFORM = {
    "linux": (
        "uvloop",
        "jeepney",
        "jeepney.io.blocking",
        "keyring.backends.SecretService",
        "keyring.backends.kwallet",
        "keyring.backends.libsecret",
        "secretstorage",
    ),
    "darwin": ("uvloop", "keyring.backends.macOS"),
    "win32": ("keyring.backends.Windows", "winreg"),
}


def lazy_modules(platform: str = sys.platform) -> tuple[str, ...]:
    """The modules a build for ``platform`` must bundle although nothing imports them at the top.

    Args:
        platform: ``sys.platform`` of the machine the app is built for.

    Returns:
        Module names, in a fixed order.
    """
    key = "linux" if platform.startswith("linux") else platform
    return _EVERYWHERE + _BY_PLATFORM.get(key, ())


def is_frozen() -> bool:
    """Whether this is the frozen app built by ``build.spec`` (not a pip installation)."""
    return bool(getattr(sys, "frozen", False))


def bundle_dir() -> Path | None:
    """The frozen app's bundle folder (PyInstaller's ``_internal``), or None when not frozen."""
    if not is_frozen():
        return None
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) if bundle else Path(sys.executable).resolve().parent


class BuildConfigError(ValueError):
    """The build settings are not usable; the message says which and why."""


@dataclass(frozen=True)
class BuildConfig:
    """The settings a build was made with. Empty for a pip installation."""

    coordinator_url: str | None = None
    """The pool's address the build is preset with; None for the app's default."""
    built_at: datetime | None = None
    """When the app was frozen."""
    source: Path | None = None
    """The file these came from."""

    def to_json(self) -> str:
        """The file ``build.spec`` writes (without ``source``)."""
        document: dict[str, Any] = {
            "coordinator_url": self.coordinator_url,
            "built_at": self.built_at.isoformat() if self.built_at else None,
        }
        return json.dumps(document, indent=2) + "\n"


def make_build_config(coordinator_url: str | None, now: datetime | None = None) -> BuildConfig:
    """The build settings for a new build, checked.

    Args:
        coordinator_url: The pool address to preset; None or blank for none.
        now: The build time; None reads the clock.

    Returns:
        The settings.

    Raises:
        BuildConfigError: ``coordinator_url`` is not a pool address.
    """
    return BuildConfig(_checked_url(coordinator_url), now or datetime.now(UTC))


def _checked_url(coordinator_url: str | None) -> str | None:
    if coordinator_url is None or not coordinator_url.strip():
        return None
    try:
        return check_coordinator_url(coordinator_url)
    except ValueError as exc:
        raise BuildConfigError(f"{BUILD_COORDINATOR_ENV}: {exc}") from None


def load_build_config(folder: Path | None = None) -> BuildConfig:
    """The build settings of this app, or empty ones when there are none.

    A damaged file is logged and ignored: the app still starts, with its defaults.

    Args:
        folder: Where :data:`BUILD_CONFIG_FILE` is; None for the frozen app's bundle.

    Returns:
        The settings.
    """
    folder = bundle_dir() if folder is None else folder
    if folder is None:
        return BuildConfig()
    path = folder / BUILD_CONFIG_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError("it does not hold a set of settings")
        url = document.get("coordinator_url")
        if url is not None and not isinstance(url, str):
            raise ValueError("coordinator_url is not text")
        built_at = document.get("built_at")
        return BuildConfig(
            coordinator_url=_checked_url(url),
            built_at=datetime.fromisoformat(built_at) if isinstance(built_at, str) else None,
            source=path,
        )
    except FileNotFoundError:
        return BuildConfig()
    except (OSError, ValueError) as exc:  # JSONDecodeError and BuildConfigError are ValueErrors
        log.warning("Ignoring the build settings in %s: %s", path, exc)
        return BuildConfig()
