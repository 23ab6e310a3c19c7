"""Serve the dashboard's page and its static files, with headers that lock the page down."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Response

from coordinator.errors import ApiError

STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""Every file the dashboard serves, with its media type; any other name is a 404, so no
request can reach a file outside ``static/``."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""No inline script or style and nothing from other origins: text from the API that slipped
into the page as markup could still not run."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Cached copies are revalidated on every load (ETag), so a new release shows at once.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class StaticFile:
    """One file of the dashboard, read into memory."""

    body: bytes
    media_type: str
    etag: str


@functools.cache
def static_file(name: str) -> StaticFile:
    """Read one allow-listed file the first time it is asked for.

    The files never change while the coordinator runs, so each is read once.

    Raises:
        KeyError: ``name`` is not in :data:`STATIC_FILES`.
    """
    media_type = STATIC_FILES[name]
    body = resources.files("coordinator.dashboard").joinpath("static", name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return StaticFile(body=body, media_type=media_type, etag=etag)


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return etag in candidates or "*" in candidates


def _serve(name: str, if_none_match: str | None) -> Response:
    file = static_file(name)
    headers = {**SECURITY_HEADERS, "ETag": file.etag}
    if _etag_matches(if_none_match, file.etag):
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


IfNoneMatch = Annotated[str | None, Header()]

router = APIRouter(include_in_schema=False)


@router.api_route("/admin", methods=["GET", "HEAD"])
@router.api_route("/admin/", methods=["GET", "HEAD"])
async def dashboard_page(if_none_match: IfNoneMatch = None) -> Response:
    """The dashboard's page; it signs in and loads everything else itself."""
    return _serve("index.html", if_none_match)


@router.api_route("/admin/static/{name}", methods=["GET", "HEAD"])
async def dashboard_static(name: str, if_none_match: IfNoneMatch = None) -> Response:
    """One of the dashboard's files, by its name in :data:`STATIC_FILES`."""
    if name not in STATIC_FILES:
        raise ApiError(404, "not_found", "There is no such file in the dashboard.")
    return _serve(name, if_none_match)
