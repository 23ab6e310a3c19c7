"""What the tray's "Containers" tab shows (CPU, memory, uptime, log), from a real engine."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from desktop_app.agent.containers import ContainerDetails, ResourceLimits
from tests.agent.containers.test_runtime_docker import (
    Harness,
    httpd,
    is_state,
    make_harness,
    running_harness,
)
from tests.fixtures.container_images import IMAGE_PORT, LocalRegistry
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import DockerEngine, PrivateDockerd

pytestmark = pytest.mark.docker

MIB = 1024**2
BUSYBOX = "/bin/busybox"


@pytest.fixture
def harness(docker_engine: DockerEngine) -> Iterator[Harness]:
    with running_harness(docker_engine) as made:
        yield made


@pytest.fixture
def limited(docker_engine: DockerEngine) -> Iterator[Harness]:
    """A runtime whose containers may use at most 64 MiB each."""
    with running_harness(docker_engine, limits=ResourceLimits(memory_bytes=64 * MIB)) as made:
        yield made


def only(harness: Harness) -> ContainerDetails:
    (details,) = harness.runtime.details()
    return details


def log_showing(harness: Harness, service: str, marker: str) -> str:
    """The service's log, once it shows ``marker``."""

    def log() -> str | None:
        text = harness.runtime.logs(service)
        return text if marker in text else None

    found: str = wait_until(log, timeout=10, what=f"{marker} in the log of {service}")
    return found


def test_busy_container_shows_cpu_memory_uptime_and_log(
    limited: Harness, local_registry: LocalRegistry
) -> None:
    marker = f"rma-marker-{uuid.uuid4().hex[:8]}"
    spinner = httpd(
        local_registry.image,
        port=None,
        health_path=None,
        command=[
            BUSYBOX,
            "sh",
            "-c",
            f"echo {marker}; echo complaint >&2; while :; do :; done",
        ],
    )
    limited.drive([spinner], is_state(spinner.service, "running"), "running")

    first = only(limited)
    assert (first.service, first.image, first.state) == (
        spinner.service,
        local_registry.image,
        "running",
    )
    assert first.memory_bytes is not None and first.memory_bytes > 0
    assert first.memory_limit_bytes == 64 * MIB
    assert first.started_at is not None and first.started_at.tzinfo is not None
    assert abs(datetime.now(UTC) - first.started_at) < timedelta(minutes=1)

    # One core spinning reads as about 100 % (a share of the whole host would be 100/CPUs).
    busy = wait_until(
        lambda: (d := only(limited)).cpu_percent is not None and d.cpu_percent >= 70 and d,
        timeout=20,
        what="the spinning container to show one busy core",
        interval=0.5,
    )
    assert busy.cpu_percent < 100 * 64  # a percentage, not nanoseconds
    uptime = wait_until(
        lambda: only(limited).uptime(datetime.now(UTC)), timeout=10, what="some uptime"
    )
    assert uptime > timedelta(0)

    log = log_showing(limited, spinner.service, marker)
    assert "complaint" in log  # stderr too
    assert limited.runtime.logs(spinner.service, tail=1).strip() in (marker, "complaint")


def test_idle_service_cpu_is_a_number_on_the_second_look(
    limited: Harness, local_registry: LocalRegistry
) -> None:
    marker = f"serving-{uuid.uuid4().hex[:8]}"
    web = httpd(
        local_registry.image,
        command=[
            BUSYBOX,
            "sh",
            "-c",
            f"echo {marker}; exec {BUSYBOX} httpd -f -p {IMAGE_PORT} -h /www",
        ],
    )
    limited.drive([web], is_state(web.service, "running"), "running")
    idle = wait_until(
        lambda: (d := only(limited)).cpu_percent is not None and d,
        timeout=10,
        what="a CPU figure",
        interval=0.2,
    )
    assert idle.cpu_percent is not None and idle.cpu_percent >= 0
    assert idle.memory_bytes is not None and 0 < idle.memory_bytes <= 64 * MIB
    assert marker in log_showing(limited, web.service, marker)


def test_an_exited_container_keeps_its_log_and_has_no_figures(
    harness: Harness, local_registry: LocalRegistry
) -> None:
    crashing = httpd(
        local_registry.image,
        port=None,
        health_path=None,
        command=[BUSYBOX, "sh", "-c", "echo last words; exit 3"],
    )
    harness.drive([crashing], is_state(crashing.service, "exited"), "exited", timeout=30)
    (details,) = harness.runtime.details()
    assert details.state == "exited"
    assert (details.cpu_percent, details.memory_bytes, details.started_at) == (None, None, None)
    assert details.uptime(datetime.now(UTC)) is None
    assert "last words" in harness.runtime.logs(crashing.service)


def test_no_container_yet_is_said_plainly(harness: Harness, local_registry: LocalRegistry) -> None:
    missing = httpd(local_registry.missing_image())
    harness.drive([missing], is_state(missing.service, "error"), "an error")
    (details,) = harness.runtime.details()
    assert (details.service, details.state, details.image) == (
        missing.service,
        "error",
        local_registry.missing_image(),
    )
    assert (details.cpu_percent, details.memory_bytes, details.memory_limit_bytes) == (
        None,
        None,
        None,
    )
    assert harness.runtime.logs(missing.service) == (
        f"No container is running for {missing.service} yet."
    )
    assert "not assigned" in harness.runtime.logs("nobody")
    assert harness.runtime.reconcile([]) == []
    assert harness.runtime.details() == []


def test_details_and_logs_alongside_reconcile(
    harness: Harness, local_registry: LocalRegistry
) -> None:
    """The tray asks from its worker thread while the agent's loop reconciles."""
    first, second = httpd(local_registry.image), httpd(local_registry.image)
    stop = threading.Event()
    failures: list[BaseException] = []
    looks: list[list[ContainerDetails]] = []

    def tray() -> None:
        while not stop.is_set():
            try:
                looks.append(harness.runtime.details())
                for service in (first.service, second.service):
                    harness.runtime.logs(service, tail=5)
                stop.wait(0.01)
            except BaseException as exc:  # reported by the test below
                failures.append(exc)
                return

    thread = threading.Thread(target=tray, daemon=True)
    thread.start()
    try:
        harness.drive(
            [first, second],
            lambda r: all(is_state(s.service, "running")(r) for s in (first, second)),
            "both running",
        )
        wait_until(
            lambda: any(
                all(d.memory_bytes for d in look) and len(look) == 2 for look in looks[-5:]
            ),
            timeout=10,
            what="figures for both containers",
        )
        harness.runtime.reconcile([first])
        harness.runtime.stop_all()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert failures == []


def test_docker_stopped_gives_empty_figures_not_errors(
    stoppable_docker_engine: PrivateDockerd, local_registry: LocalRegistry
) -> None:
    daemon = stoppable_docker_engine
    harness = make_harness(daemon.engine)
    try:
        web = httpd(local_registry.image)
        harness.drive([web], is_state(web.service, "running"), "running")
        assert only(harness).memory_bytes

        daemon.stop()
        # Before the agent's next pass notices, the tray may ask already.
        details = only(harness)
        assert (details.service, details.cpu_percent, details.memory_bytes) == (
            web.service,
            None,
            None,
        )
        assert "Docker" in harness.runtime.logs(web.service)

        harness.runtime.reconcile([web])
        details = only(harness)
        assert (details.state, details.memory_bytes, details.started_at) == ("error", None, None)
        assert "Docker" in harness.runtime.logs(web.service)
    finally:
        harness.runtime.stop_all()
        harness.gateway.close()
