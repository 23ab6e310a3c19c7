"""The worker's end of the relay tunnel against a coordinator stand-in and a real container
server: requests and answers pass through unchanged, streams stream, credit is respected,
and the tunnel survives a coordinator that hangs or a network that blocks WebSockets."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from desktop_app.agent.identity import WorkerIdentity
from desktop_app.agent.relay import RelayTunnel, TransportMode
from shared.tunnel import (
    HOP_BY_HOP_HEADERS,
    MAX_BODY_CHUNK,
    FrameType,
    encode_frame,
    encode_window,
)
from tests.agent.relay.standin import (
    WORKER_ID,
    Container,
    CoordinatorStandIn,
    LocalServices,
    PeerTunnel,
    TunnelThread,
    big_body,
    echoed,
    serving,
)
from tests.fixtures.coordinator import free_port, wait_until

StartTunnel = Callable[..., tuple[PeerTunnel, TunnelThread]]


@pytest.fixture(scope="module")
def served_container() -> Iterator[Container]:
    with serving(Container()) as container:
        yield container


@pytest.fixture
def container(served_container: Container) -> Container:
    served_container.release.clear()
    served_container.disconnects = 0
    return served_container


@pytest.fixture
def start_tunnel(container: Container) -> Iterator[StartTunnel]:
    """Start a coordinator stand-in and a worker's tunnel to it; both stop after the test."""
    running: list[tuple[CoordinatorStandIn, TunnelThread]] = []

    def start(
        mode: TransportMode = "auto", services: Any = None, **standin: Any
    ) -> tuple[PeerTunnel, TunnelThread]:
        coordinator = CoordinatorStandIn(**standin).start()
        runtime = LocalServices(
            services
            if services is not None
            else {"web": container.url, "gone": f"http://127.0.0.1:{free_port()}"}
        )
        tunnel = RelayTunnel(
            coordinator.identity, runtime.local_url, mode=mode, initial_retry_delay=0.2
        )
        tunnel.update(["web"], paused=False)
        thread = TunnelThread(tunnel).start()
        running.append((coordinator, thread))
        return coordinator.tunnel(), thread

    yield start
    for coordinator, thread in running:
        container.release.set()
        thread.stop()
        coordinator.stop()


@pytest.mark.parametrize("mode", ["websocket", "long-poll"])
def test_get_passes_through_with_headers_and_query(
    start_tunnel: StartTunnel, container: Container, mode: TransportMode
) -> None:
    peer, _ = start_tunnel(mode)
    assert peer.transport == mode
    peer.wait_for(peer.states, "a STATE")
    assert [(s.services, s.paused) for s in peer.states()] == [(["web"], False)]

    peer.request(
        1,
        "GET",
        "/echo?x=1&name=J%C3%BCrgen",
        headers=[
            ("Accept", "text/plain"),
            ("X-Custom", "caf\u00e9"),
            ("Connection", "X-Drop-Me"),
            ("X-Drop-Me", "hop"),
            ("Keep-Alive", "timeout=5"),
            ("Host", "pool.example"),
        ],
    )
    answer = peer.answer(1)

    assert answer.failure is None and answer.head is not None
    assert answer.head.status == 200
    names = [name.lower() for name, _ in answer.head.headers]
    assert "x-container" in names and "set-cookie" in names
    assert not set(names) & HOP_BY_HOP_HEADERS
    seen = echoed(answer)
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/echo", "x=1&name=J%C3%BCrgen")
    headers = {name: value for name, value in seen["headers"]}
    # Only the end user's headers, and Host naming the container; none of httpx's own.
    assert headers == {
        "host": container.url.removeprefix("http://"),
        "accept": "text/plain",
        "x-custom": "caf\u00e9",
    }
    if mode == "long-poll":
        assert peer.most_polls_outstanding == 1


@pytest.mark.parametrize("mode", ["websocket", "long-poll"])
def test_post_body_passes_through_and_credit_comes_back(
    start_tunnel: StartTunnel, mode: TransportMode
) -> None:
    peer, _ = start_tunnel(mode)
    body = big_body(3 * MAX_BODY_CHUNK + 1000)
    peer.request(7, "POST", "/echo", headers=[("Content-Type", "application/x-test")], body=body)
    answer = peer.answer(7)

    assert answer.head is not None and answer.head.status == 200
    seen = echoed(answer)
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    headers = dict(seen["headers"])
    assert headers["content-length"] == str(len(body)) and "transfer-encoding" not in headers
    # Credit for every piece passed on, except the last (nothing more would use it).
    assert peer.windows(7) == [MAX_BODY_CHUNK] * 3


