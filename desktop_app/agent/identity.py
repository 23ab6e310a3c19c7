"""The worker's identity across restarts.

Its id lives in the state dir; its token in a credential store (the OS keyring, or a
private file where there is none).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from desktop_app.agent.credentials import CredentialStore
from desktop_app.agent.files import atomic_write_text, set_aside

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"


@dataclass(frozen=True)
class WorkerIdentity:
    """Who this worker is to one coordinator."""

    worker_id: str
    token: str
    coordinator_url: str


class IdentityStore:
    """Loads and saves the worker's identity; the token never goes into the identity file."""

    def __init__(self, state_dir: Path, credentials: CredentialStore) -> None:
        self._path = state_dir / IDENTITY_FILE
        self._credentials = credentials

    @property
    def path(self) -> Path:
        """The identity file."""
        return self._path

    def load(self, coordinator_url: str) -> WorkerIdentity | None:
        """The identity for ``coordinator_url``, or None if there is none (or it is unusable).

        An identity for another coordinator is ignored: a worker moved to a new pool joins
        it afresh.
        """
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            worker_id = str(data["worker_id"])
            saved_url = str(data["coordinator_url"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            set_aside(self._path, f"{type(exc).__name__}: {exc}")
            return None
        if saved_url.rstrip("/") != coordinator_url.rstrip("/"):
            log.info("Saved identity is for %s, not %s; joining afresh", saved_url, coordinator_url)
            return None
        token = self._credentials.get(worker_id)
        if token is None:
            log.warning(
                "Worker id %s is saved but its token is missing from %s; joining afresh",
                worker_id,
                self._credentials.description,
            )
            return None
        return WorkerIdentity(worker_id, token, saved_url)

    def save(self, identity: WorkerIdentity) -> None:
        """Remember the identity: the token first, so a crash never leaves an id without it."""
        self._credentials.set(identity.worker_id, identity.token)
        document = {"worker_id": identity.worker_id, "coordinator_url": identity.coordinator_url}
        atomic_write_text(self._path, json.dumps(document, indent=2) + "\n")

    def forget(self, worker_id: str | None = None) -> None:
        """Drop the identity (and the token of ``worker_id``), e.g. after the pool refused it."""
        if worker_id is not None:
            self._credentials.delete(worker_id)
        self._path.unlink(missing_ok=True)


INSTALLATION_ID_FILE = "installation-id"


def read_installation_id(state_dir: Path) -> str | None:
    """The installation's id if one was made and is readable; never creates or moves a file."""
    try:
        text = (state_dir / INSTALLATION_ID_FILE).read_text(encoding="utf-8")
        return str(uuid.UUID(text.strip()))
    except (OSError, ValueError):
        return None


def load_or_create_installation_id(state_dir: Path) -> str:
    """A stable id for this installation, which labels the containers it manages.

    Unlike the worker id, it survives joining a pool afresh, so the agent always finds (and
    never loses track of) the containers it started.
    """
    path = state_dir / INSTALLATION_ID_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return str(uuid.UUID(text))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        set_aside(path, f"{type(exc).__name__}: {exc}")
    installation_id = str(uuid.uuid4())
    atomic_write_text(path, installation_id + "\n")
    return installation_id
