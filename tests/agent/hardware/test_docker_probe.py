"""Docker status: the pure classification for every branch, then the probe for real."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
import urllib3.exceptions

from desktop_app.agent.hardware.docker_probe import (
    INSTALL_URL,
    DockerProbe,
    classify_docker_error,
    has_nvidia_runtime,
    running_docker_info,
)
from shared import WorkerCapabilities
from tests.fixtures.docker_engine import DockerEngine


def sdk_error(root: BaseException, *, message: str | None = None) -> docker.errors.DockerException:
    """An exception chained the way docker-py 7 + requests + urllib3 chain a socket error."""
    protocol = urllib3.exceptions.ProtocolError("Connection aborted.", root)
    try:
        try:
            raise protocol
        except urllib3.exceptions.ProtocolError as exc:
            raise requests.exceptions.ConnectionError(exc) from exc
    except requests.exceptions.ConnectionError as exc:
        wrapped = docker.errors.DockerException(
            message or f"Error while fetching server API version: {exc}"
        )
        wrapped.__cause__ = exc
        return wrapped


MISSING = sdk_error(FileNotFoundError(2, "No such file or directory"))
REFUSED = sdk_error(ConnectionRefusedError(111, "Connection refused"))
DENIED = sdk_error(PermissionError(13, "Permission denied"))


def classify(exc: BaseException, **overrides: Any) -> Any:
    options: dict[str, Any] = {"os_name": "Linux", "docker_host": None, "docker_cli_present": True}
    options.update(overrides)
    return classify_docker_error(exc, **options)


@pytest.mark.parametrize("os_name", ["Linux", "Windows", "Darwin"])
def test_permission_denied(os_name: str) -> None:
    info = classify(DENIED, os_name=os_name)
    assert (info.usable, info.status) == (False, "permission_denied")
    assert info.message
    if os_name == "Linux":
        assert "sudo usermod -aG docker $USER, then log out and back in" in info.message


def test_permission_denied_from_message_only() -> None:
    exc = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', "
        "PermissionError(13, 'Permission denied'))"
    )
    assert classify(exc).status == "permission_denied"


def test_windows_pipe_access_denied() -> None:
    exc = docker.errors.DockerException(
        "Error while fetching server API version: (5, 'CreateFile', 'Access is denied.')"
    )
    assert classify(exc, os_name="Windows").status == "permission_denied"


def test_not_installed_needs_no_cli_no_socket_and_no_docker_host() -> None:
    info = classify(MISSING, docker_cli_present=False)
    assert (info.usable, info.status) == (False, "not_installed")
    assert info.message and INSTALL_URL in info.message


@pytest.mark.parametrize("os_name", ["Windows", "Darwin"])
def test_not_installed_on_desktop_os_says_docker_desktop(os_name: str) -> None:
    info = classify(MISSING, os_name=os_name, docker_cli_present=False)
    assert info.status == "not_installed"
    assert info.message and "Docker Desktop" in info.message and INSTALL_URL in info.message


def test_windows_missing_named_pipe_is_not_installed() -> None:
    exc = docker.errors.DockerException(
        "Error while fetching server API version: "
        "(2, 'CreateFile', 'The system cannot find the file specified.')"
    )
    assert classify(exc, os_name="Windows", docker_cli_present=False).status == "not_installed"


def test_missing_socket_with_cli_installed_is_not_running() -> None:
    info = classify(MISSING)
    assert info.status == "not_running"
    assert info.message == (
        "The Docker engine is not running. Start it with: sudo systemctl start docker"
    )


@pytest.mark.parametrize("os_name", ["Windows", "Darwin"])
def test_not_running_on_desktop_os_says_start_docker_desktop(os_name: str) -> None:
    info = classify(REFUSED, os_name=os_name)
    assert info.status == "not_running"
    assert info.message and info.message.startswith("Docker Desktop is not running.")
    assert "Start Docker Desktop" in info.message


def test_connection_refused_without_cli_is_still_not_running() -> None:
    # Something is there (a socket that refuses), so Docker is installed but stopped.
    assert classify(REFUSED, docker_cli_present=False).status == "not_running"


def test_missing_socket_named_by_docker_host_is_not_running() -> None:
    info = classify(MISSING, docker_host="unix:///nowhere.sock", docker_cli_present=False)
    assert info.status == "not_running"
    assert info.message and "DOCKER_HOST=unix:///nowhere.sock" in info.message


def test_tcp_refused_and_timeouts_are_not_running() -> None:
    timeout = requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)")
    assert classify(timeout).status == "not_running"
    assert classify(TimeoutError()).status == "not_running"


def test_anything_else_is_error_with_the_reason() -> None:
    exc = docker.errors.APIError('500 Server Error: Internal Server Error ("storage full")')
    info = classify(exc)
    assert (info.usable, info.status) == (False, "error")
    assert info.message and "storage full" in info.message


def test_error_message_fits_the_protocol() -> None:
    info = classify(RuntimeError("x" * 5000))
    assert info.status == "error"
    assert info.message and len(info.message) <= 1000
    WorkerCapabilities(docker=info)


def test_running_info_and_gpu_runtime() -> None:
    plain = running_docker_info({"Version": "27.3.1"}, {"Runtimes": {"runc": {"path": "runc"}}})
    assert (plain.usable, plain.status, plain.version, plain.gpu_runtime) == (
        True,
        "running",
        "27.3.1",
        False,
    )
    toolkit = {"Runtimes": {"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}}}
    assert has_nvidia_runtime(toolkit)
    cdi = {
        "Runtimes": {"runc": {}},
        "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=0"}],
    }
    assert has_nvidia_runtime(cdi)
    assert not has_nvidia_runtime({"DiscoveredDevices": [{"Source": "cdi", "ID": "amd.com/gpu=0"}]})
    assert not has_nvidia_runtime({})


class FakeClient:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.closed = False

    def version(self) -> Mapping[str, Any]:
        if self.fail:
            raise self.fail
        return {"Version": "26.1.5"}

    def info(self) -> Mapping[str, Any]:
        return {"Runtimes": {"nvidia": {}}}

    def close(self) -> None:
        self.closed = True


def test_probe_closes_the_client_on_success_and_failure() -> None:
    for fail, status in ((None, "running"), (REFUSED, "not_running")):
        client = FakeClient(fail)
        probe = DockerProbe(
            environ={}, client_factory=lambda _env, _timeout, c=client: c, os_name=lambda: "Linux"
        )
        assert probe.probe().status == status
        assert client.closed


def test_probe_passes_the_environment_and_reads_docker_host() -> None:
    seen: list[Mapping[str, str]] = []

    def factory(env: Mapping[str, str], _timeout: float) -> Any:
        seen.append(env)
        raise MISSING

    info = DockerProbe(
        environ={"DOCKER_HOST": "unix:///x.sock"}, client_factory=factory, which=lambda _n: None
    ).probe()
    assert seen == [{"DOCKER_HOST": "unix:///x.sock"}]
    assert info.status == "not_running"  # DOCKER_HOST set: not "not installed"


@pytest.fixture
def refusing_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real unix socket that is bound but never listens: connecting is refused."""
    path = Path(tmp_path_factory.mktemp("s", numbered=True)) / "d.sock"
    if len(str(path)) > 100:
        pytest.skip("temporary path too long for a unix socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    yield path
    server.close()


def test_real_refused_socket_is_not_running(
    refusing_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{refusing_socket}")
    info = DockerProbe(timeout_s=5).probe()
    assert info.status == "not_running"


@pytest.mark.docker
def test_missing_socket_is_not_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    info = DockerProbe(timeout_s=5).probe()
    assert (info.usable, info.status) == (False, "not_running")
    assert info.message and "DOCKER_HOST=" in info.message


@pytest.mark.docker
def test_real_engine_is_running(
    docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    info = DockerProbe(timeout_s=10).probe()
    assert (info.usable, info.status, info.message) == (True, "running", None)
    client = docker_engine.client()
    try:
        assert info.version == client.version()["Version"]
        assert info.gpu_runtime == has_nvidia_runtime(client.info())
    finally:
        client.close()
