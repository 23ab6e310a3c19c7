"""Errors the API answers with: a status, a stable code and a sentence for people."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import ErrorResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the coordinator refuses, with the reason in plain words."""

    def __init__(
        self, status_code: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.headers = headers


def unauthorized(detail: str, code: str = "unauthorized") -> ApiError:
    """A 401 that tells the client to send a bearer token."""
    return ApiError(401, code, detail, {"WWW-Authenticate": "Bearer"})


_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
"""Codes for the refusals the framework raises itself (unknown path, wrong method, ...)."""


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """Turn pydantic's error list into one sentence naming each bad field."""
    parts = []
    for error in errors[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = error.get("msg", "is invalid")
        parts.append(f"{location}: {message}" if location else message)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request — " + "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal with an :class:`shared.ErrorResponse` body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        body = ErrorResponse(detail=exc.detail, code=exc.code).model_dump()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = ErrorResponse(
            detail=str(exc.detail), code=_HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        ).model_dump()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        body = {
            "detail": describe_validation_errors(errors),
            "code": "invalid_request",
            # ``input`` may echo secrets or huge payloads back; the location and message
            # are what a client needs.
            "errors": [
                {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                for e in errors
            ],
        }
        return JSONResponse(body, status_code=422)
