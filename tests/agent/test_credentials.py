from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from desktop_app.agent.credentials import (
    KEYRING_SERVICE,
    CredentialStoreError,
    FileCredentialStore,
    KeyringCredentialStore,
    default_credential_store,
)


class MemoryKeyring(KeyringBackend):
    """A real keyring backend that keeps secrets in a dict."""

    priority = 5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.secrets[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError(username) from None


class LockedKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")


@pytest.fixture
def active_keyring() -> Iterator[None]:
    """Restore whatever keyring backend was active before the test."""
    previous = keyring.get_keyring()
    try:
        yield
    finally:
        keyring.set_keyring(previous)


# -- file store ----------------------------------------------------------------------------


def test_file_round_trip(tmp_path: Path) -> None:
    store = FileCredentialStore(tmp_path / "state" / "credentials.json")
    assert store.get("worker") is None
    store.set("worker", "s3cret")
    store.set("other", "x")
    assert store.get("worker") == "s3cret"
    # A second store reading the same file sees the same secrets.
    assert FileCredentialStore(store.path).get("worker") == "s3cret"
    store.delete("worker")
    store.delete("worker")  # deleting twice is fine
    assert store.get("worker") is None
    assert store.get("other") == "x"
    assert json.loads(store.path.read_text()) == {"other": "x"}


def test_constructor_touches_nothing(tmp_path: Path) -> None:
    FileCredentialStore(tmp_path / "nope" / "credentials.json")
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_file_is_private(tmp_path: Path) -> None:
    os.umask(0o022)  # a permissive umask must not leak the secret
    store = FileCredentialStore(tmp_path / "credentials.json")
    store.set("worker", "s3cret")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.set("worker", "rotated")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]  # no temp files left


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'["a list"]', b'{"k": 1}'])
def test_corrupt_file_is_kept_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(content)
    store = FileCredentialStore(path)
    with caplog.at_level(logging.WARNING):
        assert store.get("worker") is None
    assert store.moved_aside is not None
    assert store.moved_aside.name.startswith("credentials.json.corrupt-")
    assert store.moved_aside.read_bytes() == content
    assert not path.exists()
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    store.set("worker", "fresh")
    assert store.get("worker") == "fresh"


def test_unusable_location_is_a_typed_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    store = FileCredentialStore(blocker / "credentials.json")
    with pytest.raises(CredentialStoreError) as caught:
        store.set("worker", "s3cret")
    assert str(blocker) in caught.value.message


def test_unreadable_file_is_a_typed_error(tmp_path: Path) -> None:
    store = FileCredentialStore(tmp_path / "credentials.json")
    (tmp_path / "credentials.json").mkdir()  # os.replace cannot put a file over a folder
    (tmp_path / "credentials.json" / "x").write_text("")
    with pytest.raises(CredentialStoreError) as caught:
        store.get("worker")
    assert caught.value.title == "Credentials unreadable"


def test_file_description_names_the_path(tmp_path: Path) -> None:
    store = FileCredentialStore(tmp_path / "credentials.json")
    assert str(tmp_path / "credentials.json") in store.description
    assert "0600" in store.description


# -- keyring store -------------------------------------------------------------------------


def test_keyring_round_trip(active_keyring: None) -> None:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    store = KeyringCredentialStore()
    store.set("worker", "s3cret")
    assert backend.secrets == {(KEYRING_SERVICE, "worker"): "s3cret"}
    assert store.get("worker") == "s3cret"
    store.delete("worker")
    store.delete("worker")
    assert store.get("worker") is None
    assert store.description.startswith("the system keyring (")


def test_keyring_refusal_is_a_typed_error() -> None:
    store = KeyringCredentialStore(backend=LockedKeyring())
    with pytest.raises(CredentialStoreError) as caught:
        store.set("worker", "s3cret")
    assert caught.value.title == "Keyring unavailable"


# -- factory -------------------------------------------------------------------------------


def test_factory_uses_a_real_keyring(tmp_path: Path, active_keyring: None) -> None:
    keyring.set_keyring(MemoryKeyring())
    assert isinstance(default_credential_store(tmp_path), KeyringCredentialStore)
    assert isinstance(default_credential_store(tmp_path, prefer="file"), FileCredentialStore)


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()])
def test_factory_falls_back_to_file(
    tmp_path: Path, active_keyring: None, backend: KeyringBackend
) -> None:
    keyring.set_keyring(backend)
    for prefer in ("auto", "keyring"):
        store = default_credential_store(tmp_path, prefer=prefer)  # type: ignore[arg-type]
        assert isinstance(store, FileCredentialStore)
        assert store.path == tmp_path / "credentials.json"
        assert "no system keyring" in store.description


def test_factory_ignores_low_priority_backends(tmp_path: Path, active_keyring: None) -> None:
    class Weak(MemoryKeyring):
        priority = 0.5  # type: ignore[assignment]

    keyring.set_keyring(Weak())
    assert isinstance(default_credential_store(tmp_path), FileCredentialStore)
