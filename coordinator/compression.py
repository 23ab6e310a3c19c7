"""Gzip for the admin pages and API, and for ``/metrics``; never for anything else.

The workers table of a pool with 1,000 machines is about 600 KB of JSON every 5 seconds
per open dashboard; gzip makes that about a tenth. Worker calls are small and the relay
passes services' answers through untouched (streams must not wait for a compressor's
buffer), so only these paths are compressed.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

COMPRESSED_PREFIXES = ("/api/admin/", "/admin", "/metrics")


class CompressAdmin:
    """Compress answers under :data:`COMPRESSED_PREFIXES` when the client accepts gzip."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024) -> None:
        self.app = app
        self._gzip = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] == "http" and scope["path"].startswith(COMPRESSED_PREFIXES):
            await self._gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
