"""The pool runs real services: coordinator + rma-worker + a Docker engine + a registry."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import (
    CoordinatorProcess,
    Process,
    web_service_coordinator,
    worker_process,
)
from tests.fixtures.container_images import LocalRegistry
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import PrivateDockerd

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

SERVICE = "web"
MANAGED = {"label": ["org.rma.managed=true", f"org.rma.service={SERVICE}"]}


def managed_containers(daemon: PrivateDockerd) -> list[Any]:
    client = daemon.engine.client()
    try:
        # The agent may remove a container between Docker's list and the SDK's inspect of it.
        return list(client.containers.list(all=True, filters=MANAGED, ignore_removed=True))
    finally:
        client.close()


def service_url(daemon: PrivateDockerd) -> str | None:
    """The service's address on loopback, from the port Docker published."""
    for container in managed_containers(daemon):
        bindings = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp") or []
        for binding in bindings:
            assert binding["HostIp"] == "127.0.0.1", "never published on the LAN"
            return f"http://127.0.0.1:{binding['HostPort']}"
    return None


def answers(daemon: PrivateDockerd) -> bool:
    url = service_url(daemon)
    if url is None:
        return False
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def reported(coordinator: CoordinatorProcess, name: str) -> dict[str, Any]:
    worker = coordinator.workers().get(name)
    reports = {c["service"]: c for c in (worker or {}).get("containers", [])}
    return dict(reports.get(SERVICE, {}))


def test_assigned_service_runs_recovers_and_leaves_nothing(
    tmp_path: Path,
    processes: list[Process],
    local_registry: LocalRegistry,
    stoppable_docker_engine: PrivateDockerd,
) -> None:
    daemon = stoppable_docker_engine
    coordinator = web_service_coordinator(tmp_path, local_registry.image, SERVICE)
    processes.append(coordinator.start())
    worker = worker_process("volunteer", coordinator.url, tmp_path)
    worker.env["DOCKER_HOST"] = daemon.engine.host
    processes.append(worker.start())

    # Assigned, pulled from the registry, started, healthy, answering on loopback.
    wait_until(
        lambda: reported(coordinator, "volunteer").get("state") == "running",
        90,
        f"the service to run; worker said:\n{worker.output()[-3000:]}",
    )
    assert answers(daemon)
    [container] = managed_containers(daemon)
    host_config = container.attrs["HostConfig"]
    assert host_config["Privileged"] is False
    assert host_config["CapDrop"] == ["ALL"]
    assert "Service web: running" in worker.output()

    # Docker stops: the worker says so; Docker comes back: so does the service, by itself.
    daemon.stop()
    wait_until(
        lambda: "Docker" in (reported(coordinator, "volunteer").get("message") or ""),
        30,
        "the worker to report that Docker is not running",
    )
    daemon.start()
    wait_until(lambda: answers(daemon), 60, "the service to come back with Docker")
    wait_until(
        lambda: reported(coordinator, "volunteer").get("state") == "running", 30, "running again"
    )

    # Drained by an admin: after the grace period its service is taken away.
    worker_id = coordinator.workers()["volunteer"]["worker_id"]
    response = httpx.post(
        f"{coordinator.url}/api/admin/workers/{worker_id}/drain",
        headers={"Authorization": f"Bearer {coordinator.admin_token}"},
        timeout=5,
    )
    assert response.status_code == 200
    wait_until(lambda: not managed_containers(daemon), 30, "the drained worker's container to go")
    httpx.post(
        f"{coordinator.url}/api/admin/workers/{worker_id}/undrain",
        headers={"Authorization": f"Bearer {coordinator.admin_token}"},
        timeout=5,
    ).raise_for_status()
    wait_until(lambda: answers(daemon), 60, "the service to return after undrain")

    # SIGTERM: the worker leaves the pool and leaves no container behind.
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert managed_containers(daemon) == []
