"""``/api/service/{service}/{path}``: an end user's request, relayed to a worker and back.

A plain ASGI app, not a FastAPI route: it streams the answer as the worker produces it
(server-sent events, chunked bodies), watches for the end user going away, and ends a
stream whose worker dropped with an error the client can see, none of which a route
returning a response object can do. Its refusals are the API's usual JSON errors, and
``RELAY_OPENAPI`` documents it.

The request's way:

1. The client API key (``Authorization: Bearer``): 401 without a valid one.
2. The service must be in the catalogue: 404 otherwise.
3. The body is read, up to the relay's limit: 413 beyond it. It is kept until the answer
   starts, so the request can be sent again.
4. A worker is picked (``TunnelHub.pick``): 503 with ``Retry-After`` when none can answer.
5. If the worker fails before the first byte of the answer, the request goes to another
   worker: any request when the worker says it never reached the service, an idempotent
   one (GET, PUT, DELETE, ...) also when the worker vanished with it. A failed worker is
   banned for a while (``BanPolicy``).
6. The answer streams back within the flow-control window. When the worker drops
   mid-answer, the end user's response ends without its proper end (chunked: no last
   chunk, so clients report an incomplete body) and an event stream gets a final
   ``event: error`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator.relay.hub import TunnelHub
from coordinator.relay.metrics import RelayMetrics
from coordinator.relay.tunnels import (
    Body,
    ClientLeft,
    Dropped,
    End,
    Failed,
    Head,
    RelayStream,
    StreamEvent,
    TunnelGone,
)
from coordinator.security import bearer_token
from shared import ErrorResponse, ServiceCatalog
from shared.tunnel import (
    HOP_BY_HOP_HEADERS,
    IDEMPOTENT_METHODS,
    MAX_HEAD_BYTES,
    MAX_HEADER_VALUE,
    RelayRequestHead,
    connection_headers,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("coordinator.relay.access")

SERVICE_PREFIX = "/api/service/"
DROPPED_REQUEST_HEADERS = HOP_BY_HOP_HEADERS | {"host", "authorization", "content-length"}
"""Not passed to the service: the connection's own headers, the client's API key (it is the
pool's secret, not the volunteer's) and the length (the worker frames the body itself)."""
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP_HEADERS | {"date", "server"}
"""Not passed back: the connection's own headers, and those the coordinator's server sets."""
CLIENT_LEFT = ClientLeft()
WORKER_HEADER = b"x-rma-worker"
"""Names the worker that answered, for operators following a request through the logs."""


@dataclass(frozen=True)
class RelayLimits:
    """How much the relay takes and how long it waits."""

    max_body: int = 32 * 1024 * 1024
    """The largest request body, in bytes (scans of letters and statements are big)."""
    attempts: int = 3
    """Workers tried for one request before the relay gives up."""
    head_timeout: float = 300.0
    """Seconds a worker may take to start answering (a language model thinks first)."""


@dataclass
class Relay:
    """What the relay endpoint needs: the tunnels, the catalogue, the keys, the figures."""

    hub: TunnelHub
    catalog: ServiceCatalog
    identify_key: Callable[[str], str | None]
    """A client API key's id when it is valid (``ApiKeyStore.identify``)."""
    metrics: RelayMetrics
    limits: RelayLimits = RelayLimits()
    sessions: Any = None
    """The long-poll sessions (``coordinator.relay.transports.PollSessions``)."""
    sensitive_services: dict[str, bool] = field(default_factory=dict)
    """Every service of the catalogue, and whether it is sensitive."""

    def __post_init__(self) -> None:
        self.sensitive_services = {spec.name: spec.sensitive for spec in self.catalog.services}


