"""The service catalogue: which containers the pool runs, where, and with what.

Operators write it as JSON or TOML (``rma-coordinator --catalog PATH``); its shape is
:class:`ServiceCatalog`. Mistakes are errors that name the field, never silent defaults:
a catalogue that does not parse stops the coordinator.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from shared.base import RequestModel
from shared.messages import Tier
from shared.units import parse_bytes

ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
"""A service's name: lower-case letters, digits and dashes (it names containers and
volumes, and appears in URLs)."""

ImageRef = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")]
"""A container image reference, e.g. ``"ghcr.io/org/rag-service:1.4"``."""

ContainerPath = Annotated[str, StringConstraints(pattern=r"^/[^\x00]*$", max_length=512)]
"""An absolute path inside a container."""


GRANTABLE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
"""The Linux capabilities a service may ask back after all are dropped: Docker's default set,
which images like the official PostgreSQL one need. Never ``ALL``, ``SYS_ADMIN``,
``NET_ADMIN`` or ``SYS_PTRACE``: volunteers' machines are not ours to open up."""


def _grantable(capability: str) -> str:
    if capability not in GRANTABLE_CAPABILITIES:
        allowed = ", ".join(sorted(GRANTABLE_CAPABILITIES))
        raise ValueError(f"{capability!r} is never granted on volunteers' machines; use {allowed}")
    return capability


def _required_bytes(value: Any) -> int | None:
    if value is None:
        return None
    size = parse_bytes(value)
    if size is None:
        raise ValueError(f"{value!r} is not a size; write bytes or e.g. '8GiB'")
    return size


SizeLimit = Annotated[int | None, BeforeValidator(_required_bytes)]
"""A size an operator wrote: bytes or ``"8GiB"``; anything else is an error, not unknown."""


class ServiceSpec(RequestModel):
    """One service of the pool."""

    name: ServiceName
    image: ImageRef
    port: Annotated[int, Field(ge=1, le=65535)]
    """The port the service listens on inside its container."""
    tiers: Annotated[list[Tier], Field(min_length=1)]
    """Tiers whose workers may run it."""
    replicas: Annotated[int, Field(ge=0, le=10_000)] = 1
    """How many workers should run it."""
    env: dict[str, str] = {}
    """Environment variables for the container."""
    command: list[str] | None = None
    """Overrides the image's command."""
    gpu: bool = False
    """Whether it needs a GPU (and a GPU container runtime on the worker)."""
    min_gpu_memory: SizeLimit = None
    min_ram: SizeLimit = None
    """Memory the service needs; also its container's memory reservation on the worker."""
    min_cpu_cores: Annotated[int, Field(ge=1)] | None = None
    min_disk: SizeLimit = None
    """Free disk the worker needs for the image and data."""
    health_path: Annotated[str, StringConstraints(pattern=r"^/\S*$")] | None = None
    """An HTTP path that answers 2xx when the service is healthy, e.g. ``"/health"``."""
    volumes: list[ContainerPath] = []
    """Paths inside the container that keep data; each gets a named volume (never a host
    path)."""
    cap_add: list[Annotated[str, AfterValidator(_grantable)]] = []
    """Linux capabilities the image needs back after all are dropped (e.g. ``"CHOWN"``)."""
    sensitive: bool = False
    """Handles people's personal data: routed only to workers an admin marked trusted."""
    description: str = ""
    """What it does, in words a volunteer understands."""


class ServiceCatalog(RequestModel):
    """Every service of the pool."""

    services: list[ServiceSpec]

    @model_validator(mode="after")
    def _unique_names(self) -> ServiceCatalog:
        seen: set[str] = set()
        for service in self.services:
            if service.name in seen:
                raise ValueError(f"service name {service.name!r} appears more than once")
            seen.add(service.name)
        return self

    def get(self, name: str) -> ServiceSpec | None:
        """The service called ``name``, if there is one."""
        return next((service for service in self.services if service.name == name), None)
