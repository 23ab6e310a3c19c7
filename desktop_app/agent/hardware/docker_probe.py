"""Whether this machine can run containers, and if not, the one thing that fixes it.

:func:`classify_docker_error` is pure, so every outcome is unit-tested;
:class:`DockerProbe` is the thin adapter that asks the engine through the Docker SDK.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from shared import DockerInfo

logger = logging.getLogger(__name__)

INSTALL_URL = "https://docs.docker.com/get-docker/"
"""Where people get Docker for their operating system."""

_MESSAGE_LIMIT = 1000  # DockerInfo.message max_length

_ENDPOINT_MISSING_PHRASES = (
    "no such file or directory",
    # Windows named pipe absent (pywintypes.error 2); Docker Desktop not started or removed.
    "the system cannot find the file specified",
)
_NOT_ANSWERING_PHRASES = (
    "connection refused",
    "connection aborted",
    "failed to establish a new connection",
    "timed out",
    "read timeout",
    *_ENDPOINT_MISSING_PHRASES,
)
_PERMISSION_PHRASES = ("permission denied", "access is denied")


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and exceptions tucked into ``args``.

    urllib3 keeps the socket error in ``ProtocolError.args`` rather than as a cause.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


def _messages(chain: list[BaseException]) -> str:
    return " | ".join(str(item) for item in chain).lower()


def _truncate(message: str) -> str:
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


def _not_installed_message(os_name: str) -> str:
    if os_name in ("Windows", "Darwin"):
        return (
            "Docker is not installed on this computer. Install Docker Desktop from "
            f"{INSTALL_URL}, start it, then try again."
        )
    return (
        "Docker is not installed on this computer. Install Docker Engine "
        f"({INSTALL_URL}, or your distribution's docker.io package), then try again."
    )


def _not_running_message(os_name: str, docker_host: str | None) -> str:
    if docker_host:
        return (
            f"Docker is not answering at DOCKER_HOST={docker_host}. Start the Docker engine "
            "there, or unset DOCKER_HOST to use this computer's Docker."
        )
    if os_name in ("Windows", "Darwin"):
        return "Docker Desktop is not running. Start Docker Desktop and wait until it is ready."
    return "The Docker engine is not running. Start it with: sudo systemctl start docker"


def _permission_message(os_name: str) -> str:
    if os_name == "Windows":
        return (
            "This Windows account may not use Docker. Add it to the docker-users group "
            "(or run Docker Desktop once as this user), then sign out and back in."
        )
    if os_name == "Darwin":
        return (
            "This account may not use Docker Desktop's socket. Quit and restart Docker "
            "Desktop, signed in as this user."
        )
    return (
        "This user may not use Docker. Run: sudo usermod -aG docker $USER, "
        "then log out and back in."
    )


def classify_docker_error(
    exc: BaseException,
    *,
    os_name: str,
    docker_host: str | None,
    docker_cli_present: bool,
) -> DockerInfo:
    """Turn a failure to reach the Docker engine into a status and a sentence with the fix.

    Args:
        exc: What the Docker SDK raised.
        os_name: ``platform.system()``: decides which fix to suggest.
        docker_host: The ``DOCKER_HOST`` value in effect, or None when unset.
        docker_cli_present: Whether a ``docker`` executable is on PATH.

    Returns:
        ``permission_denied`` when the engine refused this user; ``not_installed`` when
        the default endpoint is missing and there is no docker program and no
        ``DOCKER_HOST``; ``not_running`` when nothing answers; ``error`` otherwise.
    """
    chain = list(_exception_chain(exc))
    text = _messages(chain)
    if any(isinstance(item, PermissionError) for item in chain) or any(
        phrase in text for phrase in _PERMISSION_PHRASES
    ):
        return DockerInfo(
            usable=False, status="permission_denied", message=_permission_message(os_name)
        )
    endpoint_missing = any(isinstance(item, FileNotFoundError) for item in chain) or any(
        phrase in text for phrase in _ENDPOINT_MISSING_PHRASES
    )
    not_answering = endpoint_missing or any(
        isinstance(item, ConnectionError | TimeoutError) for item in chain
    )
    not_answering = not_answering or any(phrase in text for phrase in _NOT_ANSWERING_PHRASES)
    if endpoint_missing and not docker_host and not docker_cli_present:
        return DockerInfo(
            usable=False, status="not_installed", message=_not_installed_message(os_name)
        )
    if not_answering:
        return DockerInfo(
            usable=False,
            status="not_running",
            message=_not_running_message(os_name, docker_host),
        )
    return DockerInfo(
        usable=False,
        status="error",
        message=_truncate(
            f"Docker answered with an error: {exc}. If it persists, restart Docker "
            f"(or reinstall it from {INSTALL_URL})."
        ),
    )


def has_nvidia_runtime(info: Mapping[str, Any]) -> bool:
    """Whether ``docker info`` shows a way to give containers NVIDIA GPUs.

    Args:
        info: The engine's ``/info`` answer.

    Returns:
        True when the ``nvidia`` runtime is registered (NVIDIA container toolkit) or the
        engine discovered CDI devices named ``nvidia.com/gpu=…`` (Docker 28.2+).
    """
    runtimes = info.get("Runtimes")
    if isinstance(runtimes, Mapping) and "nvidia" in runtimes:
        return True
    devices = info.get("DiscoveredDevices")
    if isinstance(devices, list):
        for device in devices:
            if isinstance(device, Mapping) and str(device.get("ID", "")).startswith(
                "nvidia.com/gpu"
            ):
                return True
    return False


def running_docker_info(version: Mapping[str, Any], info: Mapping[str, Any]) -> DockerInfo:
    """The status of an engine that answered.

    Args:
        version: The engine's ``/version`` answer.
        info: The engine's ``/info`` answer.

    Returns:
        A usable ``running`` status with the engine version and GPU runtime flag.
    """
    engine_version = version.get("Version")
    return DockerInfo(
        usable=True,
        status="running",
        version=str(engine_version) if engine_version else None,
        gpu_runtime=has_nvidia_runtime(info),
    )


ClientFactory = Callable[[Mapping[str, str], float], Any]
"""Builds a Docker SDK client from an environment and a timeout in seconds."""


def _sdk_client(environment: Mapping[str, str], timeout: float) -> Any:
    import docker

    return docker.from_env(timeout=int(max(1, round(timeout))), environment=dict(environment))


class DockerProbe:
    """Asks the Docker engine (as ``DOCKER_HOST`` or the OS default says) whether it runs."""

    def __init__(
        self,
        timeout_s: float = 10.0,
        environ: Mapping[str, str] | None = None,
        client_factory: ClientFactory = _sdk_client,
        which: Callable[[str], str | None] = shutil.which,
        os_name: Callable[[], str] = platform.system,
    ) -> None:
        """Create the probe. Nothing is contacted until :meth:`probe`.

        Args:
            timeout_s: How long to wait for the engine per request.
            environ: The environment to read ``DOCKER_HOST`` and friends from; None reads
                ``os.environ`` at probe time.
            client_factory: Builds the SDK client (tests may inject one).
            which: Finds an executable on PATH.
            os_name: Returns ``platform.system()``.
        """
        self._timeout_s = timeout_s
        self._environ = environ
        self._client_factory = client_factory
        self._which = which
        self._os_name = os_name

    def probe(self) -> DockerInfo:
        """Ask the engine now; never raises for an engine that is missing or refuses."""
        environment = dict(os.environ if self._environ is None else self._environ)
        client: Any = None
        try:
            client = self._client_factory(environment, self._timeout_s)
            version = client.version()
            info = client.info()
        except Exception as exc:  # every failure becomes a status and a sentence
            logger.info("Docker is not usable: %s", exc)
            return classify_docker_error(
                exc,
                os_name=self._os_name(),
                docker_host=environment.get("DOCKER_HOST") or None,
                docker_cli_present=self._which("docker") is not None,
            )
        finally:
            if client is not None:
                client.close()
        return running_docker_info(version, info)
