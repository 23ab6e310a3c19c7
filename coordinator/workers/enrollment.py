"""Enrollment tokens: which new machines may join the pool.

Admins create and revoke tokens (``/api/admin/enrollment-tokens``); a volunteer's agent
presents one the first time it registers. A token is ``rma_join_`` followed by 256 random
bits; the database keeps only its hash and first characters (:mod:`coordinator.issued_secrets`).

A pool is open, any machine may join, until its first token is created or
``RMA_ENROLLMENT_TOKEN`` is set. From then on a new machine needs a token, even when every
token is revoked: revoking closes the pool, it never opens it. The token from the settings
works beside the stored ones. A worker the registry already knows re-registers with its own
worker token and needs no enrollment token (see ``WorkerRegistry.register``).

Unlike client API keys, which the relay checks from memory on every request, enrollment
tokens are checked in the database, inside the registration's own transaction: machines
join rarely, every coordinator sharing the database sees a revocation at once, and a
registration that fails after the check counts no use of the token.
"""

from __future__ import annotations

import hmac
import logging

from pydantic import SecretStr
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from coordinator.clock import Clock, to_datetime
from coordinator.db.schema import EnrollmentTokenRow
from coordinator.errors import unauthorized
from coordinator.issued_secrets import (
    SecretKind,
    created_fields,
    listed_fields,
    newest_first,
    revoke_row,
)
from coordinator.security import hash_token
from shared import EnrollmentTokenCreated, EnrollmentTokenList, EnrollmentTokenView

log = logging.getLogger(__name__)

ENROLLMENT_TOKENS = SecretKind(
    prefix="rma_join_",
    noun="enrollment token",
    unknown_code="unknown_enrollment_token",
    list_path="/api/admin/enrollment-tokens",
)
"""Enrollment tokens start with ``rma_join_``, so a leaked one is recognisable."""

OPEN_POOL = "the open pool"
"""How a machine joined a pool that needs no token, as :meth:`EnrollmentTokenStore.enroll`
says it for the log."""
SETTINGS_TOKEN = "RMA_ENROLLMENT_TOKEN"
"""How a machine joined with the token from the settings, for the log."""


def _view(row: EnrollmentTokenRow) -> EnrollmentTokenView:
    return EnrollmentTokenView(
        **listed_fields(row),
        workers_enrolled=row.workers_enrolled,
        last_used_at=to_datetime(row.last_used_at) if row.last_used_at is not None else None,
    )


class EnrollmentTokenStore:
    """The enrollment tokens in the registry database, and the rule for who may join.

    Args:
        engine: The registry database.
        clock: Where creation, revocation and use times come from.
        settings_token: ``RMA_ENROLLMENT_TOKEN``, which works beside the stored tokens.
    """

    def __init__(self, engine: Engine, clock: Clock, settings_token: SecretStr | None) -> None:
        self._engine = engine
        self._clock = clock
        self._settings_token = settings_token

    def create(self, name: str) -> EnrollmentTokenCreated:
        """Make a new token labelled ``name``; the answer is the only place the token appears.

        From the first token on, the pool needs one from every new machine.
        """
        issued = ENROLLMENT_TOKENS.issue()
        row = EnrollmentTokenRow(
            **issued.row_values(name, self._clock()), token_hash=issued.hash, workers_enrolled=0
        )
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        log.info("Enrollment token %s (%s) created", row.id, row.name)
        return EnrollmentTokenCreated(token=issued.secret, **created_fields(row))

    def list(self) -> EnrollmentTokenList:
        """Every token, newest first, revoked ones included (and marked); never the tokens."""
        with Session(self._engine) as session:
            rows = newest_first(session, EnrollmentTokenRow)
            tokens = [_view(row) for row in rows]
        from_settings = self._settings_token is not None
        return EnrollmentTokenList(
            tokens=tokens,
            total=len(tokens),
            required=from_settings or bool(tokens),
            from_settings=from_settings,
        )

    def revoke(self, token_id: str) -> EnrollmentTokenView:
        """Stop new machines joining with a token; revoking a revoked token changes nothing.

        Machines that already joined with it stay: they re-register with their own worker
        token.

        Raises:
            ApiError: 404 ``unknown_enrollment_token`` when no token has this id.
        """
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            row, newly_revoked = revoke_row(
                session, ENROLLMENT_TOKENS, EnrollmentTokenRow, token_id, self._clock()
            )
        if newly_revoked:
            log.info("Enrollment token %s (%s) revoked", row.id, row.name)
        return _view(row)

    def required(self) -> bool:
        """Whether a new machine needs a token to join now."""
        with Session(self._engine) as session:
            return self._required(session)

    def enroll(self, session: Session, presented: str | None) -> str:
        """Let a new machine join if it may, and count the use of the stored token it sent.

        Runs inside the registration's transaction (``session``), so a registration that
        fails after this counts no use.

        Args:
            session: The registration's session, in a transaction.
            presented: The enrollment token the machine sent, if any.

        Returns:
            How the machine may join, for the log: the open pool, ``RMA_ENROLLMENT_TOKEN``,
            or the stored token's id and name.

        Raises:
            ApiError: 401 ``enrollment_required`` when the pool needs a token and none came;
                401 ``bad_enrollment`` when the token is not one the pool accepts or was
                revoked.
        """
        if presented is not None:
            if self._is_settings_token(presented):
                return SETTINGS_TOKEN
            row = session.scalar(
                select(EnrollmentTokenRow).where(
                    EnrollmentTokenRow.token_hash == hash_token(presented)
                )
            )
            if row is not None:
                if self._count_use(session, row.id):
                    return f"enrollment token {row.id} ({row.name})"
                raise unauthorized(
                    "This enrollment token was revoked: ask the pool's operator for a new one.",
                    "bad_enrollment",
                )
        if not self._required(session):
            return OPEN_POOL
        if presented is None:
            raise unauthorized(
                "This pool needs an enrollment token to join: ask its operator for one and "
                "pass it with --enrollment-token (or RMA_ENROLLMENT_TOKEN).",
                "enrollment_required",
            )
        raise unauthorized("The enrollment token is not valid for this pool.", "bad_enrollment")

    def _is_settings_token(self, presented: str) -> bool:
        if self._settings_token is None:
            return False
        expected = self._settings_token.get_secret_value()
        return hmac.compare_digest(presented.encode(), expected.encode())

    def _count_use(self, session: Session, token_id: str) -> bool:
        """Count one more machine for an unrevoked token; False if it is revoked."""
        # One conditional UPDATE, so concurrent joins each count and a revocation that
        # committed in between is seen.
        counted = session.connection().execute(
            update(EnrollmentTokenRow)
            .where(EnrollmentTokenRow.id == token_id, EnrollmentTokenRow.revoked_at.is_(None))
            .values(
                workers_enrolled=EnrollmentTokenRow.workers_enrolled + 1,
                last_used_at=self._clock(),
            )
        )
        return counted.rowcount == 1

    def _required(self, session: Session) -> bool:
        if self._settings_token is not None:
            return True
        return session.scalar(select(EnrollmentTokenRow.id).limit(1)) is not None
