"""The dashboard's sign-in: sessions behind an HttpOnly cookie, CSRF tokens, and throttling.

A browser never holds the admin token after signing in. ``POST /api/admin/session`` trades
it for a random session id in a cookie that scripts cannot read (``HttpOnly``) and that
browsers do not send with requests started by other sites (``SameSite=Strict``). Requests
that change something must also carry the session's CSRF token in ``X-CSRF-Token`` (a page
from another site cannot read it) and, when the browser says where they come from
(``Origin``, ``Sec-Fetch-Site``), come from this site. Scripts and ``curl`` keep using the
admin token as a bearer token; a browser never sends that header by itself, so those
requests need no CSRF check.

Sessions live in this process's memory: a restart signs everybody out, which is cheap for a
handful of admins and means a stolen cookie dies with the process. Only hashes of session
ids are kept, and comparisons are constant-time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from coordinator.clock import Clock
from coordinator.security import hash_token

SESSION_COOKIE = "rma_admin_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing, so they need no CSRF token."""

MAX_SESSIONS = 1000
"""Sessions kept at once; signing in beyond this ends the least recently used one."""

MAX_THROTTLED_CLIENTS = 10_000
"""Clients whose failed sign-ins are remembered; beyond this the oldest are forgotten."""


@dataclass
class AdminSessionState:
    """One signed-in browser."""

    csrf_token: str
    created_at: float
    expires_at: float
    """When it ends unless used; every use moves it on by the idle timeout."""


class SessionStore:
    """The signed-in dashboard sessions of this coordinator.

    Args:
        clock: Where the time comes from.
        idle_timeout: Seconds a session lasts without use.
        max_age: Seconds a session lasts at most, used or not.
    """

    def __init__(self, clock: Clock, *, idle_timeout: float, max_age: float) -> None:
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self._lock = threading.Lock()
        # hash of the session id → state, least recently used first.
        self._sessions: OrderedDict[str, AdminSessionState] = OrderedDict()

    def start(self) -> tuple[str, AdminSessionState]:
        """A new session: its id (for the cookie, never stored) and its state."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        state = AdminSessionState(
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=min(now + self.idle_timeout, now + self.max_age),
        )
        with self._lock:
            self._sessions[hash_token(session_id)] = state
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session_id, state

    def find(self, session_id: str) -> AdminSessionState | None:
        """The live session with this id, its expiry moved on; None if there is none."""
        key = hash_token(session_id)
        now = self._clock()
        with self._lock:
            state = self._sessions.get(key)
            if state is None:
                return None
            if state.expires_at <= now:
                del self._sessions[key]
                return None
            state.expires_at = min(now + self.idle_timeout, state.created_at + self.max_age)
            self._sessions.move_to_end(key)
            return state

    def end(self, session_id: str) -> None:
        """Sign a session out (nothing happens if it is unknown)."""
        with self._lock:
            self._sessions.pop(hash_token(session_id), None)

    def count(self) -> int:
        """Sessions that have not expired."""
        now = self._clock()
        with self._lock:
            return sum(1 for state in self._sessions.values() if state.expires_at > now)


def csrf_matches(presented: str | None, state: AdminSessionState) -> bool:
    """Whether a request's ``X-CSRF-Token`` is the session's, in constant time."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), state.csrf_token.encode())


def cross_site_reason(origin: str | None, fetch_site: str | None, host: str | None) -> str | None:
    """Why a browser request comes from another site, or None when it does not.

    Browsers send ``Origin`` with every POST, PUT and DELETE and ``Sec-Fetch-Site`` with
    every request; a request with neither did not come from a current browser (``curl``), and
    only the CSRF token guards it.

    Args:
        origin: The ``Origin`` header.
        fetch_site: The ``Sec-Fetch-Site`` header.
        host: The ``Host`` header the request was sent to.
    """
    if fetch_site is not None and fetch_site.lower() == "cross-site":
        return "the browser says it comes from another site"
    if origin is not None:
        if origin == "null":
            return "it comes from a page without an origin"
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:  # e.g. "http://[x": not a URL, so not this coordinator
            return "its Origin header is not a valid address"
        if host is None or netloc != host.lower():
            return f"it comes from {origin}, not from this coordinator"
    return None


class SignInThrottle:
    """Slow down guessing: a client with too many wrong admin tokens waits.

    Counted per client address, for the dashboard's sign-in and for bearer tokens on the
    admin API alike. Behind a reverse proxy, run uvicorn with ``--proxy-headers`` (and
    ``--forwarded-allow-ips``) so the address is the client's, not the proxy's; otherwise
    everyone shares one count.

    Args:
        clock: Where the time comes from.
        failures: Failed attempts allowed per client within ``window``.
        window: Seconds over which failures are counted.
    """

    def __init__(self, clock: Clock, *, failures: int = 10, window: float = 300.0) -> None:
        self._clock = clock
        self._failures = failures
        self._window = window
        self._lock = threading.Lock()
        # Client → times of its recent failures, least recently failing first.
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """Seconds the client must wait before trying again; 0 when it may try now."""
        now = self._clock()
        with self._lock:
            attempts = self._recent(client, now)
            if len(attempts) < self._failures:
                return 0
            return max(1, int(attempts[0] + self._window - now) + 1)

    def failed(self, client: str) -> None:
        """Count a failed sign-in."""
        now = self._clock()
        with self._lock:
            self._recent(client, now).append(now)
            self._attempts.move_to_end(client)
            while len(self._attempts) > MAX_THROTTLED_CLIENTS:  # a flood: forget the oldest
                self._attempts.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """Forget a client's failures once it signs in."""
        with self._lock:
            self._attempts.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        attempts = self._attempts.get(client)
        if attempts is None:
            attempts = self._attempts[client] = deque(maxlen=self._failures)
        while attempts and attempts[0] <= now - self._window:
            attempts.popleft()
        return attempts
