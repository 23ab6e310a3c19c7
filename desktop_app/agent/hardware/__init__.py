"""What this machine can offer the pool: CPU, memory, disk, GPUs and Docker.

:class:`CapabilityProbe` is the one entry point; it combines the host, GPU and Docker
adapters into the protocol's :class:`shared.WorkerCapabilities` plus sentences for people
(what ``rma-worker --test-capabilities`` prints).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

from shared import WorkerCapabilities

from .docker_probe import DockerProbe, classify_docker_error
from .gpu import CompositeGpuProbe, GpuProbe, GpuProbeResult, NullGpuProbe
from .gpu_amd import AmdGpuProbe
from .gpu_apple import AppleGpuProbe
from .gpu_nvidia import NvidiaGpuProbe
from .host import HostFacts, HostProbe

__all__ = [
    "AmdGpuProbe",
    "AppleGpuProbe",
    "CapabilityProbe",
    "CompositeGpuProbe",
    "DockerProbe",
    "GpuProbe",
    "GpuProbeResult",
    "HostFacts",
    "HostProbe",
    "NullGpuProbe",
    "NvidiaGpuProbe",
    "ProbeReport",
    "classify_docker_error",
    "default_gpu_probe",
]


def default_gpu_probe(system: str | None = None) -> GpuProbe:
    """The GPU backends that can apply on this operating system, combined.

    Args:
        system: ``platform.system()``; None reads it.

    Returns:
        NVIDIA and AMD on Linux, NVIDIA on Windows, Apple on macOS; a probe that says GPU
        detection is unavailable anywhere else.
    """
    system = platform.system() if system is None else system
    if system == "Linux":
        return CompositeGpuProbe([NvidiaGpuProbe(), AmdGpuProbe()])
    if system == "Windows":
        return CompositeGpuProbe([NvidiaGpuProbe()])
    if system == "Darwin":
        return CompositeGpuProbe([AppleGpuProbe()])
    return NullGpuProbe(f"GPU detection is not available on {system or 'this system'}.")


@dataclass(frozen=True)
class ProbeReport:
    """Everything the capability probe found."""

    capabilities: WorkerCapabilities
    """What is sent to the coordinator."""
    notes: list[str] = field(default_factory=list)
    """Sentences for people about what could not be used, and how to fix it."""


class CapabilityProbe:
    """The facade over the host, GPU and Docker probes."""

    def __init__(
        self,
        host: HostProbe | None = None,
        gpu: GpuProbe | None = None,
        docker: DockerProbe | None = None,
    ) -> None:
        """Create the probe. Nothing is read until :meth:`probe`.

        Args:
            host: CPU, memory, disk and OS; default :class:`HostProbe`.
            gpu: GPUs; default :func:`default_gpu_probe`.
            docker: The container engine; default :class:`DockerProbe`.
        """
        self._host = host if host is not None else HostProbe()
        self._gpu = gpu if gpu is not None else default_gpu_probe()
        self._docker = docker if docker is not None else DockerProbe()

    def probe(self, disk_path: Path) -> ProbeReport:
        """Read everything now. Blocks for up to the Docker timeout; not for a UI thread.

        Args:
            disk_path: Where containers would keep their data (free space is reported).

        Returns:
            The capabilities and the notes.
        """
        host = self._host.probe(disk_path)
        gpus = self._gpu.probe()
        docker = self._docker.probe()
        notes = list(gpus.notes)
        if not docker.usable and docker.message:
            notes.append(docker.message)
        capabilities = WorkerCapabilities(
            cpu_cores=host.cpu_cores,
            cpu_physical_cores=host.cpu_physical_cores,
            cpu_model=host.cpu_model[:256] if host.cpu_model else None,
            ram=host.ram,
            storage=host.storage,
            os=host.os,
            os_version=host.os_version,
            arch=host.arch,
            gpus=gpus.gpus[:64],
            docker=docker,
        )
        return ProbeReport(capabilities=capabilities, notes=notes)
