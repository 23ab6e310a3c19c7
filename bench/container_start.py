"""Time from assignment to the service answering HTTP, as the worker agent does it.

Two cases, each next to a baseline measured in the same run:

- image present: the agent's ContainerRuntime (reconcile passes at the agent's own cadence,
  health check, locked-down container) against plain ``docker run`` through the SDK plus
  polling the port until it answers;
- pull from a local registry: the same, after removing the image, so both download it.

A private dockerd and a loopback registry holding a small busybox HTTP image (about 9 MB)
are started for the run, as the tests do (Debian's docker.io, docker-registry and
busybox-static). The coordinator's part (the assignment reaching the worker with its next
heartbeat) is not included: it is at most one heartbeat interval, which operators set.

    .venv/bin/python bench/container_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desktop_app.agent.agent import next_reconcile_delay
from desktop_app.agent.containers import (
    ContainerRuntime,
    DockerGateway,
    RuntimeConfig,
)
from shared import ServiceAssignment
from tests.fixtures.container_images import IMAGE_PORT, serve_registry
from tests.fixtures.docker_engine import running_dockerd

AGENT_IDLE_INTERVAL = 2.0  # AgentConfig.reconcile_interval's default
TIMEOUT_S = 120.0


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def until(predicate: Callable[[], bool], what: str, poll: float = 0.01) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(poll)


def baseline_docker_run(client: docker.DockerClient, image: str, pull: bool) -> float:
    """Plain SDK: (pull), run with the port on loopback, poll until it answers."""
    start = time.perf_counter()
    if pull:
        client.images.pull(image)
    container = client.containers.run(
        image, detach=True, ports={f"{IMAGE_PORT}/tcp": ("127.0.0.1", None)}
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"][f"{IMAGE_PORT}/tcp"][0]["HostPort"]
        until(lambda: answers(f"http://127.0.0.1:{port}/health"), "the baseline container")
        return time.perf_counter() - start
    finally:
        container.remove(force=True)


def agent_runtime(runtime: ContainerRuntime, assignment: ServiceAssignment) -> float:
    """The agent's runtime, driven at the agent's cadence, until the service answers."""
    start = time.perf_counter()
    deadline = start + TIMEOUT_S
    while True:
        reports = runtime.reconcile([assignment])
        report = reports[0] if reports else None
        if report is not None and report.state == "running":
            url = runtime.local_url(assignment.service)
            if url is not None and answers(url + "/health"):
                elapsed = time.perf_counter() - start
                break
        if report is not None and report.state == "error":
            raise SystemExit(f"the runtime failed: {report.message}")
        if time.perf_counter() > deadline:
            raise SystemExit("timed out waiting for the runtime's container")
        runtime.wait_for_work(next_reconcile_delay(reports, AGENT_IDLE_INTERVAL))
    runtime.reconcile([])  # take it away again (stops and removes the container)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (5)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with running_dockerd() as daemon, serve_registry(daemon.engine) as registry:
        client = daemon.engine.client()
        runtime = ContainerRuntime(
            DockerGateway(environ={"DOCKER_HOST": daemon.engine.host}),
            RuntimeConfig(worker=f"bench-{uuid.uuid4()}"),
        )
        assignment = ServiceAssignment(
            service="web", image=registry.image, port=IMAGE_PORT, health_path="/health"
        )
        try:
            for round_number in range(args.rounds):
                for pull in (False, True):
                    case = "pull from registry" if pull else "image present"
                    for name, measure in (
                        (
                            "docker run (baseline)",
                            lambda p=pull: baseline_docker_run(client, registry.image, p),
                        ),
                        ("agent runtime", lambda: agent_runtime(runtime, assignment)),
                    ):
                        if pull:
                            with contextlib.suppress(docker.errors.ImageNotFound):
                                client.images.remove(registry.image, force=True)
                        elif not client.images.list(name=registry.image):
                            client.images.pull(registry.image)
                        seconds = measure()
                        results.setdefault(f"{case}|{name}", []).append(seconds)
                print(f"round {round_number + 1}/{args.rounds} done", flush=True)
        finally:
            runtime.stop_all()
            client.close()

    print()
    print(f"{'case':<22}{'method':<24}{'median s':>10}{'min s':>8}{'max s':>8}")
    for key, values in results.items():
        case, method = key.split("|")
        print(
            f"{case:<22}{method:<24}{statistics.median(values):>10.2f}"
            f"{min(values):>8.2f}{max(values):>8.2f}"
        )
    for case in ("image present", "pull from registry"):
        base = statistics.median(results[f"{case}|docker run (baseline)"])
        agent = statistics.median(results[f"{case}|agent runtime"])
        print(f"{case}: agent runtime / docker run = {agent / base:.2f}x (+{agent - base:.2f} s)")
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {args.rounds} rounds per case"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
