"""Client API keys: admins create and revoke them; the relay checks them on every request.

A key is ``rma_`` followed by 256 random bits. The database keeps only its SHA-256 hash and
its first characters; the key itself is shown once, in the answer to its creation (see
:mod:`coordinator.issued_secrets`).

The relay's check (:meth:`ApiKeyStore.identify`) runs on the event loop for every relayed
request, so it never touches the database: the hashes of the active keys live in memory,
loaded at start-up and changed by :meth:`ApiKeyStore.create` and :meth:`ApiKeyStore.revoke`
(which run in FastAPI's thread pool) only after their transaction committed. A revocation
therefore takes effect on this coordinator before its answer is sent. Another coordinator on
the same database sees keys created or revoked here only when it calls :meth:`load` again
(at its next start).
"""

from __future__ import annotations

import logging
import threading
from types import MappingProxyType

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from coordinator.clock import Clock
from coordinator.db.schema import ApiKeyRow
from coordinator.issued_secrets import (
    SecretKind,
    created_fields,
    listed_fields,
    newest_first,
    revoke_row,
)
from coordinator.security import hash_token
from shared import ApiKeyCreated, ApiKeyList, ApiKeyView

log = logging.getLogger(__name__)

API_KEYS = SecretKind(
    prefix="rma_",
    noun="client API key",
    unknown_code="unknown_api_key",
    list_path="/api/admin/api-keys",
)
"""Client API keys start with ``rma_``, so a leaked one is recognisable (secret scanners)."""


class ApiKeyStore:
    """The client API keys: stored in the registry database, checked from memory.

    Args:
        engine: The registry database.
        clock: Where creation and revocation times come from.
    """

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        # The hash of each active key → the key's id. Replaced whole (copy on write) under
        # the lock, never changed in place, so identify() reads a consistent mapping without
        # taking the lock on the event loop.
        self._active: MappingProxyType[str, str] = MappingProxyType({})

    def load(self) -> None:
        """Read the active keys from the database into memory (at start-up)."""
        query = select(ApiKeyRow.key_hash, ApiKeyRow.id).where(ApiKeyRow.revoked_at.is_(None))
        with self._lock:
            with self._engine.connect() as connection:
                active = {key_hash: key_id for key_hash, key_id in connection.execute(query)}
            self._active = MappingProxyType(active)
        log.info("Client API keys: %d active", len(active))

    def identify(self, key: str) -> str | None:
        """The id of ``key`` if it is a valid, unrevoked client API key; otherwise None.

        Runs on the event loop for every relayed request: no database, no lock, no I/O. The
        lookup is by the key's SHA-256 hash, so its timing tells nothing usable about keys.
        """
        return self._active.get(hash_token(key))

    def count_active(self) -> int:
        """How many keys the relay accepts now."""
        return len(self._active)

    def create(self, name: str) -> ApiKeyCreated:
        """Make a new key labelled ``name``; the answer is the only place the key appears."""
        issued = API_KEYS.issue()
        row = ApiKeyRow(**issued.row_values(name, self._clock()), key_hash=issued.hash)
        with self._lock:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                session.add(row)
            self._active = MappingProxyType({**self._active, row.key_hash: row.id})
        log.info("Client API key %s (%s) created", row.id, row.name)
        return ApiKeyCreated(key=issued.secret, **created_fields(row))

    def list(self) -> ApiKeyList:
        """Every key, newest first, revoked ones included (and marked); never the keys."""
        with Session(self._engine) as session:
            keys = [ApiKeyView(**listed_fields(row)) for row in newest_first(session, ApiKeyRow)]
        return ApiKeyList(keys=keys, total=len(keys))

    def revoke(self, key_id: str) -> ApiKeyView:
        """Stop accepting a key, at once; revoking a revoked key changes nothing.

        Raises:
            ApiError: 404 ``unknown_api_key`` when no key has this id.
        """
        with self._lock:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                row, newly_revoked = revoke_row(session, API_KEYS, ApiKeyRow, key_id, self._clock())
            if newly_revoked:
                self._active = MappingProxyType(
                    {h: i for h, i in self._active.items() if h != row.key_hash}
                )
        if newly_revoked:
            log.info("Client API key %s (%s) revoked", row.id, row.name)
        return ApiKeyView(**listed_fields(row))
