"""The coordinator's relay against workers speaking the tunnel protocol over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from shared.tunnel import (
    POLL_PATH,
    SEND_PATH,
    SESSION_HEADER,
    TUNNEL_PATH,
    TUNNEL_STREAM,
    FrameType,
    RelayRequestHead,
    RelayResponseHead,
    TunnelHello,
    TunnelState,
    decode_frame,
    encode_frame,
    pack_frames,
    unpack_frames,
)
from tests.coordinator.protocol_worker import Handler, ProtocolWorker, Request, routable
from tests.fixtures.coordinator import LiveCoordinator, wait_until

MAX_BODY = 64 * 1024


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[LiveCoordinator]:
    catalog = tmp_path / "catalog.json"
    service = {"image": "example/web:1", "port": 8080, "tiers": [1, 2, 3]}
    services = [{"name": "web", **service}, {"name": "vault", **service, "sensitive": True}]
    catalog.write_text(json.dumps({"services": services}))
    live = LiveCoordinator(
        tmp_path / "data",
        settings_overrides={
            "catalog": catalog,
            "relay_max_body": MAX_BODY,
            "heartbeat_interval": 30,
            "placement_grace": 0,
        },
    )
    live.start()
    try:
        yield live
    finally:
        for worker in WORKERS:
            worker.close()
        WORKERS.clear()
        live.stop()


WORKERS: list[ProtocolWorker] = []


@pytest.fixture
def key(coordinator: LiveCoordinator) -> str:
    created = httpx.post(
        coordinator.url + "/api/admin/api-keys",
        json={"name": "tests"},
        headers={"Authorization": f"Bearer {coordinator.admin_token}"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def start(
    coordinator: LiveCoordinator, name: str, services: list[str], **options: Any
) -> ProtocolWorker:
    worker = ProtocolWorker(coordinator, name, services, **options).connect()
    WORKERS.append(worker)
    return worker


def call(
    coordinator: LiveCoordinator, key: str | None, method: str, path: str, **options: Any
) -> httpx.Response:
    headers = dict(options.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.request(method, coordinator.url + path, headers=headers, timeout=10, **options)


def stream(coordinator: LiveCoordinator, key: str, path: str) -> Any:
    return httpx.stream(
        "GET", coordinator.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def admin(coordinator: LiveCoordinator, path: str) -> None:
    response = httpx.post(
        coordinator.url + path, headers={"Authorization": f"Bearer {coordinator.admin_token}"}
    )
    assert response.status_code == 200, response.text


def failing(code: str, forwarded: bool) -> Handler:
    async def handler(worker: ProtocolWorker, request: Request) -> None:
        await worker.fail(request.stream, code, forwarded)

    return handler


async def vanish(worker: ProtocolWorker, request: Request) -> None:
    await worker.vanish()


# -- what passes through -------------------------------------------------------------------------


def test_method_target_headers_and_body_pass_through_and_the_key_does_not(
    coordinator: LiveCoordinator, key: str
) -> None:
    worker = start(coordinator, "one", ["web"])
    response = call(
        coordinator,
        key,
        "POST",
        "/api/service/web/v1/chat%2Fx?stream=1&q=a%20b",
        headers={"X-Test-Case": "relay", "Connection": "keep-alive, X-Private", "X-Private": "no"},
        content=b"hello body",
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["target"] == "/v1/chat%2Fx?stream=1&q=a%20b"
    assert seen["body"] == "hello body"
    names = {name.lower(): value for name, value in seen["headers"]}
    assert names["x-test-case"] == "relay"
    for private in ("authorization", "connection", "x-private", "host", "content-length"):
        assert private not in names, private
    assert response.headers["x-rma-worker"] == worker.worker_id


def test_the_service_root_and_other_methods_are_relayed(
    coordinator: LiveCoordinator, key: str
) -> None:
    start(coordinator, "one", ["web"])
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        response = call(coordinator, key, method, "/api/service/web")
        assert response.status_code == 200
        assert response.json()["method"] == method
        assert response.json()["target"] == "/"


# -- refusals ------------------------------------------------------------------------------------


def test_refusals_say_what_was_wrong(coordinator: LiveCoordinator, key: str) -> None:
    missing = call(coordinator, None, "GET", "/api/service/web/x")
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_api_key"
    assert "Authorization: Bearer" in missing.json()["detail"]
    bad = call(coordinator, "rma_not-a-key", "GET", "/api/service/web/x")
    assert (bad.status_code, bad.json()["code"]) == (401, "bad_api_key")

    unknown = call(coordinator, key, "GET", "/api/service/nope/x")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_service")
    assert "vault, web" in unknown.json()["detail"]

    big = call(coordinator, key, "POST", "/api/service/web/x", content=b"x" * (MAX_BODY + 1))
    assert (big.status_code, big.json()["code"]) == (413, "too_large")
    assert str(MAX_BODY) in big.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"y" * 1024

    chunked = call(coordinator, key, "POST", "/api/service/web/x", content=chunks())
    assert (chunked.status_code, chunked.json()["code"]) == (413, "too_large")

    nobody = call(coordinator, key, "GET", "/api/service/web/x")
    assert (nobody.status_code, nobody.json()["code"]) == (503, "no_worker")
    assert int(nobody.headers["retry-after"]) >= 1
    assert "web" in nobody.json()["detail"]


def test_a_revoked_key_is_refused_at_once(coordinator: LiveCoordinator, key: str) -> None:
    start(coordinator, "one", ["web"])
    assert call(coordinator, key, "GET", "/api/service/web/x").status_code == 200
    auth = {"Authorization": f"Bearer {coordinator.admin_token}"}
    (listed,) = httpx.get(coordinator.url + "/api/admin/api-keys", headers=auth).json()["keys"]
    revoked = httpx.delete(coordinator.url + f"/api/admin/api-keys/{listed['id']}", headers=auth)
    assert revoked.status_code == 200
    refused = call(coordinator, key, "GET", "/api/service/web/x")
    assert (refused.status_code, refused.json()["code"]) == (401, "bad_api_key")


# -- balancing -----------------------------------------------------------------------------------


def test_requests_spread_across_idle_workers(coordinator: LiveCoordinator, key: str) -> None:
    one = start(coordinator, "one", ["web"])
    two = start(coordinator, "two", ["web"])
    answered = [
        call(coordinator, key, "GET", "/api/service/web/x").headers["x-rma-worker"]
        for _ in range(10)
    ]
    assert answered.count(one.worker_id) == 5
    assert answered.count(two.worker_id) == 5


def test_the_worker_with_the_fewest_outstanding_requests_gets_the_next(
    coordinator: LiveCoordinator, key: str
) -> None:
    release = threading.Event()

    async def hold_some(worker: ProtocolWorker, request: Request) -> None:
        if request.head.target == "/held":
            await asyncio.to_thread(release.wait, 10)
        await worker.answer(request.stream, 200, b"{}")

    workers = [start(coordinator, name, ["web"], handler=hold_some) for name in ("a", "b")]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(call, coordinator, key, "GET", "/api/service/web/held")
        wait_until(lambda: any(w.received for w in workers), 5, "the held request")
        (busy,) = [w for w in workers if w.received]
        (idle,) = [w for w in workers if w is not busy]
        # While one worker holds a request, every next one goes to the other.
        answers = [call(coordinator, key, "GET", "/api/service/web/x") for _ in range(3)]
        assert {a.headers["x-rma-worker"] for a in answers} == {idle.worker_id}
        release.set()
        assert held.result(10).status_code == 200


# -- failures ------------------------------------------------------------------------------------


def test_a_request_that_never_reached_the_service_is_retried_and_the_worker_banned(
    coordinator: LiveCoordinator, key: str
) -> None:
    broken = start(coordinator, "broken", ["web"], handler=failing("unreachable", False))
    good = start(coordinator, "good", ["web"])
    for _ in range(4):
        response = call(coordinator, key, "POST", "/api/service/web/x", content=b"once")
        assert response.status_code == 200
        assert response.headers["x-rma-worker"] == good.worker_id
    # Banned after its first failure: it saw one request, not one in two.
    assert len(broken.received) == 1


def test_a_forwarded_failure_is_retried_only_for_idempotent_requests(
    coordinator: LiveCoordinator, key: str
) -> None:
    start(coordinator, "broken", ["web"], handler=failing("failed", True))
    post = call(coordinator, key, "POST", "/api/service/web/x", content=b"pay")
    assert (post.status_code, post.json()["code"]) == (502, "worker_failed")
    assert "not sent again" in post.json()["detail"]
    assert "could not reach the service" in post.json()["detail"]
    assert "failed on broken" not in post.json()["detail"], "the worker's words stay in its log"
    good = start(coordinator, "good", ["web"])
    get = call(coordinator, key, "GET", "/api/service/web/x")
    assert get.status_code == 200
    assert get.headers["x-rma-worker"] == good.worker_id


def test_a_worker_vanishing_with_requests_loses_only_non_idempotent_ones(
    coordinator: LiveCoordinator, key: str
) -> None:
    good = start(coordinator, "good", ["web"])
    call(coordinator, key, "GET", "/api/service/web/warm")
    # A new worker has never been picked, so it is the next pick.
    doomed = start(coordinator, "doomed", ["web"], handler=vanish)
    get = call(coordinator, key, "GET", "/api/service/web/x")
    assert len(doomed.received) == 1
    assert get.status_code == 200
    assert get.headers["x-rma-worker"] == good.worker_id

    doomed = start(coordinator, "doomed-2", ["web"], handler=vanish)
    post = call(coordinator, key, "POST", "/api/service/web/x", content=b"pay")
    assert len(doomed.received) == 1
    assert (post.status_code, post.json()["code"]) == (502, "worker_failed")
    assert "disconnected" in post.json()["detail"]


def test_a_stream_broken_off_mid_answer_ends_with_an_error(
    coordinator: LiveCoordinator, key: str
) -> None:
    async def half(worker: ProtocolWorker, request: Request) -> None:
        sse = request.head.target.startswith("/sse")
        content_type = "text/event-stream" if sse else "text/plain"
        await worker.head(request.stream, 200, [("content-type", content_type)])
        await worker.body(request.stream, b"data: first\n\n")
        await asyncio.sleep(0.2)
        await worker.vanish()

    start(coordinator, "flaky", ["web"], handler=half)
    with pytest.raises(httpx.RemoteProtocolError):
        call(coordinator, key, "GET", "/api/service/web/plain")

    start(coordinator, "flaky-2", ["web"], handler=half)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        stream(coordinator, key, "/api/service/web/sse") as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
    assert received.startswith(b"data: first\n\n")
    assert b"event: error" in received
    assert b"worker_dropped" in received


# -- streaming and flow control ------------------------------------------------------------------


def test_an_answer_streams_as_it_is_produced(coordinator: LiveCoordinator, key: str) -> None:
    second_sent = threading.Event()

    async def tokens(worker: ProtocolWorker, request: Request) -> None:
        await worker.head(request.stream, 200, [("content-type", "text/event-stream")])
        await worker.body(request.stream, b"data: one\n\n")
        await asyncio.sleep(0.5)
        second_sent.set()
        await worker.body(request.stream, b"data: two\n\n")
        await worker.end(request.stream)

    start(coordinator, "llm", ["web"], handler=tokens)
    with stream(coordinator, key, "/api/service/web/v1/completions") as response:
        assert response.headers["content-type"] == "text/event-stream"
        pieces = response.iter_raw()
        assert next(pieces) == b"data: one\n\n"
        assert not second_sent.is_set(), "the first event waited for the second"
        assert b"".join(pieces) == b"data: two\n\n"


def test_a_large_answer_flows_within_the_window(coordinator: LiveCoordinator, key: str) -> None:
    size = 5 * 1024 * 1024  # five times the window: only WINDOW frames let it finish
    piece = 64 * 1024

    async def big(worker: ProtocolWorker, request: Request) -> None:
        await worker.head(request.stream, 200, [("content-length", str(size))])
        for offset in range(0, size, piece):
            await worker.body(request.stream, bytes([offset // piece % 256]) * piece)
        await worker.end(request.stream)

    worker = start(coordinator, "big", ["web"], handler=big)
    response = call(coordinator, key, "GET", "/api/service/web/file")
    assert response.status_code == 200
    assert len(response.content) == size
    assert response.content[-1] == (size - 1) // piece % 256
    assert any(frame[0] is FrameType.WINDOW for frame in worker.frames_in)


def test_an_end_user_going_away_cancels_the_stream_on_the_worker(
    coordinator: LiveCoordinator, key: str
) -> None:
    async def endless(worker: ProtocolWorker, request: Request) -> None:
        await worker.head(request.stream, 200, [("content-type", "text/event-stream")])
        while request.stream not in worker.cancelled:
            await worker.body(request.stream, b"data: more\n\n")
            await asyncio.sleep(0.05)

    worker = start(coordinator, "endless", ["web"], handler=endless)
    with stream(coordinator, key, "/api/service/web/forever") as response:
        next(response.iter_raw())
    wait_until(lambda: worker.cancelled, 5, "the CANCEL frame")


# -- who may answer ------------------------------------------------------------------------------


def test_a_silent_tunnel_is_unroutable_within_two_seconds(
    coordinator: LiveCoordinator, key: str
) -> None:
    mute = start(coordinator, "mute", ["web"])
    routable(coordinator, key, "web", mute)
    mute.muted = True
    began = time.monotonic()
    # The request waits on the silent worker until its tunnel is dropped, then finds no one.
    response = call(coordinator, key, "GET", "/api/service/web/x")
    assert time.monotonic() - began < 2.0
    assert (response.status_code, response.json()["code"]) == (503, "no_worker")
    assert "disconnected" in response.json()["detail"]


def test_a_closed_tunnel_is_unroutable_at_once(coordinator: LiveCoordinator, key: str) -> None:
    worker = start(coordinator, "leaving", ["web"])
    routable(coordinator, key, "web", worker)
    worker.call(worker.vanish)
    began = time.monotonic()
    wait_until(
        lambda: call(coordinator, key, "GET", "/api/service/web/x").status_code == 503,
        5,
        "the closed tunnel to be dropped",
    )
    assert time.monotonic() - began < 0.5


def test_paused_workers_get_no_requests(coordinator: LiveCoordinator, key: str) -> None:
    worker = start(coordinator, "paused", ["web"])
    routable(coordinator, key, "web", worker)
    worker.call(lambda: worker.send_state(["web"], paused=True))
    wait_until(
        lambda: call(coordinator, key, "GET", "/api/service/web/x").status_code == 503,
        2,
        "the pause to reach routing",
    )
    worker.call(lambda: worker.send_state(["web"], paused=False))
    routable(coordinator, key, "web", worker)
    assert call(coordinator, key, "GET", "/api/service/web/x").status_code == 200


def test_a_worker_answers_only_services_it_says_it_runs(
    coordinator: LiveCoordinator, key: str
) -> None:
    start(coordinator, "web-only", ["web"])
    assert call(coordinator, key, "GET", "/api/service/vault/x").status_code == 503


def test_sensitive_services_reach_only_trusted_workers(
    coordinator: LiveCoordinator, key: str
) -> None:
    stranger = start(coordinator, "stranger", ["vault", "web"])
    routable(coordinator, key, "web", stranger)
    assert call(coordinator, key, "GET", "/api/service/vault/case").status_code == 503
    admin(coordinator, f"/api/admin/workers/{stranger.worker_id}/trust")
    assert call(coordinator, key, "GET", "/api/service/vault/case").status_code == 200
    admin(coordinator, f"/api/admin/workers/{stranger.worker_id}/untrust")
    assert call(coordinator, key, "GET", "/api/service/vault/case").status_code == 503
    assert [r.head.service for r in stranger.received].count("vault") == 1


def test_drained_workers_get_no_requests(coordinator: LiveCoordinator, key: str) -> None:
    worker = start(coordinator, "drained", ["web"])
    routable(coordinator, key, "web", worker)
    admin(coordinator, f"/api/admin/workers/{worker.worker_id}/drain")
    assert call(coordinator, key, "GET", "/api/service/web/x").status_code == 503
    admin(coordinator, f"/api/admin/workers/{worker.worker_id}/undrain")
    assert call(coordinator, key, "GET", "/api/service/web/x").status_code == 200


def test_a_tunnel_needs_a_worker_token(coordinator: LiveCoordinator) -> None:
    url = coordinator.url.replace("http://", "ws://") + TUNNEL_PATH
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Authorization": "Bearer nope"})
    assert refused.value.response.status_code == 401
    assert b"register again" in refused.value.response.body
    poll = httpx.post(coordinator.url + POLL_PATH)
    assert (poll.status_code, poll.json()["code"]) == (401, "missing_token")


# -- long-poll -----------------------------------------------------------------------------------


def _answer_polled(polled: bytes) -> list[bytes]:
    """Answer every request among the polled frames with a 201 naming its target."""
    replies = []
    for frame in unpack_frames(polled):
        kind, stream_id, payload = decode_frame(frame)
        if kind is FrameType.REQUEST:
            head = RelayRequestHead.model_validate_json(payload)
            answer = RelayResponseHead(status=201, headers=[("x-path", head.target)])
            replies += [
                encode_frame(FrameType.RESPONSE, stream_id, answer.model_dump_json().encode()),
                encode_frame(FrameType.RESPONSE_BODY, stream_id, b"by long-poll"),
                encode_frame(FrameType.RESPONSE_END, stream_id),
            ]
    return [*replies, encode_frame(FrameType.PING, TUNNEL_STREAM)]


def test_the_long_poll_tunnel_carries_requests(coordinator: LiveCoordinator, key: str) -> None:
    worker = ProtocolWorker(coordinator, "behind-a-proxy", []).register()
    auth = {"Authorization": f"Bearer {worker.token}"}
    opened = httpx.post(coordinator.url + POLL_PATH, headers=auth)
    assert opened.status_code == 200
    kind, _, payload = decode_frame(next(unpack_frames(opened.content)))
    hello = TunnelHello.model_validate_json(payload)
    assert kind is FrameType.HELLO and hello.session
    session = {**auth, SESSION_HEADER: hello.session}
    state = TunnelState(services=["web"]).model_dump_json().encode()
    sent = httpx.post(
        coordinator.url + SEND_PATH,
        headers=session,
        content=pack_frames([encode_frame(FrameType.STATE, TUNNEL_STREAM, state)]),
    )
    assert sent.status_code == 204

    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            polled = httpx.post(coordinator.url + POLL_PATH, headers=session, timeout=5)
            if polled.status_code != 200:
                return
            replies = pack_frames(_answer_polled(polled.content))
            httpx.post(coordinator.url + SEND_PATH, headers=session, content=replies)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        response = call(coordinator, key, "GET", "/api/service/web/over/poll?x=1")
        assert response.status_code == 201
        assert response.content == b"by long-poll"
        assert response.headers["x-path"] == "/over/poll?x=1"
        assert response.headers["x-rma-worker"] == worker.worker_id
    finally:
        stop.set()
        server.join(5)
    # Without polls the session is dropped: the worker is unroutable, the session gone.
    wait_until(
        lambda: call(coordinator, key, "GET", "/api/service/web/x").status_code == 503,
        3,
        "the silent long-poll tunnel to be dropped",
    )
    gone = httpx.post(coordinator.url + POLL_PATH, headers=session)
    assert (gone.status_code, gone.json()["code"]) == (410, "tunnel_closed")


# -- log and metrics ------------------------------------------------------------------------------


def test_every_request_is_logged_and_counted_without_its_body(
    coordinator: LiveCoordinator, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    worker = start(coordinator, "counted", ["web"])
    with caplog.at_level(logging.INFO, logger="coordinator.relay.access"):
        call(coordinator, key, "POST", "/api/service/web/form?name=secret", content=b"private")
        call(coordinator, None, "GET", "/api/service/web/x")
    lines = [r.getMessage() for r in caplog.records if r.name == "coordinator.relay.access"]
    assert any("POST web /form -> 200" in line and worker.worker_id in line for line in lines)
    assert any("GET web /x -> 401 missing_api_key" in line for line in lines), lines
    assert not any("private" in line or "secret" in line for line in lines)

    auth = {"Authorization": f"Bearer {coordinator.admin_token}"}
    page = httpx.get(coordinator.url + "/metrics", headers=auth)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert 'rma_relay_requests_total{service="web",status="200",outcome="ok"} 1' in text
    refused = 'rma_relay_requests_total{service="web",status="401",outcome="missing_api_key"} 1'
    assert refused in text
    assert 'rma_relay_request_duration_seconds_count{service="web"} 1' in text
    assert 'rma_tunnels_open{transport="websocket"} 1' in text
    assert httpx.get(coordinator.url + "/metrics").status_code == 401


def test_the_relay_is_in_the_openapi_schema(coordinator: LiveCoordinator) -> None:
    schema = httpx.get(coordinator.url + "/openapi.json").json()
    operations = schema["paths"]["/api/service/{service}/{path}"]
    assert {"get", "post", "put", "patch", "delete"} <= operations.keys()
    assert set(operations["post"]["responses"]) >= {"401", "404", "413", "502", "503"}
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_headers_too_large_to_relay_are_refused(coordinator: LiveCoordinator, key: str) -> None:
    start(coordinator, "one", ["web"])
    big = call(coordinator, key, "GET", "/api/service/web/x", headers={"X-Big": "v" * 20_000})
    assert (big.status_code, big.json()["code"]) == (431, "headers_too_large")
    many = {f"X-Part-{n}": "v" * 15_000 for n in range(6)}
    too_many = call(coordinator, key, "GET", "/api/service/web/x", headers=many)
    assert (too_many.status_code, too_many.json()["code"]) == (431, "headers_too_large")
    # The worker's tunnel is untouched.
    assert call(coordinator, key, "GET", "/api/service/web/x").status_code == 200


def test_the_service_and_target_are_read_as_written(coordinator: LiveCoordinator, key: str) -> None:
    worker = start(coordinator, "one", ["web"])
    encoded = call(coordinator, key, "GET", "/api/service/web%2Fecho")
    assert (encoded.status_code, encoded.json()["code"]) == (404, "unknown_service")
    assert call(coordinator, key, "GET", "/api/service/w%65b/v1/models").status_code == 404
    answered = call(coordinator, key, "GET", "/api/service/web/v1/models")
    assert answered.json()["target"] == "/v1/models"
    assert len(worker.received) == 1  # nothing else reached it, and it was not banned


def test_an_early_answer_stops_a_large_upload(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    web = {"name": "web", "image": "example/web:1", "port": 8080, "tiers": [1, 2, 3]}
    catalog.write_text(json.dumps({"services": [web]}))
    live = LiveCoordinator(
        tmp_path / "data",
        settings_overrides={"catalog": catalog, "relay_max_body": 8 * 1024 * 1024},
    )
    live.start()

    async def refuse_at_once(worker: ProtocolWorker, request: Request) -> None:
        await worker.answer(request.stream, 405, b"{}")

    worker = ProtocolWorker(live, "refuser", ["web"], early=refuse_at_once)
    try:
        worker.connect()
        created = httpx.post(
            live.url + "/api/admin/api-keys",
            json={"name": "t"},
            headers={"Authorization": f"Bearer {live.admin_token}"},
        )
        key = created.json()["key"]
        # 3 MiB: three times the window, and this worker never grants more credit.
        response = call(live, key, "POST", "/api/service/web/upload", content=b"u" * 3 * 2**20)
        assert response.status_code == 405
    finally:
        worker.close()
        live.stop()
