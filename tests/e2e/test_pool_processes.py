"""The whole pool as users run it: real coordinator and worker processes on loopback."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shared import WorkerCapabilities
from tests.e2e.processes import CoordinatorProcess, Process, entry_point, worker_process
from tests.fixtures.coordinator import wait_until

pytestmark = pytest.mark.e2e

INTERVAL = 1.0


def test_register_restart_crash_and_leave(tmp_path: Path, processes: list[Process]) -> None:
    coordinator = CoordinatorProcess.create(
        tmp_path / "coordinator", secrets.token_urlsafe(24), INTERVAL
    )
    processes.append(coordinator.start())
    alice = worker_process("alice", coordinator.url, tmp_path)
    bob = worker_process("bob", coordinator.url, tmp_path)
    processes += [alice.start(), bob.start()]

    def both_online() -> dict[str, str] | None:
        workers = coordinator.workers()
        if {"alice", "bob"} <= workers.keys() and all(
            workers[name]["status"] == "online" for name in ("alice", "bob")
        ):
            return {name: workers[name]["worker_id"] for name in ("alice", "bob")}
        return None

    ids = wait_until(both_online, 20, "both workers to register")
    assert "Docker is not available" in alice.output(), "a worker without Docker says so"

    # Restart the coordinator on the same data dir: nothing is lost, nobody goes offline.
    coordinator.stop()
    coordinator.start()
    deadline = time.monotonic() + 4 * INTERVAL
    while time.monotonic() < deadline:
        workers = coordinator.workers()
        assert {name: workers[name]["worker_id"] for name in ("alice", "bob")} == ids
        assert {workers[name]["status"] for name in ("alice", "bob")} == {"online"}
        time.sleep(0.2)

    # A worker that dies without a word goes offline after three missed intervals.
    alice.popen.kill()  # type: ignore[union-attr]
    killed_at = time.monotonic()
    wait_until(
        lambda: coordinator.workers()["alice"]["status"] == "offline",
        10,
        "the killed worker to go offline",
    )
    silent_for = time.monotonic() - killed_at
    assert silent_for >= 3 * INTERVAL - 1.2, f"offline too soon ({silent_for:.1f} s)"
    assert coordinator.workers()["bob"]["status"] == "online"
    assert "is offline: no heartbeat" in coordinator.output()

    # SIGTERM: the worker leaves the pool and exits 0.
    bob.signal(signal.SIGTERM)
    assert bob.wait(15) == 0
    assert "bob" not in coordinator.workers()
    assert "Left the pool" in bob.output()


def test_test_capabilities_prints_protocol_json(tmp_path: Path) -> None:
    result = subprocess.run(
        [entry_point("rma-worker"), "--test-capabilities"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
        check=True,
    )
    capabilities = WorkerCapabilities.model_validate(json.loads(result.stdout))
    assert capabilities.cpu_cores and capabilities.cpu_cores > 0
    assert capabilities.ram and capabilities.ram > 0
    assert capabilities.docker is not None and capabilities.docker.status == "not_running"
    assert "Docker" in result.stderr


def test_generated_admin_token(tmp_path: Path, processes: list[Process]) -> None:
    data_dir = tmp_path / "data"
    coordinator = CoordinatorProcess.create(data_dir, "", INTERVAL)
    coordinator.env = {}  # no RMA_ADMIN_TOKEN: one is generated
    processes.append(coordinator.start())
    token_file = data_dir / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert str(token_file) in coordinator.output(), "the token's path is logged"
    coordinator.admin_token = token_file.read_text().strip()
    assert coordinator.workers() == {}


def test_desktop_entry_point_answers_help_and_version() -> None:
    for flag, phrase in (("--help", "--show"), ("--version", "rma-desktop")):
        result = subprocess.run(
            [entry_point("rma-desktop"), flag], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert phrase in result.stdout
