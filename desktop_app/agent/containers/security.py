"""How an assigned service becomes a locked-down container: the Docker create options.

Volunteers are strangers to the pool and the pool's images are strangers to the volunteer,
so every container runs unprivileged with all capabilities dropped (adding back only what
the assignment names), ``no-new-privileges``, no host paths (data paths become named
volumes), the CPU/memory limits the volunteer chose, a process limit, ports published on
127.0.0.1 only, GPUs only for GPU services when the volunteer allows it and the engine can,
and no restart policy (the agent restarts with its own backoff, and must be able to stop
everything on pause or quit).

Pure: :func:`container_spec` turns an assignment into keyword arguments for the Docker SDK's
``containers.create``; every setting is unit-tested and read back from a real engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from shared import ServiceAssignment
from shared.catalog import GRANTABLE_CAPABILITIES

from .errors import CapabilityRefused, GpuNotAvailable

MANAGED_LABEL = "org.rma.managed"
"""Set to ``"true"`` on every container and volume the agent creates."""
SERVICE_LABEL = "org.rma.service"
"""The catalogue name of the service the container runs."""
WORKER_LABEL = "org.rma.worker"
"""The agent instance that owns the container; others' containers are never touched."""
SPEC_LABEL = "org.rma.spec"
"""A hash of the create options: a container whose hash differs is recreated."""

DEFAULT_PIDS_LIMIT = 1024
"""Processes a container may have: enough for servers, not enough for a fork bomb."""
LOG_MAX_SIZE = "10m"
LOG_MAX_FILES = "3"

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True)
class ResourceLimits:
    """What the volunteer lets the pool's containers use."""

    cpus: float | None = None
    """CPU cores each container may use (1.5 = one and a half); None = no limit."""
    memory_bytes: int | None = None
    """Memory each container may use; None = no limit."""
    gpu_allowed: bool = False
    """Whether GPU services may use this machine's GPUs."""
    pids_limit: int = DEFAULT_PIDS_LIMIT
    """Processes each container may have."""

    def __post_init__(self) -> None:
        if self.cpus is not None and not self.cpus > 0:
            raise ValueError("cpus must be positive")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise ValueError("memory_bytes must be positive")
        if self.pids_limit <= 0:
            raise ValueError("pids_limit must be positive")


@dataclass(frozen=True)
class VolumeSpec:
    """A named volume a container gets for one of its data paths."""

    name: str
    """The volume's name, ``rma-<service>-<instance>-<n>``."""
    target: str
    """The path inside the container."""
    labels: dict[str, str] = field(default_factory=dict)
    """The owner labels the volume is created with."""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one service's container."""

    service: str
    image: str
    name: str
    """The container's name, ``rma-<service>-<instance>``."""
    spec_hash: str
    """Changes whenever the create options change."""
    volumes: tuple[VolumeSpec, ...]
    """Named volumes to create before the container."""
    create_kwargs: dict[str, Any]
    """Keyword arguments for ``DockerClient.containers.create(image, **create_kwargs)``."""


def safe_name(service: str) -> str:
    """A Docker-legal name fragment for ``service`` (letters, digits, ``_ . -``)."""
    cleaned = _NAME_UNSAFE.sub("-", service).strip("-_.")
    return cleaned or "service"


def instance_tag(worker: str) -> str:
    """A short, name-safe tag of this agent instance for names.

    Two agents sharing one Docker engine (a server running several workers) never claim
    each other's containers or volumes.
    """
    return safe_name(worker)[:8]


def container_name(service: str, worker: str) -> str:
    """The container name for ``service``: ``rma-<service>-<instance>``."""
    return f"rma-{safe_name(service)}-{instance_tag(worker)}"


def volume_name(service: str, index: int, worker: str) -> str:
    """The ``index``-th data path's volume: ``rma-<service>-<instance>-<n>``."""
    return f"rma-{safe_name(service)}-{instance_tag(worker)}-{index}"


def owner_labels(worker: str) -> dict[str, str]:
    """The labels that mark a container or volume as this agent instance's."""
    return {MANAGED_LABEL: "true", WORKER_LABEL: worker}


