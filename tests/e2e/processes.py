"""Real ``rma-coordinator`` and ``rma-worker`` processes, as a user starts them."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.coordinator import free_port, wait_until

BIN = Path(sys.executable).parent


APP_FOLDER = "RMA Compute"
"""The app's folder under each of the XDG folders (``settings.json`` is in the config one)."""


def volunteer_env(home: Path) -> dict[str, str]:
    """The environment of a volunteer whose home, and every XDG folder, is under ``home``."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
    }


def write_settings(config_home: Path, settings: dict[str, Any]) -> Path:
    """Write the app's ``settings.json`` under ``config_home`` (its ``XDG_CONFIG_HOME``)."""
    path = config_home / APP_FOLDER / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))
    return path


def entry_point(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise AssertionError(f"{name} is not installed next to {sys.executable}: pip install -e .")
    return str(path)


@dataclass
class Process:
    """A child process with its output in a file, so a failure can show what it said."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            # The test decides every RMA_* setting; none leak in from the developer's shell.
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("RMA_")},
                **self.env,
            },
        )
        log.close()
        return self

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class CoordinatorProcess(Process):
    port: int = 0
    admin_token: str = ""

    @classmethod
    def create(
        cls, data_dir: Path, admin_token: str, heartbeat_interval: float, port: int | None = None
    ) -> CoordinatorProcess:
        port = port or free_port()
        return cls(
            args=[
                entry_point("rma-coordinator"),
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--heartbeat-interval",
                str(heartbeat_interval),
            ],
            log_path=data_dir.parent / "coordinator.log",
            env={"RMA_ADMIN_TOKEN": admin_token},
            port=port,
            admin_token=admin_token,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CoordinatorProcess:
        super().start()
        wait_until(self._healthy, 20, f"the coordinator to answer; it said:\n{self.output()}")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def workers(self) -> dict[str, dict[str, Any]]:
        response = httpx.get(
            self.url + "/api/admin/workers",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=5,
        )
        response.raise_for_status()
        return {worker["name"]: worker for worker in response.json()["workers"]}


def worker_process(name: str, coordinator_url: str, root: Path) -> Process:
    return Process(
        args=[
            entry_point("rma-worker"),
            "--coordinator",
            coordinator_url,
            "--state-dir",
            str(root / name),
            "--name",
            name,
            "--max-retry-delay",
            "1",
            "--credential-store",
            "file",
        ],
        log_path=root / f"{name}.log",
        # No engine at this socket: the worker must still register and say so.
        env={"DOCKER_HOST": f"unix://{root}/no-docker-here.sock"},
    )


def catalog_coordinator(
    root: Path,
    services: list[dict[str, Any]],
    heartbeat_interval: float = 1.0,
    port: int | None = None,
) -> CoordinatorProcess:
    """A coordinator (not started) with these catalogue ``services`` and a 1 s grace.

    Placement's grace is 1 s, so a service moves at once when its worker pauses or leaves.
    """
    root.mkdir(parents=True, exist_ok=True)
    catalog = root / "catalog.json"
    catalog.write_text(json.dumps({"services": services}))
    coordinator = CoordinatorProcess.create(
        root / "coordinator", secrets.token_urlsafe(24), heartbeat_interval, port
    )
    coordinator.args += ["--catalog", str(catalog)]
    coordinator.env["RMA_PLACEMENT_GRACE"] = "1"
    return coordinator


def web_service(image: str, name: str = "web", **fields: Any) -> dict[str, Any]:
    """A catalogue entry running the tests' busybox HTTP image on every tier."""
    return {
        "name": name,
        "image": image,
        "port": 8080,
        "tiers": [1, 2, 3],
        "health_path": "/health",
        "description": "A small web service for tests and benches.",
        **fields,
    }


def web_service_coordinator(
    root: Path,
    image: str,
    service: str = "web",
    heartbeat_interval: float = 1.0,
    port: int | None = None,
) -> CoordinatorProcess:
    """A coordinator (not started) whose catalogue has one small web service for every tier.

    Heartbeats are every second unless ``heartbeat_interval`` says otherwise.
    """
    return catalog_coordinator(root, [web_service(image, service)], heartbeat_interval, port)
