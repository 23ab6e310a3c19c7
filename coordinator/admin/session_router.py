"""Signing in and out of the dashboard (see :mod:`coordinator.admin.sessions`).

These routes check the admin token or the session themselves: signing in cannot need a
session, and reading the CSRF token must not accept a bearer token (there is no session).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response

from coordinator.admin.sessions import SESSION_COOKIE, AdminSessionState, cross_site_reason
from coordinator.clock import to_datetime
from coordinator.errors import ApiError, unauthorized
from coordinator.runtime import RuntimeDep, dashboard_session, too_many_attempts
from coordinator.security import tokens_match
from shared import AdminSession, AdminSignIn, ErrorResponse

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/admin", tags=["admin"])

_NO_STORE = {"Cache-Control": "no-store"}

COOKIE_PATH = "/api/admin"
"""The session cookie goes only with admin API calls: never with relayed requests, which
reach volunteers' machines, and not with the page itself, which holds no data."""

SIGN_IN_DELAY = 0.25
"""Seconds a wrong token waits before its answer, so guessing is slow even within limits."""


def _session_view(state: AdminSessionState) -> AdminSession:
    return AdminSession(csrf_token=state.csrf_token, expires_at=to_datetime(state.expires_at))


@router.post(
    "/session",
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
    },
)
async def sign_in(
    body: AdminSignIn, request: Request, response: Response, runtime: RuntimeDep
) -> AdminSession:
    """Sign in to the dashboard with the admin token.

    The answer sets the session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) and
    carries the CSRF token to send as ``X-CSRF-Token`` with every change. After 10 wrong
    tokens in 5 minutes a client waits (429 with ``Retry-After``).
    """
    headers = request.headers
    reason = cross_site_reason(
        headers.get("origin"), headers.get("sec-fetch-site"), headers.get("host")
    )
    if reason is not None:
        raise ApiError(403, "cross_site", f"Refused because {reason}.")
    client = request.client.host if request.client is not None else "unknown"
    throttle = runtime.sign_in_throttle
    wait = throttle.retry_after(client)
    if wait:
        log.warning("Dashboard sign-in from %s refused: too many wrong tokens", client)
        raise too_many_attempts(wait)
    if not tokens_match(body.token, runtime.admin_token_hash):
        throttle.failed(client)
        log.warning("Dashboard sign-in from %s failed: wrong admin token", client)
        await asyncio.sleep(SIGN_IN_DELAY)
        raise unauthorized(
            "That is not the admin token. It is RMA_ADMIN_TOKEN, or the admin-token file in "
            "the coordinator's data directory.",
            "bad_token",
        )
    throttle.succeeded(client)
    session_id, state = runtime.admin_sessions.start()
    log.info("Dashboard sign-in from %s", client)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(runtime.admin_sessions.max_age),
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    response.headers.update(_NO_STORE)
    return _session_view(state)


@router.get("/session", responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}})
async def current_session(
    request: Request, response: Response, runtime: RuntimeDep
) -> AdminSession:
    """The dashboard's session, if this browser is signed in (401 if not)."""
    state = dashboard_session(request, runtime)
    response.headers.update(_NO_STORE)
    return _session_view(state)


@router.delete(
    "/session",
    status_code=204,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)
async def sign_out(request: Request, runtime: RuntimeDep) -> Response:
    """Sign this browser out: the session ends here and its cookie is cleared."""
    dashboard_session(request, runtime)
    runtime.admin_sessions.end(request.cookies[SESSION_COOKIE])
    log.info("Dashboard sign-out from %s", request.client.host if request.client else "unknown")
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
