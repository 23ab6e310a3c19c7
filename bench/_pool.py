"""A real pool for the benches that drive ``rma-desktop``: Docker, a registry, a coordinator.

:func:`running_pool` starts a private dockerd (``tests/fixtures/docker_engine.py``), a
loopback registry holding the tests' small busybox HTTP image
(``tests/fixtures/container_images.py``) and an ``rma-coordinator`` process whose catalogue
assigns that image, as the service ``web``, to every worker
(``tests/e2e/processes.py``). Everything is stopped on exit, errors and Ctrl-C included.
Needs root (dockerd) and Debian's ``docker.io``, ``docker-registry`` and ``busybox-static``.

The caller puts ``REPO`` on ``sys.path`` before importing this module, as the scripts in
``bench/`` do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.processes import CoordinatorProcess, web_service_coordinator
from tests.fixtures.container_images import serve_registry
from tests.fixtures.docker_engine import DockerEngine, running_dockerd

COORDINATOR_HEARTBEAT_S = 30.0
"""The coordinator's default heartbeat interval (``RMA_HEARTBEAT_INTERVAL``)."""


@dataclass(frozen=True)
class Pool:
    """A running pool."""

    engine: DockerEngine
    image: str
    """The service's image, in the loopback registry (not yet pulled into ``engine``)."""
    coordinator: CoordinatorProcess


@contextlib.contextmanager
def running_pool(
    root: Path,
    *,
    heartbeat_interval: float = COORDINATOR_HEARTBEAT_S,
    placement_grace: float | None = None,
) -> Iterator[Pool]:
    """Start dockerd, the registry and a coordinator (files under ``root``); stop them on exit.

    Args:
        root: A new folder for the coordinator's data, catalogue and log.
        heartbeat_interval: The coordinator's heartbeat interval, in seconds.
        placement_grace: Seconds a paused or offline worker keeps its services; None keeps
            ``web_service_coordinator``'s 1 s.
    """
    root.mkdir(parents=True)
    with running_dockerd() as daemon, serve_registry(daemon.engine) as registry:
        coordinator = web_service_coordinator(
            root, registry.image, heartbeat_interval=heartbeat_interval
        )
        if placement_grace is not None:
            coordinator.env["RMA_PLACEMENT_GRACE"] = f"{placement_grace:g}"
        try:
            # Inside the try: a coordinator that never answers is still stopped.
            coordinator.start()
            yield Pool(engine=daemon.engine, image=registry.image, coordinator=coordinator)
        finally:
            coordinator.stop()
