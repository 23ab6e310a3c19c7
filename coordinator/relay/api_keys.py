"""Client API keys: admins create and revoke them; the relay checks them on every request.

A key is ``rma_`` followed by 256 random bits. The database keeps only its SHA-256 hash and
its first characters; the key itself is shown once, in the answer to its creation.

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
import secrets
import threading
import uuid
from types import MappingProxyType

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from coordinator.clock import Clock, to_datetime
from coordinator.db.schema import ApiKeyRow
from coordinator.errors import ApiError
from coordinator.security import hash_token
from shared import ApiKeyCreated, ApiKeyList, ApiKeyView

log = logging.getLogger(__name__)

KEY_PREFIX = "rma_"
"""What every client API key starts with, so a leaked one is recognisable (secret scanners)."""

SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 4
"""How much of a key the list shows: ``rma_`` and four random characters."""


def new_api_key() -> str:
    """A fresh client API key: ``rma_`` and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _view(row: ApiKeyRow) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=to_datetime(row.created_at),
        revoked_at=to_datetime(row.revoked_at) if row.revoked_at is not None else None,
        active=row.revoked_at is None,
    )


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
        key = new_api_key()
        row = ApiKeyRow(
            id=str(uuid.uuid4()),
            name=name,
            key_hash=hash_token(key),
            prefix=key[:SHOWN_PREFIX_LENGTH],
            created_at=self._clock(),
            revoked_at=None,
        )
        with self._lock:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                session.add(row)
            self._active = MappingProxyType({**self._active, row.key_hash: row.id})
        log.info("Client API key %s (%s) created", row.id, row.name)
        return ApiKeyCreated(
            key=key,
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=to_datetime(row.created_at),
        )

    def list(self) -> ApiKeyList:
        """Every key, newest first, revoked ones included (and marked); never the keys."""
        with Session(self._engine) as session:
            total = session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0
            rows = session.scalars(
                select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id)
            ).all()
            return ApiKeyList(keys=[_view(row) for row in rows], total=total)

    def revoke(self, key_id: str) -> ApiKeyView:
        """Stop accepting a key, at once; revoking a revoked key changes nothing.

        Raises:
            ApiError: 404 ``unknown_api_key`` when no key has this id.
        """
        with self._lock:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                row = session.get(ApiKeyRow, key_id)
                if row is None:
                    raise ApiError(
                        404,
                        "unknown_api_key",
                        f"There is no client API key with id {key_id}; "
                        "GET /api/admin/api-keys lists them.",
                    )
                newly_revoked = row.revoked_at is None
                if newly_revoked:
                    row.revoked_at = self._clock()
            if newly_revoked:
                self._active = MappingProxyType(
                    {h: i for h, i in self._active.items() if h != row.key_hash}
                )
        if newly_revoked:
            log.info("Client API key %s (%s) revoked", row.id, row.name)
        return _view(row)
