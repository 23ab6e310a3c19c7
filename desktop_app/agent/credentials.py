"""Where the worker's secret is kept: the system keyring, or a private file when there is none.

Headless servers usually have no keyring (no D-Bus session, no SecretService), so
:func:`default_credential_store` falls back to a ``0600`` JSON file in the state folder and
says so in :attr:`CredentialStore.description`.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path
from typing import Literal, Protocol

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from desktop_app.agent.errors import AgentError
from desktop_app.agent.files import atomic_write_text, set_aside

logger = logging.getLogger(__name__)

KEYRING_SERVICE = "rma-compute-pool"
"""The service name our secrets are filed under in the keyring."""

CREDENTIALS_FILE_NAME = "credentials.json"
"""The fallback file's name inside the state folder."""


class CredentialStoreError(AgentError):
    """A secret could not be read or saved."""


class CredentialStore(Protocol):
    """Keeps small secrets (the worker's token) by key."""

    @property
    def description(self) -> str:
        """Where secrets go, as a phrase for people."""
        ...

    def get(self, key: str) -> str | None:
        """The secret stored under ``key``, or None."""
        ...

    def set(self, key: str, secret: str) -> None:
        """Store ``secret`` under ``key``, replacing any earlier one."""
        ...

    def delete(self, key: str) -> None:
        """Forget the secret under ``key``; nothing happens when there is none."""
        ...


class KeyringCredentialStore:
    """Secrets in the operating system's keyring (Keychain, Credential Manager, SecretService)."""

    def __init__(self, service: str = KEYRING_SERVICE, backend: KeyringBackend | None = None):
        """Create the store. The keyring is not touched until a secret is asked for.

        Args:
            service: The service name secrets are filed under.
            backend: A specific keyring backend; None uses ``keyring.get_keyring()``.
        """
        self._service = service
        self._backend = backend

    def _keyring(self) -> KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()

    @property
    def description(self) -> str:
        """E.g. ``"the system keyring (SecretService Keyring)"``."""
        return f"the system keyring ({self._keyring().name})"

    def get(self, key: str) -> str | None:
        """The secret stored under ``key``, or None.

        Raises:
            CredentialStoreError: The keyring refused (locked, or access denied).
        """
        try:
            secret = self._keyring().get_password(self._service, key)
        except keyring.errors.KeyringError as exc:
            raise CredentialStoreError(
                "Keyring unavailable", f"The system keyring could not be read: {exc}"
            ) from exc
        return secret if isinstance(secret, str) else None

    def set(self, key: str, secret: str) -> None:
        """Store ``secret`` under ``key``.

        Raises:
            CredentialStoreError: The keyring refused (locked, or access denied).
        """
        try:
            self._keyring().set_password(self._service, key, secret)
        except keyring.errors.KeyringError as exc:
            raise CredentialStoreError(
                "Keyring unavailable",
                f"The worker's secret could not be saved in the system keyring: {exc}",
            ) from exc

    def delete(self, key: str) -> None:
        """Forget the secret under ``key``; nothing happens when there is none.

        Raises:
            CredentialStoreError: The keyring refused (locked, or access denied).
        """
        try:
            self._keyring().delete_password(self._service, key)
        except keyring.errors.PasswordDeleteError:
            logger.debug("No keyring entry %r to delete", key)
        except keyring.errors.KeyringError as exc:
            raise CredentialStoreError(
                "Keyring unavailable", f"The system keyring could not be changed: {exc}"
            ) from exc