class _Refusal(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = list(headers)


class _ClientGone(Exception):
    """The end user disconnected."""


async def _refuse(send: Send, refusal: _Refusal) -> None:
    body = ErrorResponse(detail=refusal.detail, code=refusal.code).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *refusal.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _split_target(scope: Scope) -> tuple[str, str]:
    """The service's name and the target inside it, both as the client wrote them.

    Both come from the raw path, so ``/api/service/web%2Fx`` names a service ``web%2Fx``
    (there is none) rather than ``web`` with a target that is not a path.
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    prefix = SERVICE_PREFIX.encode()
    rest = raw[raw.find(prefix) + len(prefix) :]
    service, slash, inside = rest.partition(b"/")
    target = (slash + inside).decode("latin-1") or "/"
    query: bytes = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    return service.decode("latin-1"), target


def _request_headers(raw: list[tuple[bytes, bytes]]) -> tuple[list[tuple[str, str]], str | None]:
    """The headers passed to the service, and the API key presented."""
    decoded = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
    dropped = connection_headers(decoded) | DROPPED_REQUEST_HEADERS
    passed = [(name, value) for name, value in decoded if name not in dropped]
    authorization = next((value for name, value in decoded if name == "authorization"), None)
    return passed, authorization


async def _read_body(receive: Receive, raw_headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    too_large = _Refusal(
        413,
        "too_large",
        f"The request body is larger than the relay takes ({limit} bytes); send a smaller one.",
    )
    for name, value in raw_headers:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _encode_head(
    service: str, method: str, target: str, headers: list[tuple[str, str]], body_length: int
) -> bytes:
    """The ``REQUEST`` frame's payload, or a 431 when the headers do not fit in one."""
    too_large = _Refusal(
        431,
        "headers_too_large",
        f"The request's headers are too large to relay: at most {MAX_HEAD_BYTES // 1024} KiB "
        f"in all, {MAX_HEADER_VALUE // 1024} KiB for one value.",
    )
    try:
        head = RelayRequestHead(
            service=service, method=method, target=target, headers=headers, body_length=body_length
        )
    except ValidationError:
        raise too_large from None
    encoded = head.model_dump_json().encode()
    if len(encoded) > MAX_HEAD_BYTES:
        raise too_large
    return encoded


class _DisconnectWatch:
    """Notices the end user going away while the relay waits for or streams an answer."""

    def __init__(self, receive: Receive) -> None:
        self.stream: RelayStream | None = None
        """The stream to cancel when the end user goes (the current attempt's)."""
        self.gone = False
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        self.gone = True
        stream = self.stream
        if stream is not None and not stream.closed:
            stream.deliver(CLIENT_LEFT)
            await stream.cancel()

    def stop(self) -> None:
        """The request is over: stop watching."""
        self._task.cancel()


@dataclass
class _Outcome:
    """What happened to one relayed request, for the log and the metrics."""

    status: int = 0
    worker: str = "-"
    attempts: int = 0
    bytes_out: int = 0
    result: str = "ok"


class RelayEndpoint:
    """The ASGI app behind ``/api/service/{service}/{path}``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay one request; log it and count it."""
        relay: Relay = scope["app"].state.runtime.relay
        started = time.perf_counter()
        outcome = _Outcome()
        service, target = _split_target(scope)
        method: str = scope["method"]
        try:
            await self._relay(relay, scope, receive, send, service, target, outcome)
        except _Refusal as refusal:
            outcome.status = refusal.status
            outcome.result = refusal.code
            await _refuse(send, refusal)
        except _ClientGone:
            outcome.status = 499
            outcome.result = "client_gone"
        duration = time.perf_counter() - started
        known = service if service in relay.sensitive_services else "-"
        relay.metrics.finished(known, outcome.status, outcome.result, duration, outcome.attempts)
        access_log.info(
            "%s %s %s -> %d %s worker=%s attempts=%d %.1f ms %d bytes",
            method,
            service,
            target.split("?", 1)[0],
            outcome.status,
            outcome.result,
            outcome.worker,
            outcome.attempts,
            duration * 1000,
            outcome.bytes_out,
        )

    async def _relay(
        self,
        relay: Relay,
        scope: Scope,
        receive: Receive,
        send: Send,
        service: str,
        target: str,
        outcome: _Outcome,
    ) -> None:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        headers, authorization = _request_headers(raw_headers)
        key = bearer_token(authorization)
        if key is None:
            raise _Refusal(
                401,
                "missing_api_key",
                "The pool's services need a client API key: send "
                "'Authorization: Bearer <key>' with a key an admin created for you.",
                [(b"www-authenticate", b"Bearer")],
            )
        if relay.identify_key(key) is None:
            raise _Refusal(
                401,
                "bad_api_key",
                "This API key is not valid: it was revoked, or it is mistyped.",
                [(b"www-authenticate", b"Bearer")],
            )
        sensitive = relay.sensitive_services.get(service)
        if sensitive is None:
            names = ", ".join(sorted(relay.sensitive_services)) or "none"
            raise _Refusal(
                404,
                "unknown_service",
                f"The pool has no service '{service}'. Its services: {names}.",
            )
        method: str = scope["method"]
        body = await _read_body(receive, raw_headers, relay.limits.max_body)
        encoded_head = _encode_head(service, method, target, headers, len(body))
        watch = _DisconnectWatch(receive)
        try:
            answer = await self._first_answer(
                relay, service, sensitive, method, encoded_head, body, outcome, watch
            )
            await self._stream_answer(relay, service, answer, send, outcome, watch)
        finally:
            watch.stop()

    async def _first_answer(
        self,
        relay: Relay,
        service: str,
        sensitive: bool,
        method: str,
        head: bytes,
        body: bytes,
        outcome: _Outcome,
        watch: _DisconnectWatch,
    ) -> tuple[RelayStream, Head]:
        hub = relay.hub
        tried: set[str] = set()
        last_problem = ""
        while True:
            if watch.gone:
                raise _ClientGone
            tunnel = hub.pick(service, sensitive=sensitive, exclude=tried)
            if tunnel is None:
                break
            outcome.attempts += 1
            outcome.worker = tunnel.worker_id
            tried.add(tunnel.worker_id)
            stream = tunnel.open_stream()
            watch.stream = stream
            event = await self._first_event(relay, stream, head, body)
            if isinstance(event, Head):
                hub.succeeded(tunnel.worker_id)
                return stream, event
            stream.finish()
            if isinstance(event, ClientLeft):
                raise _ClientGone
            if isinstance(event, Failed) and event.failure.code == "protocol":
                # The worker could not use what the coordinator sent: not its fault.
                raise _Refusal(
                    502,
                    "unusable_request",
                    f"The request could not be passed to '{service}': {event.failure.message}.",
                )
            if isinstance(event, Failed):
                failure = event.failure
                retry = not failure.forwarded or method in IDEMPOTENT_METHODS
                if failure.code not in {"not_running", "paused"}:
                    hub.failed(tunnel.worker_id)
                relay.metrics.worker_failed(service, failure.code)
                last_problem = "its worker could not reach the service"
                log.info(
                    "Worker %s failed a %s request: %s", tunnel.worker_id, service, failure.message
                )
            else:
                if not isinstance(event, Dropped):  # a body before the head
                    tunnel.close("it sent a response body before its head")
                    event = Dropped("it broke the tunnel protocol")
                retry = method in IDEMPOTENT_METHODS
                hub.failed(tunnel.worker_id)
                relay.metrics.worker_failed(service, "dropped")
                last_problem = f"its worker disconnected ({event.reason})"
            if not retry:
                raise _Refusal(
                    502,
                    "worker_failed",
                    f"The request to '{service}' failed: {last_problem}. It was not sent "
                    f"again because {method} requests may not be repeated safely.",
                )
            if outcome.attempts >= relay.limits.attempts:
                break
            relay.metrics.retried(service)
        outcome.worker = "-"
        retry_after = hub.retry_after(service)
        if last_problem:
            raise _Refusal(
                503,
                "no_worker",
                f"No worker could answer '{service}': {last_problem}. "
                f"Try again in {retry_after} s.",
                [(b"retry-after", str(retry_after).encode())],
            )
        raise _Refusal(
            503,
            "no_worker",
            f"No worker is running '{service}' right now (the pool starts it on volunteers' "
            f"computers as they are free). Try again in {retry_after} s.",
            [(b"retry-after", str(retry_after).encode())],
        )

    async def _first_event(
        self, relay: Relay, stream: RelayStream, head: bytes, body: bytes
    ) -> StreamEvent:
        """Send the request and wait for what the worker says first.

        The body goes alongside the wait when it is larger than the window: the worker may
        answer (or fail) before it has read it all.
        """
        sending: asyncio.Future[None] | None = None
        try:
            async with asyncio.timeout(relay.limits.head_timeout):
                if len(body) <= relay.hub.timing.window:
                    await stream.send_request(head, body)
                else:
                    sending = asyncio.ensure_future(stream.send_request(head, body))
                return await stream.events.get()
        except TunnelGone as exc:
            return Dropped(str(exc))
        except TimeoutError:
            await stream.cancel()
            relay.hub.failed(stream.tunnel.worker_id)
            raise _Refusal(
                504,
                "worker_timeout",
                f"The worker did not start answering within {relay.limits.head_timeout:g} s.",
            ) from None
        finally:
            if sending is not None:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, TunnelGone):
                    await sending

    async def _stream_answer(
        self,
        relay: Relay,
        service: str,
        answer: tuple[RelayStream, Head],
        send: Send,
        outcome: _Outcome,
        watch: _DisconnectWatch,
    ) -> None:
        stream, first = answer
        head = first.head
        # The agent sends header bytes as Latin-1; anything else from a worker is replaced.
        headers = [
            (name.lower().encode("latin-1", "replace"), value.encode("latin-1", "replace"))
            for name, value in head.headers
            if name.lower() not in DROPPED_RESPONSE_HEADERS
        ]
        headers.append((WORKER_HEADER, stream.tunnel.worker_id.encode()))
        event_stream = any(
            name == b"content-type" and value.startswith(b"text/event-stream")
            for name, value in headers
        )
        outcome.status = head.status
        try:
            await send({"type": "http.response.start", "status": head.status, "headers": headers})
            while True:
                event = await stream.events.get()
                if isinstance(event, Body):
                    await send(
                        {"type": "http.response.body", "body": event.data, "more_body": True}
                    )
                    outcome.bytes_out += len(event.data)
                    await stream.passed_on(len(event.data))
                elif isinstance(event, End):
                    stream.finish()
                    await send({"type": "http.response.body", "body": b""})
                    return
                elif isinstance(event, ClientLeft):
                    outcome.result = "client_gone"
                    return
                else:
                    stream.finish()
                    relay.hub.failed(stream.tunnel.worker_id)
                    if isinstance(event, Failed):
                        reason = event.failure.message
                    elif isinstance(event, Dropped):
                        reason = event.reason
                    else:
                        reason = "it sent a second response head"
                    relay.metrics.worker_failed(service, "mid_stream")
                    outcome.result = "broken_off"
                    log.warning(
                        "Worker %s broke off an answer after %d bytes: %s",
                        stream.tunnel.worker_id,
                        outcome.bytes_out,
                        reason,
                    )
                    if event_stream:
                        message = ErrorResponse(
                            detail=f"The worker answering this stream disconnected ({reason}).",
                            code="worker_dropped",
                        ).model_dump_json()
                        await send(
                            {
                                "type": "http.response.body",
                                "body": f"event: error\ndata: {message}\n\n".encode(),
                                "more_body": True,
                            }
                        )
                    # Returning without the last body message makes the server close the
                    # connection mid-response: the client sees the body is incomplete.
                    return
        finally:
            if not stream.closed:
                await stream.cancel()


