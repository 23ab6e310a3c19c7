"""Secrets: worker tokens, the admin token, and how they are compared."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from fastapi.security.utils import get_authorization_scheme_param

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin-token"


def new_token() -> str:
    """A fresh random secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token.

    Tokens are 256-bit random values, not passwords, so a fast hash is enough: nobody can
    brute-force the preimage, and a fast hash keeps heartbeats cheap.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(token: str, expected_hash: str) -> bool:
    """Whether ``token`` hashes to ``expected_hash``, in constant time."""
    return hmac.compare_digest(hash_token(token), expected_hash)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def load_or_create_admin_token(data_dir: Path) -> str:
    """Read the generated admin token from the data dir, creating it on first start.

    The file is created with mode 0600 from the start, so the secret is never readable by
    other users, even briefly.
    """
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            log.info("Admin token: read from %s", path)
            return token
        log.warning("Admin token file %s was empty; writing a new token", path)
    token = new_token()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)
    log.warning("Admin token generated and written to %s (readable by this user only)", path)
    return token