def test_a_streamed_response_arrives_chunk_by_chunk(
    start_tunnel: StartTunnel, container: Container
) -> None:
    peer, _ = start_tunnel()
    peer.request(3, "GET", "/stream")
    peer.wait_for(lambda: peer.answer_so_far(3).body == b"first chunk;", "the first chunk")
    assert not peer.answer_so_far(3).ended
    container.release.set()  # only now does the container write the second chunk
    answer = peer.answer(3)
    assert answer.body == b"first chunk;second chunk"
    assert answer.head is not None and answer.head.status == 200


def test_sends_no_more_than_the_credit(start_tunnel: StartTunnel) -> None:
    peer, _ = start_tunnel(initial_window=1000, auto_window=False)
    peer.request(5, "GET", "/big?size=5000")
    peer.wait_for(lambda: peer.body_received(5) == 1000, "the initial window's bytes")
    peer.send(encode_window(5, 1500))
    peer.wait_for(lambda: peer.body_received(5) == 2500, "the granted bytes")
    # Nothing beyond the credit: the next bytes only come with the next WINDOW.
    assert not peer.answer_so_far(5).ended and peer.body_received(5) == 2500
    peer.send(encode_window(5, 2500))
    answer = peer.answer(5)
    assert answer.body == big_body(5000)
    assert [len(f.payload) for f in peer.frames(FrameType.RESPONSE_BODY, 5)] == [1000, 1500, 2500]


def test_cancel_stops_the_stream_and_closes_the_upstream_response(
    start_tunnel: StartTunnel, container: Container
) -> None:
    peer, thread = start_tunnel()
    peer.request(9, "GET", "/slow")
    peer.wait_for(lambda: peer.answer_so_far(9).body == b"started;", "the stream to start")
    assert thread.tunnel.in_flight() == 1

    peer.send(encode_frame(FrameType.CANCEL, 9))
    wait_until(lambda: container.disconnects == 1, 3, "the container to see the client go")
    wait_until(lambda: thread.tunnel.in_flight() == 0, 3, "the stream to be forgotten")
    # A late frame for the cancelled stream is ignored; the tunnel keeps serving.
    peer.send(encode_window(9, 100))
    peer.request(10, "GET", "/echo")
    assert peer.answer(10).head is not None
    answer = peer.answer_so_far(9)
    assert not answer.ended and answer.failure is None


def test_in_flight_counts_the_streams_being_answered(
    start_tunnel: StartTunnel, container: Container
) -> None:
    peer, thread = start_tunnel()
    assert thread.tunnel.in_flight() == 0
    peer.request(1, "GET", "/slow")
    peer.request(3, "GET", "/slow")
    peer.wait_for(lambda: all(peer.answer_so_far(s).body for s in (1, 3)), "both streams to start")
    assert thread.tunnel.in_flight() == 2
    container.release.set()
    assert peer.answer(1).body == peer.answer(3).body == b"started;done"
    wait_until(lambda: thread.tunnel.in_flight() == 0, 2, "in_flight to drop")


def test_failures_say_whether_the_request_was_forwarded(
    start_tunnel: StartTunnel, container: Container
) -> None:
    peer, thread = start_tunnel()
    peer.request(1, "GET", "/echo", service="nope")
    peer.request(3, "POST", "/echo", service="gone", body=b"x")
    peer.request(5, "GET", "/die")

    not_running, unreachable, died = peer.answer(1), peer.answer(3), peer.answer(5)
    assert not_running.failure is not None and unreachable.failure is not None
    assert (not_running.failure.code, not_running.failure.forwarded) == ("not_running", False)
    assert (unreachable.failure.code, unreachable.failure.forwarded) == ("unreachable", False)
    # The container broke off after its head: the coordinator ends the end user's stream.
    assert died.head is not None and died.head.status == 200
    assert died.failure is not None
    assert (died.failure.code, died.failure.forwarded) == ("failed", True)

    # The coordinator announced 10 bytes and sent 3: the stream fails, the tunnel stays.
    peer.request(9, "POST", "/echo", body=b"abc", body_length=10)
    short = peer.answer(9)
    assert short.failure is not None and short.failure.code == "protocol"
    # A target that is not a path would name another host: refused, nothing sent.
    peer.request(11, "GET", "@elsewhere.example/echo")
    elsewhere = peer.answer(11)
    assert elsewhere.failure is not None
    assert (elsewhere.failure.code, elsewhere.failure.forwarded) == ("protocol", False)

    thread.tunnel.update(["web"], paused=True)
    peer.wait_for(lambda: len(peer.states()) == 2, "the paused STATE")
    assert peer.states()[-1].paused
    peer.request(7, "GET", "/echo")
    paused = peer.answer(7)
    assert paused.failure is not None and paused.head is None
    assert (paused.failure.code, paused.failure.forwarded) == ("paused", False)
    assert thread.tunnel.in_flight() == 0


