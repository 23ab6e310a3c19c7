"""The thin adapter between the container runtime and the Docker engine (the docker SDK).

The only module of the runtime that imports ``docker``. Every method either does what it
says or raises a :class:`~desktop_app.agent.containers.errors.ContainerRuntimeError` with a
plain sentence: :class:`DockerUnavailable` (classified by
:func:`~desktop_app.agent.hardware.docker_probe.classify_docker_error`) whenever the
engine cannot be reached, so callers never see SDK or ``requests`` exceptions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import requests

from shared import DockerInfo

from ..hardware.docker_probe import classify_docker_error, running_docker_info
from .errors import (
    DockerOperationFailed,
    DockerUnavailable,
    ImageNotFound,
    NotEnoughDisk,
    PullCancelled,
    PullFailed,
)
from .progress import PullProgress, PullProgressTracker
from .stats import ContainerSample, parse_docker_time, sample_from_stats

logger = logging.getLogger(__name__)

_NOT_FOUND_PHRASES = (
    "manifest unknown",
    "not found",
    "repository does not exist",
    "pull access denied",
    "name unknown",
)

_ONE_SHOT_API = "1.41"
"""The first engine API version that reads stats once instead of waiting two cycles."""

_UNREACHABLE = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
"""What the SDK raises when it cannot talk to the engine (``APIError``, a subclass of
``DockerException``, means the engine answered, and is caught before these)."""

ClientFactory = Callable[[Mapping[str, str], float], Any]
"""Builds a Docker SDK client from an environment and a timeout in seconds."""


def _sdk_client(environment: Mapping[str, str], timeout: float) -> Any:
    return docker.from_env(timeout=int(max(1, round(timeout))), environment=dict(environment))


@dataclass(frozen=True)
class ContainerInfo:
    """What the engine says about one container (from ``docker inspect``)."""

    id: str
    name: str
    image: str
    """The image reference it was created from."""
    labels: Mapping[str, str]
    status: str
    """Docker's state: ``created``, ``running``, ``paused``, ``restarting``, ``removing``,
    ``exited`` or ``dead``."""
    exit_code: int | None = None
    """The last exit code, when it has stopped."""
    oom_killed: bool = False
    """Whether the kernel killed it for going over its memory limit."""
    finished_at: str | None = None
    """When it last stopped (Docker's timestamp), to tell one exit from the next."""
    health: str | None = None
    """The image's own HEALTHCHECK status, when it has one."""
    host_ports: Mapping[int, int] = field(default_factory=dict)
    """Container TCP port → host port, for ports published on 127.0.0.1."""
    started_at: datetime | None = None
    """When it last started (aware, UTC), or None when it never did."""


def _container_info(attrs: Mapping[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    host_ports: dict[int, int] = {}
    for key, bindings in ports.items():
        number, _, protocol = str(key).partition("/")
        if protocol != "tcp" or not bindings:
            continue
        for binding in bindings:
            if binding.get("HostIp") == "127.0.0.1" and str(binding.get("HostPort", "")).isdigit():
                host_ports[int(number)] = int(binding["HostPort"])
                break
    health = state.get("Health")
    health_status = health.get("Status") if isinstance(health, Mapping) else None
    finished = str(state.get("FinishedAt") or "")
    exit_code = state.get("ExitCode")
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        labels=dict(config.get("Labels") or {}),
        status=str(state.get("Status", "")),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        oom_killed=bool(state.get("OOMKilled")),
        # Docker says 0001-01-01 for "never".
        finished_at=finished if finished and not finished.startswith("0001") else None,
        health=str(health_status) if health_status else None,
        host_ports=host_ports,
        started_at=parse_docker_time(state.get("StartedAt")),
    )


def _explanation(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def _label_filter(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{key}={value}" for key, value in sorted(labels.items())]}


class DockerGateway:
    """Talks to one Docker engine, as ``DOCKER_HOST`` (or the OS default) says."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        pull_timeout_s: float = 300.0,
        client_factory: ClientFactory = _sdk_client,
        which: Callable[[str], str | None] = shutil.which,
        os_name: Callable[[], str] = platform.system,
    ) -> None:
        """Create the gateway. Nothing is contacted until a method is called.

        Args:
            environ: The environment to read ``DOCKER_HOST`` and friends from; None reads
                ``os.environ`` when a client is made.
            timeout_s: How long to wait for the engine per request (a stop adds its own
                grace time).
            pull_timeout_s: How long a download may go without any word from the engine.
            client_factory: Builds the SDK client (tests may inject one).
            which: Finds an executable on PATH (to tell "not installed" apart).
            os_name: Returns ``platform.system()`` (to pick the fix to suggest).
        """
        self._environ = environ
        self._timeout_s = timeout_s
        self._pull_timeout_s = pull_timeout_s
        self._client_factory = client_factory
        self._which = which
        self._os_name = os_name
        self._client: Any = None
        self._lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        return dict(os.environ if self._environ is None else self._environ)

    def _unavailable(self, exc: BaseException) -> DockerUnavailable:
        environment = self._environment()
        info = classify_docker_error(
            exc,
            os_name=self._os_name(),
            docker_host=environment.get("DOCKER_HOST") or None,
            docker_cli_present=self._which("docker") is not None,
        )
        return DockerUnavailable(info)

    def _sdk(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(self._environment(), self._timeout_s)
            return self._client

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    @contextlib.contextmanager
    def _engine(self) -> Iterator[Any]:
        """Yield the SDK client; turn "cannot reach the engine" into DockerUnavailable.

        ``docker.errors.APIError`` (the engine answered with an error) passes through for
        the caller to name.
        """
        try:
            yield self._sdk()
        except docker.errors.APIError:
            raise
        except _UNREACHABLE as exc:
            # Start afresh next time: the engine may come back as another version.
            self._drop_client()
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """Close the connection to the engine (a later call opens a new one)."""
        self._drop_client()

    # -- the engine --------------------------------------------------------------------------

    def engine_status(self) -> DockerInfo:
        """Ask the engine whether it runs; never raises.

        Returns:
            A usable ``running`` status (version, GPU runtime), or why Docker is unusable
            with the sentence that fixes it.
        """
        try:
            with self._engine() as client:
                return running_docker_info(client.version(), client.info())
        except DockerUnavailable as exc:
            return exc.info
        except docker.errors.APIError as exc:
            return self._unavailable(exc).info

    def free_disk_bytes(self) -> int | None:
        """Free bytes on the disk holding Docker's data root, or None when not measurable.

        Only measurable when the engine runs on this computer and its data root is visible
        here (not for a remote ``DOCKER_HOST``, nor inside Docker Desktop's VM).

        Raises:
            DockerUnavailable: The engine cannot be reached.
        """
        host = self._environment().get("DOCKER_HOST", "")
        if host and not host.startswith(("unix://", "npipe://")):
            return None
        try:
            with self._engine() as client:
                root = client.info().get("DockerRootDir")
        except docker.errors.APIError as exc:
            logger.info("Could not ask Docker for its data folder: %s", _explanation(exc))
            return None
        if not root or not Path(root).is_dir():
            return None
        return shutil.disk_usage(root).free

    def ensure_free_disk(self, needed: int, image: str) -> None:
        """Check that Docker's disk has ``needed`` bytes free (when it can be measured).

        Args:
            needed: Bytes the service needs.
            image: The image about to be downloaded, for the message.

        Raises:
            NotEnoughDisk: Less is free.
            DockerUnavailable: The engine cannot be reached.
        """
        free = self.free_disk_bytes()
        if free is not None and free < needed:
            raise NotEnoughDisk(image, needed, free)

    # -- images ------------------------------------------------------------------------------

    def image_present(self, image: str) -> bool:
        """Whether the engine already has ``image``.

        Raises:
            DockerUnavailable: The engine cannot be reached.
        """
        try:
            with self._engine() as client:
                client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return False
            raise DockerOperationFailed(f"look up the image {image}", _explanation(exc)) from exc
        return True

    def pull(
        self,
        image: str,
        on_progress: Callable[[PullProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Download ``image``, reporting summed per-layer progress as it goes.

        Uses a connection of its own, so it can run on a background thread while other
        calls go on.

        Args:
            image: The image reference (``registry/repo:tag`` or ``…@sha256:…``).
            on_progress: Called after each progress event.
            cancel: When set, the download is abandoned at the next event.

        Raises:
            ImageNotFound: The registry has no such image.
            PullFailed: The download failed otherwise.
            PullCancelled: ``cancel`` was set.
            DockerUnavailable: The engine cannot be reached.
        """
        tracker = PullProgressTracker()
        client: Any = None
        try:
            try:
                client = self._client_factory(self._environment(), self._pull_timeout_s)
                for event in client.api.pull(image, stream=True, decode=True):
                    if cancel is not None and cancel.is_set():
                        raise PullCancelled(image)
                    if not isinstance(event, Mapping):
                        continue
                    error = event.get("error")
                    if error:
                        text = str(error)
                        if any(phrase in text.lower() for phrase in _NOT_FOUND_PHRASES):
                            raise ImageNotFound(image)
                        raise PullFailed(image, text)
                    progress = tracker.update(event)
                    if on_progress is not None:
                        on_progress(progress)
            except docker.errors.NotFound as exc:
                raise ImageNotFound(image) from exc
            except docker.errors.APIError as exc:
                text = _explanation(exc)
                if any(phrase in text.lower() for phrase in _NOT_FOUND_PHRASES):
                    raise ImageNotFound(image) from exc
                raise PullFailed(image, text) from exc
            except _UNREACHABLE as exc:
                raise self._unavailable(exc) from exc
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    # -- containers --------------------------------------------------------------------------

    def create_container(self, image: str, options: Mapping[str, Any]) -> str:
        """Create (not start) a container; returns its id.

        Args:
            image: The image, which must be present.
            options: Keyword arguments for ``containers.create`` (see ``security.py``).

        Raises:
            ImageNotFound: The image is not on the engine.
            DockerOperationFailed: Docker refused (a name in use, a bad option, …).
            DockerUnavailable: The engine cannot be reached.
        """
        name = options.get("name", image)
        try:
            with self._engine() as client:
                container = client.containers.create(image, **options)
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(image) from exc
        except docker.errors.APIError as exc:
            reason = _explanation(exc)
            if exc.status_code == 409:
                reason = (
                    f"a container named {name} already exists that this agent did not "
                    "create; remove it (docker rm -f " + str(name) + ")"
                )
            raise DockerOperationFailed(f"create the container {name}", reason) from exc
        return str(container.id)

    def start_container(self, container_id: str) -> None:
        """Start a created or stopped container.

        Raises:
            DockerOperationFailed: Docker refused (or the container is gone).
            DockerUnavailable: The engine cannot be reached.
        """
        try:
            with self._engine() as client:
                client.api.start(container_id)
        except docker.errors.APIError as exc:
            raise DockerOperationFailed(
                f"start the container {container_id[:12]}", _explanation(exc)
            ) from exc

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """Every container (running or not) carrying all of ``labels``.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                containers = client.containers.list(
                    all=True, filters=_label_filter(labels), ignore_removed=True
                )
        except docker.errors.APIError as exc:
            raise DockerOperationFailed("list containers", _explanation(exc)) from exc
        return [_container_info(container.attrs) for container in containers]

    def inspect_container(self, container_id: str) -> ContainerInfo | None:
        """The container's state now, or None when it no longer exists.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                attrs = client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise DockerOperationFailed(
                f"inspect the container {container_id[:12]}", _explanation(exc)
            ) from exc
        return _container_info(attrs)

    def container_stats(self, container_id: str) -> ContainerSample | None:
        """Read the container's CPU and memory counters once.

        On an engine older than API 1.41 (Docker 20.10) the engine cannot read just once
        and takes about 2 s to answer (it waits for two of its 1 s collection cycles).

        Returns:
            The sample, or None when the container is gone or not running.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                api = client.api
                if docker.utils.version_lt(api.api_version, _ONE_SHOT_API):
                    raw = api.stats(container_id, stream=False)
                else:
                    raw = api.stats(container_id, stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removal in progress
                return None
            raise DockerOperationFailed(
                f"read the usage of the container {container_id[:12]}", _explanation(exc)
            ) from exc
        if not isinstance(raw, Mapping):
            return None
        return sample_from_stats(raw, time.monotonic())

    def container_logs(self, container_id: str, tail: int) -> str | None:
        """The last ``tail`` lines the container wrote (stdout and stderr, interleaved).

        Args:
            container_id: The container.
            tail: How many lines from the end.

        Returns:
            The text (bytes that are not UTF-8 replaced), or None when the container is
            gone.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused (e.g. a log driver that keeps no log).
        """
        try:
            with self._engine() as client:
                raw = client.api.logs(
                    container_id,
                    stdout=True,
                    stderr=True,
                    stream=False,
                    timestamps=False,
                    tail=max(0, tail),
                )
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise DockerOperationFailed(
                f"read the log of the container {container_id[:12]}", _explanation(exc)
            ) from exc
        if isinstance(raw, bytes):
            return raw.decode("utf-8", errors="replace")
        return str(raw)

    def stop_container(self, container_id: str, timeout_s: float) -> None:
        """Stop gracefully: SIGTERM (or the image's stop signal), SIGKILL after ``timeout_s``.

        A container that is gone or already stopped is fine.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                # The SDK adds this grace time to its own HTTP timeout.
                client.api.stop(container_id, timeout=max(0, round(timeout_s)))
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 304:  # already stopped
                return
            raise DockerOperationFailed(
                f"stop the container {container_id[:12]}", _explanation(exc)
            ) from exc

    def remove_container(self, container_id: str) -> None:
        """Remove a container (killing it if it still runs); keeps its named volumes.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                client.api.remove_container(container_id, force=True, v=False)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in _explanation(exc):
                return
            raise DockerOperationFailed(
                f"remove the container {container_id[:12]}", _explanation(exc)
            ) from exc

    # -- volumes -----------------------------------------------------------------------------

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        """Create the named volume unless it exists.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                try:
                    client.volumes.get(name)
                except docker.errors.NotFound:
                    client.volumes.create(name=name, labels=dict(labels))
        except docker.errors.APIError as exc:
            raise DockerOperationFailed(f"create the volume {name}", _explanation(exc)) from exc

    def list_volumes(self, labels: Mapping[str, str]) -> list[str]:
        """The names of the volumes carrying all of ``labels``.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused.
        """
        try:
            with self._engine() as client:
                volumes = client.volumes.list(filters=_label_filter(labels))
        except docker.errors.APIError as exc:
            raise DockerOperationFailed("list volumes", _explanation(exc)) from exc
        return sorted(str(volume.name) for volume in volumes)

    def remove_volume(self, name: str) -> None:
        """Remove a named volume and its data; a missing volume is fine.

        Raises:
            DockerUnavailable: The engine cannot be reached.
            DockerOperationFailed: Docker refused (e.g. a container still uses it).
        """
        try:
            with self._engine() as client:
                client.api.remove_volume(name)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise DockerOperationFailed(f"remove the volume {name}", _explanation(exc)) from exc
