"""The GPU probe interface, its result, and the probes that combine or stand in for backends.

Each vendor backend lives in its own module (``gpu_nvidia``, ``gpu_amd``, ``gpu_apple``);
:func:`desktop_app.agent.hardware.default_gpu_probe` picks the ones that apply here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared import GpuInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuProbeResult:
    """The GPUs a probe found and plain sentences about what it could not see."""

    gpus: list[GpuInfo] = field(default_factory=list)
    """Every GPU found; empty when none."""
    notes: list[str] = field(default_factory=list)
    """Sentences for people, e.g. ``"No NVIDIA driver found (NVML is not installed)."``."""


class GpuProbe(Protocol):
    """Finds the GPUs of one kind (or of all kinds, for the composite)."""

    def probe(self) -> GpuProbeResult:
        """Look for GPUs now. Never raises for a missing driver; says so in the notes."""
        ...


class NullGpuProbe:
    """Stands in where no backend applies; says so plainly."""

    def __init__(self, reason: str) -> None:
        """Create the probe.

        Args:
            reason: The sentence to report, e.g. why GPUs cannot be detected here.
        """
        self._reason = reason

    def probe(self) -> GpuProbeResult:
        """Report no GPUs and the reason."""
        return GpuProbeResult(gpus=[], notes=[self._reason])


class CompositeGpuProbe:
    """Runs several backends and merges what they found.

    A backend that fails unexpectedly is reported in the notes; the others still run.
    """

    def __init__(self, backends: Sequence[GpuProbe]) -> None:
        """Create the probe.

        Args:
            backends: The backends to run, in order.
        """
        self._backends = tuple(backends)

    def probe(self) -> GpuProbeResult:
        """Run every backend and merge their GPUs and notes."""
        gpus: list[GpuInfo] = []
        notes: list[str] = []
        for backend in self._backends:
            try:
                result = backend.probe()
            except Exception as exc:  # a broken backend must not hide the other GPUs
                logger.exception("GPU probe %s failed", type(backend).__name__)
                notes.append(f"GPU detection ({type(backend).__name__}) failed unexpectedly: {exc}")
                continue
            gpus.extend(result.gpus)
            notes.extend(result.notes)
        return GpuProbeResult(gpus=gpus, notes=notes)