def gpu_refusal(limits: ResourceLimits, gpu_runtime: bool) -> str | None:
    """Why a GPU service cannot get a GPU here, as a sentence; None when it can."""
    if not limits.gpu_allowed:
        return "Using the GPU is switched off in this computer's settings."
    if not gpu_runtime:
        return (
            "Docker on this computer has no GPU support: install the NVIDIA Container "
            "Toolkit and restart Docker."
        )
    return None


def _hash(options: dict[str, Any], volumes: tuple[VolumeSpec, ...]) -> str:
    """The options' fingerprint; the names follow from the service and the instance."""
    unnamed = {key: value for key, value in options.items() if key != "name"}
    canonical = json.dumps(
        {"options": unnamed, "volumes": [v.target for v in volumes]},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def container_spec(
    assignment: ServiceAssignment,
    *,
    worker: str,
    limits: ResourceLimits,
    gpu_runtime: bool,
) -> ContainerSpec:
    """The locked-down container for ``assignment``.

    Args:
        assignment: The service the coordinator wants here.
        worker: This agent instance's label value (see :data:`WORKER_LABEL`).
        limits: The volunteer's limits.
        gpu_runtime: Whether the engine can give containers NVIDIA GPUs.

    Returns:
        The container's name, volumes, create options and their hash.

    Raises:
        GpuNotAvailable: The service needs a GPU, and GPUs are not allowed or not possible.
        CapabilityRefused: It asks for a capability outside GRANTABLE_CAPABILITIES. The
            coordinator's catalogue refuses those too; the agent does not rely on it.
    """
    service = assignment.service
    refused = sorted(set(assignment.cap_add) - GRANTABLE_CAPABILITIES)
    if refused:
        raise CapabilityRefused(service, refused)
    volumes = tuple(
        VolumeSpec(
            name=volume_name(service, index, worker),
            target=target,
            labels={**owner_labels(worker), SERVICE_LABEL: service},
        )
        for index, target in enumerate(assignment.volumes)
    )
    options: dict[str, Any] = {
        "name": container_name(service, worker),
        "environment": dict(sorted(assignment.env.items())),
        "privileged": False,
        "cap_drop": ["ALL"],
        "cap_add": sorted(set(assignment.cap_add)),
        "security_opt": ["no-new-privileges:true"],
        # A real PID 1 (docker-init) forwards SIGTERM to the service and reaps zombies, so
        # a graceful stop works even for programs that never expected to be PID 1.
        "init": True,
        "pids_limit": limits.pids_limit,
        "restart_policy": {"Name": "no"},
        "publish_all_ports": False,
        "ports": {},
        # Named volumes go in as Mounts, never Binds: no host path can reach a container.
        "mounts": [
            {"Type": "volume", "Source": v.name, "Target": v.target, "ReadOnly": False}
            for v in volumes
        ],
        # Logs live on the volunteer's disk: cap them.
        "log_config": {
            "type": "json-file",
            "config": {"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILES},
        },
    }
    if assignment.port is not None:
        # Loopback only, host port chosen by Docker: the agent reaches it, the LAN cannot.
        options["ports"] = {f"{assignment.port}/tcp": ("127.0.0.1", None)}
    if assignment.command is not None:
        options["command"] = list(assignment.command)
    if limits.memory_bytes is not None:
        options["mem_limit"] = limits.memory_bytes
    if limits.cpus is not None:
        options["nano_cpus"] = round(limits.cpus * 1e9)
    if assignment.gpu:
        refusal = gpu_refusal(limits, gpu_runtime)
        if refusal is not None:
            raise GpuNotAvailable(service, refusal)
        options["device_requests"] = [{"count": -1, "capabilities": [["gpu"]]}]
    spec_hash = _hash({"image": assignment.image, **options}, volumes)
    options["labels"] = {
        **owner_labels(worker),
        SERVICE_LABEL: service,
        SPEC_LABEL: spec_hash,
    }
    return ContainerSpec(
        service=service,
        image=assignment.image,
        name=options["name"],
        spec_hash=spec_hash,
        volumes=volumes,
        create_kwargs=options,
    )
