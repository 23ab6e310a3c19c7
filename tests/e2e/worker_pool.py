"""A coordinator and ``rma-worker`` processes on one private dockerd, started as one pool.

The relay and dashboard tests both need this pool: the workers registered, a client API key,
and a service running on its replicas before the first test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from tests.e2e.processes import CoordinatorProcess, Process, worker_process
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import DockerEngine


@dataclass
class ProcessPool:
    """A running coordinator, its workers by name, and a client API key."""

    coordinator: CoordinatorProcess
    workers: dict[str, Process]
    key: str
    """A client API key, for the relay."""
    ids: dict[str, str] = field(default_factory=dict)
    """Worker id by name."""

    def running(self, service: str) -> set[str]:
        """Names of the workers whose container for ``service`` runs, as they reported."""
        return {
            name
            for name, worker in self.coordinator.workers().items()
            if any(
                c["service"] == service and c["state"] == "running"
                for c in worker.get("containers", [])
            )
        }

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{process.output()[-2000:]}"
            for name, process in {"coordinator": self.coordinator, **self.workers}.items()
        )


PoolType = TypeVar("PoolType", bound=ProcessPool)


def remove_managed_containers(engine: DockerEngine) -> None:
    client = engine.client()
    try:
        for container in client.containers.list(
            all=True, filters={"label": "org.rma.managed=true"}
        ):
            with contextlib.suppress(Exception):
                container.remove(force=True)
    finally:
        client.close()


@contextlib.contextmanager
def running_pool(
    pool_type: type[PoolType],
    coordinator: CoordinatorProcess,
    names: tuple[str, ...],
    root: Path,
    docker_engine: DockerEngine,
    *,
    key_name: str,
    service: str,
) -> Iterator[PoolType]:
    """Start the coordinator and one worker per name; yield once ``service`` runs on two.

    Every process is stopped and every managed container removed on the way out.
    """
    workers = {name: worker_process(name, coordinator.url, root) for name in names}
    started: list[Process] = []
    try:
        started.append(coordinator.start())
        for worker in workers.values():
            worker.env["DOCKER_HOST"] = docker_engine.host
            started.append(worker.start())
        created = httpx.post(
            coordinator.url + "/api/admin/api-keys",
            json={"name": key_name},
            headers={"Authorization": f"Bearer {coordinator.admin_token}"},
        )
        assert created.status_code == 201, created.text
        ready = pool_type(coordinator, workers, created.json()["key"])
        wait_until(
            lambda: set(names) <= coordinator.workers().keys(), 30, "the workers to register"
        )
        ready.ids = {name: coordinator.workers()[name]["worker_id"] for name in names}
        wait_until(
            lambda: len(ready.running(service)) == 2,
            120,
            f"{service} to run on two workers; the pool said:\n{ready.logs()}",
        )
        yield ready
    finally:
        for process in reversed(started):
            process.stop()
        remove_managed_containers(docker_engine)
