"""What a worker machine can offer: CPU, memory, disk, GPUs and Docker.

The model accepts the current agents' structured form and the seed agents' flat form
(``{"cpu_cores": 16, "ram": "64.0GB", "gpu_memory": "24564MB", "gpu_type": ...}``); the
seed form is folded into the structured one on arrival, so the rest of the system sees one
shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from shared.base import RequestModel, ShortText
from shared.units import parse_bytes, parse_count

ByteSize = Annotated[
    int | None,
    BeforeValidator(parse_bytes),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}, {"type": "null"}],
            "description": "Bytes, or a size string such as '62.7GB' or '24564MB' "
            "(binary units). Values that are not sizes are read as unknown (null).",
        },
        mode="validation",
    ),
]
"""A size in bytes; on input also a human string, read with real unit arithmetic."""

Count = Annotated[
    int | None,
    BeforeValidator(parse_count),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}, {"type": "null"}],
            "description": "A whole count; a digit string is accepted. Anything else is "
            "read as unknown (null).",
        },
        mode="validation",
    ),
]
"""A whole count (cores); unparseable values are unknown, not errors."""

GpuVendor = Literal["nvidia", "amd", "intel", "apple", "unknown"]

DockerStatus = Literal["running", "not_installed", "not_running", "permission_denied", "error"]


class GpuInfo(RequestModel):
    """One GPU of a worker."""

    vendor: GpuVendor = "unknown"
    """Who made it; decides which container runtime can use it."""
    name: ShortText = "Unknown GPU"
    """The model name the driver reports, e.g. ``"NVIDIA GeForce RTX 4090"``."""
    memory: ByteSize = None
    """Dedicated memory in bytes; unknown when the driver does not say. For Apple Silicon
    this is the unified memory shared with the CPU."""
    driver: ShortText | None = None
    """The driver name or version, e.g. ``"550.54.14"`` or the seed's ``"nvidia"``."""
    unified_memory: bool = False
    """Whether :attr:`memory` is shared with the CPU (Apple Silicon)."""


class DockerInfo(RequestModel):
    """Whether the worker can run containers."""

    usable: bool = False
    """True when the Docker engine answers and this user may use it."""
    status: DockerStatus = "error"
    """Why it is or is not usable."""
    version: ShortText | None = None
    """The engine's version, when it answered."""
    gpu_runtime: bool = False
    """Whether a GPU container runtime (NVIDIA container toolkit) is configured."""
    message: Annotated[str, Field(max_length=1000)] | None = None
    """A sentence for people when Docker is not usable, with the fix."""


def infer_gpu_vendor(name: str | None, driver: str | None) -> GpuVendor:
    """Guess a GPU's vendor from the seed agents' ``gpu_driver`` and ``gpu_type`` strings."""
    for text in (driver, name):
        lowered = (text or "").lower()
        if any(word in lowered for word in ("nvidia", "geforce", "quadro", "tesla", "rtx")):
            return "nvidia"
        if any(word in lowered for word in ("amd", "radeon", "rocm", "instinct")):
            return "amd"
        if "apple" in lowered:
            return "apple"
        if "intel" in lowered:
            return "intel"
    return "unknown"


_SEED_GPU_FIELDS = ("gpu", "gpu_memory", "gpu_type", "gpu_driver")
_NO_GPU_NAMES = {"", "none", "null", "no gpu", "n/a"}


def _seed_gpu(data: dict[str, Any]) -> dict[str, Any] | None:
    """Build one structured GPU entry from the seed's flat fields, or None if there is none."""
    legacy = data.get("gpu")
    name = data.get("gpu_type")
    memory = data.get("gpu_memory")
    driver = data.get("gpu_driver")
    if isinstance(legacy, dict):
        name = name or legacy.get("name") or legacy.get("type")
        memory = memory or legacy.get("memory")
        driver = driver or legacy.get("driver")
    elif isinstance(legacy, str):
        name = name or legacy
    name_text = name.strip() if isinstance(name, str) else None
    memory_bytes = parse_bytes(memory)
    if (name_text is None or name_text.lower() in _NO_GPU_NAMES) and not memory_bytes:
        return None
    driver_text = driver.strip() if isinstance(driver, str) and driver.strip() else None
    return {
        "vendor": infer_gpu_vendor(name_text, driver_text),
        "name": (name_text or "Unknown GPU")[:256],
        "memory": memory_bytes,
        "driver": driver_text[:256] if driver_text else None,
    }


class WorkerCapabilities(RequestModel):
    """The hardware and software a worker offers to the pool."""

    cpu_cores: Count = None
    """Logical CPU cores (hardware threads). The seed's name; its ``cpu`` is read as this."""
    cpu_physical_cores: Count = None
    """Physical CPU cores."""
    cpu_model: ShortText | None = None
    """The CPU's marketing name, e.g. ``"AMD Ryzen 9 7950X 16-Core Processor"``."""
    ram: ByteSize = None
    """Total memory in bytes (the seed sent ``"64.0GB"``)."""
    storage: ByteSize = None
    """Free disk space in bytes where containers would store their data."""
    os: ShortText | None = None
    """Operating system: ``"Linux"``, ``"Windows"``, ``"Darwin"``."""
    os_version: ShortText | None = None
    """Operating system release, e.g. ``"6.1.0-18-amd64"`` or ``"10.0.22631"``."""
    arch: ShortText | None = None
    """Machine architecture: ``"x86_64"``, ``"arm64"``, ``"AMD64"``."""
    gpus: Annotated[list[GpuInfo], Field(max_length=64)] = []
    """Every GPU found; empty when none."""
    docker: DockerInfo | None = None
    """Container engine status; None from agents that do not say (the seed's)."""

    @model_validator(mode="before")
    @classmethod
    def _fold_seed_fields(cls, data: Any) -> Any:
        """Accept the seed agents' flat fields (``cpu``, ``gpu_*``) as the structured ones."""
        if not isinstance(data, dict):
            return data
        if not any(key in data for key in (*_SEED_GPU_FIELDS, "cpu")):
            return data
        folded = {key: value for key, value in data.items() if key not in _SEED_GPU_FIELDS}
        if "cpu" in folded:
            cpu = folded.pop("cpu")
            folded.setdefault("cpu_cores", cpu)
        if not folded.get("gpus"):
            gpu = _seed_gpu(data)
            folded["gpus"] = [gpu] if gpu else []
        return folded
