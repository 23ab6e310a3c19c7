"""Run the pool's service containers through Docker, safely, and report how each one does.

:class:`ContainerRuntime` is the entry point; :class:`DockerGateway` is its adapter to the
Docker engine; ``security.py`` holds the locked-down create options.
"""

from .errors import (
    CapabilityRefused,
    ContainerRuntimeError,
    DockerOperationFailed,
    DockerUnavailable,
    GpuNotAvailable,
    ImageNotFound,
    NotEnoughDisk,
    PullCancelled,
    PullFailed,
)
from .gateway import ContainerInfo, DockerGateway
from .progress import PullProgress, PullProgressTracker
from .runtime import ContainerRuntime, ReportsListener, RuntimeConfig
from .security import ContainerSpec, ResourceLimits, container_spec
from .stats import ContainerDetails, ContainerSample, CpuMeter, cpu_percent, memory_used_bytes

__all__ = [
    "CapabilityRefused",
    "ContainerDetails",
    "ContainerInfo",
    "ContainerRuntime",
    "ContainerRuntimeError",
    "ContainerSample",
    "ContainerSpec",
    "CpuMeter",
    "DockerGateway",
    "DockerOperationFailed",
    "DockerUnavailable",
    "GpuNotAvailable",
    "ImageNotFound",
    "NotEnoughDisk",
    "PullCancelled",
    "PullFailed",
    "PullProgress",
    "PullProgressTracker",
    "ReportsListener",
    "ResourceLimits",
    "RuntimeConfig",
    "container_spec",
    "cpu_percent",
    "memory_used_bytes",
]
