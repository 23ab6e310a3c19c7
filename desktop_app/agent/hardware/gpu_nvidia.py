"""NVIDIA GPUs through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package)."""

from __future__ import annotations

import logging
from typing import Protocol

from shared import GpuInfo

from .gpu import GpuProbeResult

logger = logging.getLogger(__name__)


class NvmlMemoryInfo(Protocol):
    """What ``nvmlDeviceGetMemoryInfo`` returns (only the field we read)."""

    total: int


class NvmlModule(Protocol):
    """The part of ``pynvml`` this backend uses; tests pass a fake module with these names."""

    NVMLError: type[Exception]
    NVMLError_LibraryNotFound: type[Exception]
    NVMLError_DriverNotLoaded: type[Exception]
    NVMLError_NoPermission: type[Exception]

    def nvmlInit(self) -> None:  # noqa: D102 - mirrors NVML
        ...

    def nvmlShutdown(self) -> None:  # noqa: D102
        ...

    def nvmlDeviceGetCount(self) -> int:  # noqa: D102
        ...

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:  # noqa: D102
        ...

    def nvmlDeviceGetName(self, handle: object) -> str | bytes:  # noqa: D102
        ...

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> NvmlMemoryInfo:  # noqa: D102
        ...

    def nvmlSystemGetDriverVersion(self) -> str | bytes:  # noqa: D102
        ...


def _text(value: str | bytes) -> str:
    """NVML returns str in current bindings and bytes in old ones."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class NvidiaGpuProbe:
    """Finds NVIDIA GPUs with NVML; always shuts NVML down again."""

    def __init__(self, nvml: NvmlModule | None = None) -> None:
        """Create the probe. Nothing is loaded until :meth:`probe`.

        Args:
            nvml: The NVML bindings; None imports ``pynvml`` when probing.
        """
        self._nvml = nvml

    def _load(self) -> NvmlModule | None:
        if self._nvml is not None:
            return self._nvml
        try:
            import pynvml
        except ImportError:
            logger.debug("pynvml is not importable", exc_info=True)
            return None
        nvml: NvmlModule = pynvml
        return nvml

    def probe(self) -> GpuProbeResult:
        """List the NVIDIA GPUs, or say plainly why none can be seen."""
        nvml = self._load()
        if nvml is None:
            return GpuProbeResult(
                notes=["NVIDIA GPUs cannot be detected: the nvidia-ml-py package is missing."]
            )
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return GpuProbeResult(notes=[self._init_failure_note(nvml, exc)])
        try:
            return self._read_devices(nvml)
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError as exc:
                logger.warning("nvmlShutdown failed: %s", exc)

    @staticmethod
    def _init_failure_note(nvml: NvmlModule, exc: Exception) -> str:
        if isinstance(exc, nvml.NVMLError_LibraryNotFound):
            return "No NVIDIA driver found (NVML is not installed)."
        if isinstance(exc, nvml.NVMLError_DriverNotLoaded):
            return "No NVIDIA driver is loaded, so NVIDIA GPUs cannot be used."
        if isinstance(exc, nvml.NVMLError_NoPermission):
            return "The NVIDIA driver refused access to the GPUs for this user."
        return f"The NVIDIA driver could not be queried ({exc})."

    @staticmethod
    def _read_devices(nvml: NvmlModule) -> GpuProbeResult:
        notes: list[str] = []
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            return GpuProbeResult(notes=[f"The NVIDIA driver could not list the GPUs ({exc})."])
        try:
            driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError as exc:
            logger.debug("nvmlSystemGetDriverVersion failed: %s", exc)
            driver = None
        gpus: list[GpuInfo] = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(nvml.nvmlDeviceGetName(handle))
            except nvml.NVMLError as exc:
                notes.append(f"NVIDIA GPU {index} could not be read ({exc}); it is left out.")
                continue
            try:
                memory: int | None = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            except nvml.NVMLError as exc:
                # Some devices (e.g. unified-memory Jetson/Grace parts) do not report it.
                logger.debug("Memory of NVIDIA GPU %d unknown: %s", index, exc)
                memory = None
            gpus.append(GpuInfo(vendor="nvidia", name=name, memory=memory, driver=driver))
        return GpuProbeResult(gpus=gpus, notes=notes)