def test_state_is_sent_on_change_only(start_tunnel: StartTunnel) -> None:
    peer, thread = start_tunnel()
    peer.wait_for(peer.states, "the first STATE")
    thread.tunnel.update(["web"], paused=False)  # no change: nothing goes
    thread.tunnel.update(["llm", "web", "llm"], paused=False)
    peer.wait_for(lambda: len(peer.states()) >= 2, "the changed STATE")
    thread.tunnel.update(["web", "llm"], paused=False)  # the same set: nothing goes
    thread.tunnel.update([], paused=True)
    peer.wait_for(lambda: len(peer.states()) >= 3, "the paused STATE")
    assert [(s.services, s.paused) for s in peer.states()] == [
        (["web"], False),
        (["llm", "web"], False),
        ([], True),
    ]


def test_pings_when_nothing_else_was_sent(start_tunnel: StartTunnel) -> None:
    peer, _ = start_tunnel(keepalive=0.1, dead_after=5)
    peer.wait_for(lambda: len(peer.frames(FrameType.PING)) >= 3, "three PINGs", timeout=2)


def test_reconnects_after_a_hanging_coordinator(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "desktop_app.agent.relay")
    coordinator = CoordinatorStandIn(keepalive=0.1, dead_after=0.5, ping_every=0.1).start()
    tunnel = RelayTunnel(
        coordinator.identity,
        LocalServices({"web": container.url}).local_url,
        initial_retry_delay=0.2,
    )
    tunnel.update(["web"], paused=False)
    thread = TunnelThread(tunnel).start()
    try:
        first = coordinator.tunnel(0)
        first.wait_for(first.states, "the first STATE")
        first.muted = True  # neither reads nor sends any more
        # Found dead after dead_after (0.5 s), then a retry within 0.1–0.2 s.
        second = coordinator.tunnel(1, timeout=2)
        second.wait_for(second.states, "the STATE on the new tunnel")
        assert "closed: nothing received for 0.5 s" in caplog.text
        second.request(1, "GET", "/echo")
        assert second.answer(1).head is not None
    finally:
        thread.stop()
        coordinator.stop()


def test_auto_falls_back_to_long_polling_when_websockets_are_refused(
    start_tunnel: StartTunnel,
) -> None:
    peer, _ = start_tunnel("auto", refuse_websocket=501)
    assert peer.transport == "long-poll"
    peer.request(1, "POST", "/echo", body=b"through the proxy")
    answer = peer.answer(1)
    assert answer.head is not None and echoed(answer)["body_length"] == len(b"through the proxy")
    assert peer.states()[0].services == ["web"]


@pytest.mark.parametrize("mode", ["auto", "long-poll"])
def test_refused_credentials_are_retried_without_falling_back(
    container: Container, mode: TransportMode
) -> None:
    coordinator = CoordinatorStandIn().start()
    stale = WorkerIdentity(WORKER_ID, "a token the pool no longer accepts", coordinator.url)
    tunnel = RelayTunnel(
        lambda: stale,
        LocalServices({}).local_url,
        mode=mode,
        initial_retry_delay=0.05,
        max_retry_delay=0.1,
    )
    thread = TunnelThread(tunnel).start()
    try:
        if mode == "auto":  # a 403 on the upgrade is the pool's answer, not a proxy's
            wait_until(lambda: coordinator.websocket_attempts >= 3, 3, "WebSocket retries")
            assert coordinator.poll_attempts == 0
        else:
            wait_until(lambda: coordinator.poll_attempts >= 3, 3, "long-poll retries")
        assert coordinator.tunnel_count() == 0
    finally:
        thread.stop()
        coordinator.stop()


def test_a_new_identity_gets_a_new_tunnel(container: Container) -> None:
    coordinator = CoordinatorStandIn(keepalive=0.1).start()
    identities: list[WorkerIdentity | None] = [coordinator.identity()]
    tunnel = RelayTunnel(
        lambda: identities[-1], LocalServices({}).local_url, initial_retry_delay=0.05
    )
    thread = TunnelThread(tunnel).start()
    try:
        first = coordinator.tunnel(0)
        first.wait_for(first.states, "the first STATE")
        identities.append(None)  # the pool forgot this worker: it registers again
        first.wait_for(lambda: first.closed, "the old identity's tunnel to close")
        identities.append(coordinator.identity())
        second = coordinator.tunnel(1)
        second.wait_for(second.states, "the STATE on the new tunnel")
    finally:
        thread.stop()
        coordinator.stop()