class RelayShortcut:
    """Middleware: ``/api/service/…`` goes straight to the relay, past the framework's layers.

    Routing, dependency and exception layers cost more per request than the relay's own
    work (bench/relay.py); the relay answers every refusal itself, and the server's error
    middleware, outside this one, still turns a crash into a logged 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.relay = RelayEndpoint()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay ``/api/service/`` requests; pass everything else on."""
        if scope["type"] == "http" and scope["path"].startswith(SERVICE_PREFIX):
            await self.relay(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _error_reply(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(method: str) -> dict[str, Any]:
    return {
        "tags": ["relay"],
        "summary": "Call a service of the pool",
        "description": (
            "Relays the request, with its headers, query and body, to a volunteer's worker "
            "running the service, and streams its answer back as it is produced (chunked "
            "and server-sent events included). Send a client API key as "
            "'Authorization: Bearer <key>'; it is not passed to the service. The answer's "
            "'X-RMA-Worker' header names the worker that answered."
        ),
        "operationId": f"relay_{method}",
        "security": [{"ApiKey": []}],
        "parameters": [
            {"name": "service", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "The service's own answer, whatever its status"},
            "401": _error_reply("No API key, or not a valid one"),
            "404": _error_reply("The pool has no such service"),
            "413": _error_reply("The request body is larger than the relay takes"),
            "502": _error_reply("The worker failed, and the request could not be repeated"),
            "503": _error_reply("No worker can answer now; see Retry-After"),
            "504": _error_reply("The worker did not start answering in time"),
        },
    }


RELAY_OPENAPI: dict[str, Any] = {
    method: _operation(method) for method in ("get", "post", "put", "patch", "delete", "head")
}
"""The OpenAPI operations of the relay, which FastAPI cannot see (:class:`RelayShortcut`)."""
