"""The Agent runs the relay tunnel: it opens once registered, offers the services that run,
refuses new work at once on a pause, lets work under way finish, and closes on quit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_app.agent.agent import Agent, AgentConfig
from desktop_app.agent.credentials import FileCredentialStore
from desktop_app.agent.identity import IdentityStore
from shared import ContainerReport, DockerInfo, ServiceAssignment, WorkerCapabilities
from tests.agent.relay.standin import Container, CoordinatorStandIn, serving
from tests.agent.test_agent import GIB, AgentThread, StaticProbe
from tests.fixtures.coordinator import wait_until

DOCKER = DockerInfo(usable=True, status="running", version="26.1")


class ServingRuntime:
    """The container runtime at its boundary: the assigned services "run" at the container
    server's address until stopped, and each call is recorded with its time."""

    def __init__(self, url: str) -> None:
        self.docker = DOCKER
        self.url = url
        self.up = False
        self.stopped_at: list[float] = []
        self._lock = threading.Lock()

    def adopt_or_clean(self, desired: list[ServiceAssignment]) -> list[ContainerReport]:
        return self.reconcile(desired)

    def reconcile(self, desired: list[ServiceAssignment]) -> list[ContainerReport]:
        self.up = True
        return [ContainerReport(service=a.service, image=a.image, state="running") for a in desired]

    def stop_all(self) -> None:
        with self._lock:
            self.up = False
            self.stopped_at.append(time.monotonic())

    def wait_for_work(self, timeout_s: float) -> bool:
        time.sleep(min(timeout_s, 0.05))
        return False

    def wake(self) -> None:
        pass  # wait_for_work returns within 50 ms anyway

    def local_url(self, service: str) -> str | None:
        return self.url if self.up and service == "web" else None


@pytest.fixture
def container() -> Iterator[Container]:
    with serving(Container()) as container:
        yield container
        container.release.set()


def test_the_agent_relays_and_pauses_through_its_tunnel(
    container: Container, tmp_path: Path
) -> None:
    coordinator = CoordinatorStandIn().start()
    runtime = ServingRuntime(container.url)
    state = tmp_path / "state"
    agent = Agent(
        AgentConfig(
            coordinator_url=coordinator.url,
            name="relay-box",
            max_retry_delay=0.5,
            drain_timeout=5.0,
            tunnel_transport="websocket",
        ),
        identities=IdentityStore(state, FileCredentialStore(state / "credentials.json")),
        probe=StaticProbe(WorkerCapabilities(cpu_cores=4, ram=8 * GIB, docker=DOCKER)),
        load_sampler=lambda: 0.1,
        containers=runtime,  # type: ignore[arg-type]
    )
    runner = AgentThread(agent).start()
    try:
        peer = coordinator.tunnel(timeout=5)
        peer.wait_for(lambda: any(s.services == ["web"] for s in peer.states()), "web offered")
        peer.request(1, "GET", "/echo")
        answer = peer.answer(1)
        assert answer.head is not None and answer.head.status == 200

        peer.request(3, "GET", "/slow")
        peer.wait_for(lambda: peer.answer_so_far(3).body, "the slow answer to start")
        agent.set_paused(True)
        peer.wait_for(lambda: peer.states()[-1].paused, "the paused STATE")
        peer.request(5, "GET", "/echo")
        refused = peer.answer(5)
        assert refused.failure is not None and refused.failure.code == "paused"
        # The answer under way may finish before the containers stop (drain_timeout).
        assert runtime.stopped_at == []
        released = time.monotonic()
        container.release.set()
        assert peer.answer(3).body == b"started;done"
        wait_until(lambda: runtime.stopped_at, 5, "the containers to stop")
        assert runtime.stopped_at[0] >= released
        peer.wait_for(lambda: peer.states()[-1].services == [], "no service offered")
    finally:
        runner.stop()
        coordinator.stop()
    assert peer.closed, "quitting closes the tunnel"
    assert coordinator.unregistered