class FileCredentialStore:
    """Secrets in a JSON file only this user can read, replaced atomically on every change.

    A file that cannot be read as ``{"key": "secret", ...}`` is moved aside to
    ``<name>.corrupt-<timestamp>`` (never deleted) and treated as empty.
    """

    def __init__(self, path: Path) -> None:
        """Create the store. The file is not touched until a secret is asked for.

        Args:
            path: The JSON file.
        """
        self._path = path
        self._lock = threading.Lock()
        self.moved_aside: Path | None = None
        """Where the last corrupt file was moved, for a notice to the volunteer."""

    @property
    def path(self) -> Path:
        """The JSON file."""
        return self._path

    @property
    def description(self) -> str:
        """E.g. ``"a private file (0600) at /home/me/.local/state/…/credentials.json"``."""
        return f"a private file (0600) at {self._path}, because no system keyring is available"

    def get(self, key: str) -> str | None:
        """The secret stored under ``key``, or None."""
        with self._lock:
            return self._read().get(key)

    def set(self, key: str, secret: str) -> None:
        """Store ``secret`` under ``key``.

        Raises:
            CredentialStoreError: The file could not be written.
        """
        with self._lock:
            secrets = self._read()
            secrets[key] = secret
            self._write(secrets)

    def delete(self, key: str) -> None:
        """Forget the secret under ``key``; nothing happens when there is none.

        Raises:
            CredentialStoreError: The file could not be written.
        """
        with self._lock:
            secrets = self._read()
            if secrets.pop(key, None) is not None:
                self._write(secrets)

    def _read(self) -> dict[str, str]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialStoreError(
                "Credentials unreadable", f"The file {self._path} could not be read: {exc}"
            ) from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._move_aside(f"it is not valid JSON ({exc})")
            return {}
        if not isinstance(data, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in data.items()
        ):
            self._move_aside("it does not hold text secrets by name")
            return {}
        return dict(data)

    def _move_aside(self, why: str) -> None:
        self.moved_aside = set_aside(self._path, why)

    def _write(self, secrets: dict[str, str]) -> None:
        try:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write_text(
                self._path, json.dumps(secrets, indent=2, sort_keys=True) + "\n", mode=0o600
            )
        except OSError as exc:
            raise CredentialStoreError(
                "Credentials not saved", f"The file {self._path} could not be written: {exc}"
            ) from exc


def usable_keyring_backend() -> KeyringBackend | None:
    """The active keyring backend if it is a real one, without touching any secret.

    Returns:
        The backend, or None when keyring would only fail (``fail.Keyring``), drop secrets
        (``null.Keyring``) or has priority below 1 (nothing dependable is installed).
    """
    # Imported here: these modules are keyring internals only needed for this check.
    from keyring.backends import fail, null

    try:
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring | null.Keyring):
            return None
        priority = float(backend.priority)
    except Exception as exc:  # a broken backend plugin must not stop the agent
        logger.info("No usable keyring: %s", exc)
        return None
    if priority < 1:
        return None
    return backend


def add_credential_store_argument(parser: argparse.ArgumentParser) -> None:
    """``--credential-store auto|keyring|file``, as :func:`default_credential_store` takes it."""
    parser.add_argument(
        "--credential-store",
        choices=["auto", "keyring", "file"],
        default="auto",
        help="where this computer's pool key is kept: the OS keyring, or a private file "
        "(default: auto, the keyring when there is one)",
    )


def default_credential_store(
    state_dir: Path, prefer: Literal["auto", "keyring", "file"] = "auto"
) -> CredentialStore:
    """The keyring when a real one is available, else a private file in ``state_dir``.

    Args:
        state_dir: The agent's state folder; the file is ``state_dir/credentials.json``.
        prefer: ``"auto"`` chooses; ``"file"`` always uses the file; ``"keyring"`` uses the
            keyring when usable and still falls back to the file (logged) when not.

    Returns:
        The store.
    """
    file_store = FileCredentialStore(state_dir / CREDENTIALS_FILE_NAME)
    if prefer == "file":
        return file_store
    backend = usable_keyring_backend()
    if backend is None:
        if prefer == "keyring":
            logger.warning("No system keyring is available; using %s", file_store.description)
        return file_store
    return KeyringCredentialStore(backend=backend)
