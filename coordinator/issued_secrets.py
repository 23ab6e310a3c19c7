"""Secrets that admins issue and revoke: client API keys and enrollment tokens.

Each is a prefix that says what it is (so people and secret scanners recognise a leaked one)
followed by 256 random bits. The database keeps only the secret's SHA-256 hash and its
first characters; the secret itself is shown once, in the answer to its creation. Rows are
never deleted: a revoked secret stays listed, marked with when it was revoked.

The stores (``coordinator.relay.api_keys``, ``coordinator.workers.enrollment``) share the
steps here and keep what differs: where a secret is checked, and what a use changes.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.clock import to_datetime
from coordinator.db.schema import IssuedSecretColumns
from coordinator.errors import ApiError
from coordinator.security import hash_token

SHOWN_RANDOM_CHARACTERS = 4
"""How many characters after the prefix lists show: enough to tell secrets apart, too few to
help anyone guess one."""

Row = TypeVar("Row", bound=IssuedSecretColumns)


@dataclass(frozen=True)
class IssuedSecret:
    """A newly made secret and what of it the database keeps."""

    secret: str
    """The secret itself, for the creation's answer only."""
    hash: str
    """Its SHA-256 hash (:func:`coordinator.security.hash_token`), to check it."""
    prefix: str
    """Its first characters, to recognise it in lists."""

    def row_values(self, name: str, now: float) -> dict[str, Any]:
        """The columns every issued secret's row has, for a new row labelled ``name``."""
        return {
            "id": str(uuid.uuid4()),
            "name": name,
            "prefix": self.prefix,
            "created_at": now,
            "revoked_at": None,
        }


@dataclass(frozen=True)
class SecretKind:
    """One kind of issued secret: what it looks like, and what admins are told about it."""

    prefix: str
    """What every secret of this kind starts with (e.g. ``rma_``)."""
    noun: str
    """What admins call it, e.g. ``client API key``."""
    unknown_code: str
    """The error code of a 404 for an id that is not one of these."""
    list_path: str
    """The admin route that lists them."""

    def issue(self) -> IssuedSecret:
        """A fresh secret: the prefix and 256 random bits, URL-safe."""
        secret = self.prefix + secrets.token_urlsafe(32)
        return IssuedSecret(
            secret=secret,
            hash=hash_token(secret),
            prefix=secret[: len(self.prefix) + SHOWN_RANDOM_CHARACTERS],
        )

    def unknown(self, row_id: str) -> ApiError:
        """The 404 for an id that is not one of these."""
        return ApiError(
            404,
            self.unknown_code,
            f"There is no {self.noun} with id {row_id}; GET {self.list_path} lists them.",
        )


def created_fields(row: IssuedSecretColumns) -> dict[str, Any]:
    """The fields of a creation's answer that come from the new row (all but the secret)."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": to_datetime(row.created_at),
    }


def listed_fields(row: IssuedSecretColumns) -> dict[str, Any]:
    """The fields every issued secret shows in a list: never the secret, only its prefix."""
    return {
        **created_fields(row),
        "revoked_at": to_datetime(row.revoked_at) if row.revoked_at is not None else None,
        "active": row.revoked_at is None,
    }


def newest_first(session: Session, row_type: type[Row]) -> Sequence[Row]:
    """Every row of ``row_type``, newest first, revoked ones included."""
    query = select(row_type).order_by(row_type.created_at.desc(), row_type.id)
    return session.scalars(query).all()


def revoke_row(
    session: Session, kind: SecretKind, row_type: type[Row], row_id: str, now: float
) -> tuple[Row, bool]:
    """Mark a row revoked at ``now``, unless it already is.

    Returns:
        The row, and whether this call revoked it (False: it was revoked before).

    Raises:
        ApiError: 404 with the kind's code when there is no row with this id.
    """
    row = session.get(row_type, row_id)
    if row is None:
        raise kind.unknown(row_id)
    newly_revoked = row.revoked_at is None
    if newly_revoked:
        row.revoked_at = now
    return row, newly_revoked
