"""The agent's side of the worker API, over HTTP with httpx."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from shared import (
    HeartbeatRequest,
    HeartbeatResponse,
    RegisterRequest,
    RegisterResponse,
    UnregisterResponse,
)

ResponseT = TypeVar("ResponseT", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class CoordinatorUnreachable(Exception):
    """The coordinator could not be reached or failed (network error, 5xx): retry later."""


class CoordinatorRefused(Exception):
    """The coordinator answered with a 4xx: retrying the same request will not help."""

    def __init__(self, status_code: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail


class CoordinatorClient:
    """Register, heartbeat and unregister against one coordinator."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http

    async def register(self, request: RegisterRequest, token: str | None) -> RegisterResponse:
        """Join (or re-join with ``token``)."""
        return await self._call(
            "POST", "/api/worker/register", RegisterResponse, request, token=token
        )

    async def heartbeat(self, request: HeartbeatRequest, token: str) -> HeartbeatResponse:
        """Say the worker is alive."""
        return await self._call(
            "POST", "/api/worker/heartbeat", HeartbeatResponse, request, token=token
        )

    async def unregister(self, worker_id: str, token: str) -> UnregisterResponse:
        """Leave the pool."""
        return await self._call(
            "DELETE", f"/api/worker/unregister/{worker_id}", UnregisterResponse, token=token
        )

    async def _call(
        self,
        method: str,
        path: str,
        response_model: type[ResponseT],
        body: BaseModel | None = None,
        *,
        token: str | None,
    ) -> ResponseT:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = body.model_dump_json(exclude_none=True) if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, self.base_url + path, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise CoordinatorUnreachable(
                f"Cannot reach the coordinator at {self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code >= 500:
            raise CoordinatorUnreachable(
                f"The coordinator at {self.base_url} failed ({response.status_code})"
            )
        if response.status_code >= 400:
            code, detail = _error_of(response)
            raise CoordinatorRefused(response.status_code, code, detail)
        try:
            return response_model.model_validate_json(response.content)
        except ValidationError as exc:
            raise CoordinatorUnreachable(
                f"The coordinator at {self.base_url} sent an answer this agent cannot read "
                f"({path}): {exc.error_count()} problems"
            ) from exc


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "http_" + str(response.status_code), response.text[:300]
    if isinstance(body, dict):
        detail = body.get("detail")
        return str(body.get("code", f"http_{response.status_code}")), str(detail)
    return "http_" + str(response.status_code), str(body)[:300]
