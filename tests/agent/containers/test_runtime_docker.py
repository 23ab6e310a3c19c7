"""The container runtime against a real Docker engine and a real loopback registry."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker
import httpx
import pytest

from desktop_app.agent.containers import (
    ContainerRuntime,
    DockerGateway,
    ResourceLimits,
    RuntimeConfig,
)
from desktop_app.agent.containers.security import (
    MANAGED_LABEL,
    SERVICE_LABEL,
    SPEC_LABEL,
    WORKER_LABEL,
    container_name,
    volume_name,
)
from shared import ContainerReport, ServiceAssignment
from tests.fixtures.container_images import IMAGE_PORT, LocalRegistry
from tests.fixtures.docker_engine import DockerEngine, PrivateDockerd

pytestmark = pytest.mark.docker

MIB = 1024**2
RESTART_INITIAL_S = 0.3


def fast_config(worker: str, **overrides: object) -> RuntimeConfig:
    options: dict[str, object] = {
        "worker": worker,
        "stop_timeout_s": 2.0,
        "health_timeout_s": 0.5,
        "start_grace_s": 5.0,
        "restart_initial_s": RESTART_INITIAL_S,
        "restart_max_s": 5.0,
        "retry_initial_s": 0.2,
        "retry_max_s": 1.0,
    }
    options.update(overrides)
    return RuntimeConfig(**options)  # type: ignore[arg-type]


@dataclass
class Harness:
    """A runtime on one engine, recording every report it publishes."""

    engine: DockerEngine
    runtime: ContainerRuntime
    gateway: DockerGateway
    worker: str
    published: list[list[ContainerReport]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, reports: list[ContainerReport]) -> None:
        with self._lock:
            self.published.append(reports)

    def seen(self, service: str) -> list[ContainerReport]:
        with self._lock:
            return [r for reports in self.published for r in reports if r.service == service]

    def drive(
        self,
        desired: list[ServiceAssignment],
        until: Callable[[dict[str, ContainerReport]], bool],
        what: str,
        timeout: float = 20.0,
    ) -> dict[str, ContainerReport]:
        """Reconcile again and again, as the agent does, until ``until`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            reports = {r.service: r for r in self.runtime.reconcile(desired)}
            if until(reports):
                return reports
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last reports: {reports}")
            self.runtime.wait_for_work(0.05)

    def ours(self) -> list[docker.models.containers.Container]:
        client = self.engine.client()
        try:
            return client.containers.list(
                all=True, filters={"label": [f"{WORKER_LABEL}={self.worker}"]}
            )
        finally:
            client.close()


def make_harness(engine: DockerEngine, worker: str | None = None, **config: object) -> Harness:
    worker = worker or f"test-{uuid.uuid4().hex[:8]}"
    gateway = DockerGateway(environ={"DOCKER_HOST": engine.host}, timeout_s=10)
    runtime = ContainerRuntime(gateway, fast_config(worker, **config))
    harness = Harness(engine=engine, runtime=runtime, gateway=gateway, worker=worker)
    runtime.subscribe(harness.record)
    return harness


@contextlib.contextmanager
def running_harness(engine: DockerEngine, **config: object) -> Iterator[Harness]:
    """A harness whose containers are stopped and whose engine client is closed at the end."""
    made = make_harness(engine, **config)
    try:
        yield made
    finally:
        made.runtime.stop_all()
        made.gateway.close()


@pytest.fixture
def harness(docker_engine: DockerEngine) -> Iterator[Harness]:
    with running_harness(docker_engine) as made:
        yield made


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def httpd(image: str, service: str | None = None, **fields: object) -> ServiceAssignment:
    base: dict[str, object] = {
        "service": service or unique("web"),
        "image": image,
        "port": IMAGE_PORT,
        "health_path": "/health",
    }
    base.update(fields)
    return ServiceAssignment.model_validate(base)


def is_state(service: str, state: str) -> Callable[[dict[str, ContainerReport]], bool]:
    return lambda reports: service in reports and reports[service].state == state


def get_url(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5, trust_env=False)


def test_assigned_service_is_pulled_started_answers_and_is_removed(
    harness: Harness, absent_test_image: str
) -> None:
    service = httpd(absent_test_image, volumes=["/data"])
    reports = harness.drive([service], is_state(service.service, "running"), "running")
    assert reports[service.service].message == "Running."

    pulling = [r for r in harness.seen(service.service) if r.state == "pulling"]
    assert pulling, "a pulling report was published"
    with_bytes = [r for r in pulling if r.bytes_total]
    assert with_bytes, f"pull progress was reported: {pulling}"
    assert all(r.bytes_done is not None and r.bytes_done <= r.bytes_total for r in with_bytes)
    assert with_bytes[-1].bytes_total is not None and with_bytes[-1].bytes_total > 8 * MIB
    assert with_bytes[-1].progress == 1.0

    url = harness.runtime.local_url(service.service)
    assert url is not None and url.startswith("http://127.0.0.1:")
    answer = get_url(f"{url}/health")
    assert (answer.status_code, answer.text) == (200, "ok\n")
    (container,) = harness.ours()
    assert container.name == container_name(service.service, harness.worker)
    assert container.labels[SERVICE_LABEL] == service.service
    assert container.labels[MANAGED_LABEL] == "true"

    # The coordinator takes the service away: container and data volume go.
    assert harness.runtime.reconcile([]) == []
    assert harness.ours() == []
    assert harness.runtime.local_url(service.service) is None
    client = harness.engine.client()
    try:
        volumes = client.volumes.list(filters={"label": [f"{WORKER_LABEL}={harness.worker}"]})
        assert volumes == []
    finally:
        client.close()
    with pytest.raises(httpx.TransportError):
        get_url(f"{url}/health")


def test_stop_all_leaves_nothing_running(harness: Harness, local_registry: LocalRegistry) -> None:
    first, second = httpd(local_registry.image), httpd(local_registry.image, volumes=["/data"])
    harness.drive(
        [first, second],
        lambda r: all(is_state(s.service, "running")(r) for s in (first, second)),
        "both running",
    )
    assert len(harness.ours()) == 2
    started = time.monotonic()
    harness.runtime.stop_all()
    # docker-init passes SIGTERM on, so nobody waited for the kill timeout.
    assert time.monotonic() - started < 2.0
    assert harness.ours() == []
    assert harness.runtime.reports == []
    # Named volumes survive a pause: the data is still there on resume.
    client = harness.engine.client()
    try:
        client.volumes.get(volume_name(second.service, 0, harness.worker)).remove()
    finally:
        client.close()


def test_exited_container_is_restarted_with_backoff(
    harness: Harness, local_registry: LocalRegistry
) -> None:
    crashing = httpd(
        local_registry.image,
        port=None,
        health_path=None,
        command=["/bin/busybox", "sh", "-c", "sleep 0.2; exit 3"],
    )
    reports = harness.drive(
        [crashing], lambda r: r[crashing.service].restarts >= 3, "three restarts", timeout=30
    )
    exited = [r for r in harness.seen(crashing.service) if r.state == "exited"]
    assert exited, "the exit was reported"
    assert all(r.message and r.message.startswith("Stopped with exit code 3") for r in exited)
    delays = []
    for r in exited:
        found = re.search(r"restarting in ([0-9.]+) s", r.message or "")
        assert found
        if not delays or float(found.group(1)) != delays[-1]:
            delays.append(float(found.group(1)))
    # Equal-jitter backoff: the k-th wait lies in [initial * 2^k / 2, initial * 2^k]. These
    # windows do not overlap, so the waits observed grow, even when a busy machine lets one
    # exit-and-restart cycle pass between two reconcile passes unseen.
    assert len(delays) >= 2
    assert delays == sorted(delays), delays
    assert RESTART_INITIAL_S / 2 - 0.05 <= delays[0] <= RESTART_INITIAL_S + 0.05
    assert delays[-1] > delays[0]
    restarts = reports[crashing.service].restarts
    assert delays[-1] <= RESTART_INITIAL_S * 2**restarts + 0.05
    assert reports[crashing.service].restarts >= 3
    # Restarted, not recreated: still one container.
    assert len(harness.ours()) == 1


def test_unlabelled_and_foreign_containers_are_never_touched(
    harness: Harness, local_registry: LocalRegistry
) -> None:
    client = harness.engine.client()
    bystanders = []
    try:
        bystanders.append(
            client.containers.run(
                local_registry.image, detach=True, init=True, name=unique("bystander")
            )
        )
        # Another agent instance's container on the same engine is not ours either.
        bystanders.append(
            client.containers.run(
                local_registry.image,
                detach=True,
                init=True,
                name=unique("other-agent"),
                labels={
                    MANAGED_LABEL: "true",
                    WORKER_LABEL: "someone-else",
                    SERVICE_LABEL: "web",
                    SPEC_LABEL: "x",
                },
            )
        )
        service = httpd(local_registry.image)
        harness.runtime.adopt_or_clean([])
        harness.drive([service], is_state(service.service, "running"), "running")
        harness.runtime.reconcile([])
        harness.runtime.stop_all()
        for bystander in bystanders:
            bystander.reload()
            assert bystander.status == "running", bystander.name
    finally:
        for bystander in bystanders:
            bystander.remove(force=True)
        client.close()


def test_adoption_after_a_crash(docker_engine: DockerEngine, local_registry: LocalRegistry) -> None:
    worker = unique("crashy")
    kept, dropped = httpd(local_registry.image), httpd(local_registry.image)
    before = make_harness(docker_engine, worker)
    after = make_harness(docker_engine, worker)
    try:
        before.drive(
            [kept, dropped],
            lambda r: all(is_state(s.service, "running")(r) for s in (kept, dropped)),
            "both running",
        )
        kept_id = {c.name: c.id for c in before.ours()}[container_name(kept.service, worker)]
        # The agent dies without cleaning up; a new one starts with only `kept` desired.
        reports = after.runtime.adopt_or_clean([kept])
        assert [c.id for c in after.ours()] == [kept_id]
        assert [(r.service, r.state, r.restarts) for r in reports] == [(kept.service, "running", 0)]
        url = after.runtime.local_url(kept.service)
        assert url is not None and get_url(f"{url}/health").status_code == 200
        # A changed assignment is recreated, not adopted.
        changed = kept.model_copy(update={"env": {"GREETING": "hello"}})
        after.drive([changed], is_state(kept.service, "running"), "recreated and running")
        (container,) = after.ours()
        assert container.id != kept_id
        assert "GREETING=hello" in container.attrs["Config"]["Env"]
    finally:
        after.runtime.stop_all()
        before.gateway.close()
        after.gateway.close()


def test_image_not_found_is_an_error_with_a_sentence(
    harness: Harness, local_registry: LocalRegistry
) -> None:
    missing = httpd(local_registry.missing_image())
    reports = harness.drive([missing], is_state(missing.service, "error"), "an error")
    message = reports[missing.service].message or ""
    assert f"The image {local_registry.missing_image()} was not found" in message
    assert harness.ours() == []


def test_not_enough_disk_is_an_error_before_any_download(
    harness: Harness, absent_test_image: str
) -> None:
    greedy = httpd(absent_test_image, min_disk=10**18)
    reports = harness.drive([greedy], is_state(greedy.service, "error"), "an error")
    message = reports[greedy.service].message or ""
    assert "not enough disk" in message.lower()
    assert "1000000000.0 GB free" in message
    assert harness.runtime.reports[0].state == "error"
    assert not harness.gateway.image_present(absent_test_image)
    assert not any(r.state == "pulling" for r in harness.seen(greedy.service))


def test_gpu_service_without_gpu_is_an_error(
    harness: Harness, local_registry: LocalRegistry
) -> None:
    needs_gpu = httpd(local_registry.image, gpu=True)
    reports = harness.runtime.reconcile([needs_gpu])
    assert reports[0].state == "error"
    assert reports[0].message and "needs a GPU" in reports[0].message
    assert harness.ours() == []


def test_security_settings_read_back_from_docker_inspect(
    docker_engine: DockerEngine, local_registry: LocalRegistry
) -> None:
    limits = ResourceLimits(cpus=0.5, memory_bytes=64 * MIB, pids_limit=100)
    harness = make_harness(docker_engine, limits=limits)
    try:
        service = httpd(local_registry.image, cap_add=["NET_BIND_SERVICE"], volumes=["/data"])
        harness.drive([service], is_state(service.service, "running"), "running")
        (container,) = harness.ours()
        host = container.attrs["HostConfig"]
        assert host["Privileged"] is False
        assert host["CapDrop"] == ["ALL"]
        assert [cap.removeprefix("CAP_") for cap in host["CapAdd"]] == ["NET_BIND_SERVICE"]
        assert host["SecurityOpt"] == ["no-new-privileges:true"]
        assert not host["Binds"]
        assert [(m["Type"], m["Source"], m["Target"]) for m in host["Mounts"]] == [
            ("volume", volume_name(service.service, 0, harness.worker), "/data")
        ]
        assert all(m["Type"] == "volume" for m in container.attrs["Mounts"])
        assert host["PortBindings"] == {
            f"{IMAGE_PORT}/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]
        }
        assert host["PublishAllPorts"] is False
        published = container.attrs["NetworkSettings"]["Ports"][f"{IMAGE_PORT}/tcp"]
        assert [p["HostIp"] for p in published] == ["127.0.0.1"]
        assert host["Memory"] == 64 * MIB
        assert host["NanoCpus"] == 500_000_000
        assert host["PidsLimit"] == 100
        assert host["RestartPolicy"]["Name"] in ("no", "")
        assert host["Init"] is True
        assert not host.get("DeviceRequests")

        # What the process really has: only the one capability back, and no way to gain more.
        status = container.exec_run(["/bin/busybox", "cat", "/proc/1/status"]).output.decode()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        net_bind_service = 1 << 10
        assert int(fields["CapEff"], 16) == net_bind_service
        assert int(fields["CapBnd"], 16) == net_bind_service
        assert fields["NoNewPrivs"].strip() == "1"

        # Reachable on loopback, not from the LAN side (here: the Docker bridge's address).
        port = int(published[0]["HostPort"])
        assert get_url(f"http://127.0.0.1:{port}/health").status_code == 200
        client = docker_engine.client()
        try:
            gateway_ip = client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
        finally:
            client.close()
        with pytest.raises(OSError), socket.create_connection((gateway_ip, port), timeout=2):
            pass
    finally:
        harness.runtime.stop_all()
        harness.gateway.close()


def test_docker_stopping_and_coming_back(
    stoppable_docker_engine: PrivateDockerd, local_registry: LocalRegistry
) -> None:
    daemon = stoppable_docker_engine
    harness = make_harness(daemon.engine)
    try:
        service = httpd(local_registry.image)
        harness.drive([service], is_state(service.service, "running"), "running")
        assert harness.runtime.docker is not None and harness.runtime.docker.usable

        daemon.stop()
        (report,) = harness.runtime.reconcile([service])
        assert report.state == "error"
        assert report.message and "Docker is not answering" in report.message
        assert harness.runtime.docker is not None
        assert harness.runtime.docker.status == "not_running"
        assert harness.runtime.local_url(service.service) is None

        daemon.start()
        reports = harness.drive(
            [service], is_state(service.service, "running"), "running again", timeout=30
        )
        assert harness.runtime.docker.usable
        assert reports[service.service].restarts == 1
        url = harness.runtime.local_url(service.service)
        assert url is not None and get_url(f"{url}/health").status_code == 200
    finally:
        harness.runtime.stop_all()
        harness.gateway.close()
