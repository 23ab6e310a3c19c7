"""End users reach the pool's services through the coordinator: real processes, real containers.

One pool for the module: an ``rma-coordinator`` process, three ``rma-worker`` processes
sharing the session's private dockerd, the tests' busybox image (with its CGI scripts) from
the loopback registry, and a client API key. ``web`` runs on two workers; ``vault`` is
sensitive and runs only where an admin trusts the machine. The tests run in file order: the
last one kills a worker.
"""

from __future__ import annotations

import hashlib
import itertools
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.processes import (
    catalog_coordinator,
    web_service,
)
from tests.e2e.worker_pool import ProcessPool, running_pool
from tests.fixtures.container_images import (
    ECHO_PATH,
    SLOW_PATH,
    STATUS_PATH,
    STREAM_PATH,
    EchoReply,
    LocalRegistry,
)
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import DockerEngine

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

MAX_BODY = 1024 * 1024
NAMES = ("ada", "bea", "cyd")


@dataclass
class Pool(ProcessPool):
    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **options.pop("headers", {})}
        return httpx.request(
            method, self.coordinator.url + path, headers=headers, timeout=30, **options
        )

    def admin(self, path: str) -> None:
        response = httpx.post(
            self.coordinator.url + path,
            headers={"Authorization": f"Bearer {self.coordinator.admin_token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def answered_by(self, service: str, count: int) -> Counter[str]:
        """Which workers (by name) answered ``count`` requests to ``service``."""
        names = {worker_id: name for name, worker_id in self.ids.items()}
        answers: Counter[str] = Counter()
        for _ in range(count):
            response = self.call("GET", f"/api/service/{service}{ECHO_PATH}")
            assert response.status_code == 200, response.text
            answers[names[response.headers["x-rma-worker"]]] += 1
        return answers


@pytest.fixture(scope="module")
def pool(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
    local_registry: LocalRegistry,
) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("relay")
    image = local_registry.image
    coordinator = catalog_coordinator(
        root,
        [
            web_service(image, "web", replicas=2),
            web_service(image, "vault", sensitive=True),
        ],
    )
    coordinator.env["RMA_RELAY_MAX_BODY"] = str(MAX_BODY)
    with running_pool(
        Pool, coordinator, NAMES, root, docker_engine, key_name="e2e", service="web"
    ) as ready:
        yield ready


def test_requests_spread_over_the_workers_running_the_service(pool: Pool) -> None:
    runners = pool.running("web")
    wait_until(
        lambda: set(pool.answered_by("web", 4)) == runners,
        20,
        "both workers running web to answer",
    )
    answers = pool.answered_by("web", 20)
    assert set(answers) == runners
    assert min(answers.values()) >= 8, answers  # least outstanding, ties to the longest idle

    body = bytes(range(256)) * 2048  # 512 KiB: several frames, within the window
    echoed = pool.call(
        "POST",
        f"/api/service/web{ECHO_PATH}?who=relay&x=%2F",
        content=body,
        headers={"X-Test-Id": "7", "Content-Type": "application/octet-stream"},
    )
    assert echoed.status_code == 200, echoed.text
    reply = EchoReply.parse(echoed.text)
    assert reply.method == "POST"
    assert reply.query == "who=relay&x=%2F"
    assert reply.headers["x-test-id"] == "7"
    assert reply.content_type == "application/octet-stream"
    assert reply.body_bytes == len(body)
    assert reply.body_sha256 == hashlib.sha256(body).hexdigest()
    assert not reply.authorization, "the end user's API key never reaches a volunteer"


def test_a_streamed_answer_arrives_as_it_is_produced(pool: Pool) -> None:
    arrivals: list[float] = []
    began = time.monotonic()
    with httpx.stream(
        "GET",
        pool.coordinator.url + f"/api/service/web{STREAM_PATH}?n=4&gap=300",
        headers={"Authorization": f"Bearer {pool.key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - began)
    assert len(arrivals) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap > 0.2 for gap in gaps), f"events arrived in a lump: {arrivals}"


def test_refusals_and_the_services_own_errors(pool: Pool) -> None:
    url = pool.coordinator.url + f"/api/service/web{ECHO_PATH}"
    missing = httpx.get(url)
    assert (missing.status_code, missing.json()["code"]) == (401, "missing_api_key")
    bad = httpx.get(url, headers={"Authorization": "Bearer rma_wrong"})
    assert (bad.status_code, bad.json()["code"]) == (401, "bad_api_key")

    unknown = pool.call("GET", "/api/service/nosuch/x")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_service")
    big = pool.call("POST", f"/api/service/web{ECHO_PATH}", content=b"x" * (MAX_BODY + 1))
    assert (big.status_code, big.json()["code"]) == (413, "too_large")

    # No trusted worker yet: the sensitive service has nowhere to go.
    untrusted = pool.call("GET", f"/api/service/vault{ECHO_PATH}")
    assert (untrusted.status_code, untrusted.json()["code"]) == (503, "no_worker")
    assert int(untrusted.headers["retry-after"]) >= 1

    # A service's own error passes through as it is, from a worker.
    own = pool.call("GET", f"/api/service/web{STATUS_PATH}?code=503")
    assert own.status_code == 503
    assert own.text.strip() == "status=503"
    assert own.headers["x-rma-worker"] in pool.ids.values()


def test_a_sensitive_service_reaches_only_the_trusted_worker(pool: Pool) -> None:
    trusted = "cyd"
    pool.admin(f"/api/admin/workers/{pool.ids[trusted]}/trust")
    wait_until(
        lambda: pool.running("vault") == {trusted},
        90,
        f"vault to run on the trusted worker; the pool said:\n{pool.logs()}",
    )
    wait_until(
        lambda: pool.call("GET", f"/api/service/vault{ECHO_PATH}").status_code == 200,
        20,
        "vault to be routable",
    )
    assert pool.answered_by("vault", 10) == Counter({trusted: 10})
    # Untrusted again: not one more request, though its container still runs for a moment.
    pool.admin(f"/api/admin/workers/{pool.ids[trusted]}/untrust")
    refused = pool.call("GET", f"/api/service/vault{ECHO_PATH}")
    assert (refused.status_code, refused.json()["code"]) == (503, "no_worker")


@dataclass
class Load:
    """Requests sent in a loop by a few threads, with their outcomes."""

    pool: Pool
    answered: list[tuple[float, str, str]] = field(default_factory=list)
    """(when the request was sent, its method, the worker that answered) for each 200."""
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, method: str, path: str) -> None:
        names = {worker_id: name for name, worker_id in self.pool.ids.items()}
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                response = self.pool.call(method, path, content=b"x" if method == "POST" else None)
            except httpx.HTTPError as exc:
                self.failed.append(f"{method} {type(exc).__name__}")
                continue
            if response.status_code == 200:
                worker = names.get(response.headers["x-rma-worker"], "?")
                self.answered.append((sent, method, worker))
            else:
                self.failed.append(f"{method} {response.status_code} {response.text[:200]}")

    def count(self, method: str, worker: str) -> int:
        return sum(1 for _, m, w in self.answered if (m, w) == (method, worker))


def test_killing_a_worker_under_load_fails_at_most_its_non_idempotent_requests(
    pool: Pool,
) -> None:
    victim, survivor = sorted(pool.running("web"))
    load = Load(pool)
    threads = [
        threading.Thread(target=load.run, args=("GET", f"/api/service/web{SLOW_PATH}?s=0.3"))
        for _ in range(3)
    ] + [
        threading.Thread(target=load.run, args=("POST", f"/api/service/web{ECHO_PATH}"))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: load.count("GET", victim) >= 2 and load.count("POST", victim) >= 2,
            20,
            f"the load to reach both workers: {load.answered[-5:]} {load.failed}",
        )
        pool.workers[victim].signal(signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3.5)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(30)
    assert not [f for f in load.failed if f.startswith("GET")], load.failed
    # At most the POSTs in flight when the worker died: one per POST thread.
    assert len(load.failed) <= 2, load.failed
    # No request sent two seconds after the kill or later went to the dead worker; the
    # survivor took them (and, once placement moved the service, the third worker too).
    later = Counter((m, w) for sent, m, w in load.answered if sent > killed_at + 2.0)
    assert not {w for _, w in later} & {victim}, later
    assert later[("GET", survivor)] > 0 and later[("POST", survivor)] > 0, later
