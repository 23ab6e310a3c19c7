"""What a service container uses (CPU, memory, uptime), figured the way ``docker stats`` does.

Pure: :class:`DockerGateway` reads the engine's stats and hands the JSON to
:func:`sample_from_stats`; :class:`CpuMeter` turns two successive samples of one container
into a CPU percentage; :class:`ContainerDetails` is what the tray's "Containers" tab shows.

The arithmetic follows the Docker CLI's ``stats_helpers.go``
(https://github.com/docker/cli/blob/master/cli/command/container/stats_helpers.go):
CPU % is the container's share of the host's CPU time between two readings times the
number of CPUs, so 100 % is one full core; memory is the usage less the inactive page
cache (``total_inactive_file`` on cgroup v1, ``inactive_file`` on cgroup v2).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import ContainerState

_NEVER = "0001-01-01"
"""How Docker's timestamps begin for "never" (Go's zero time)."""


@dataclass(frozen=True)
class ContainerSample:
    """One reading of a running container's counters (``GET /containers/{id}/stats``)."""

    read_at: float
    """When it was read, in monotonic seconds (for telling readings apart, not for CPU %)."""
    cpu_total_ns: int
    """CPU time the container used since it started (``cpu_stats.cpu_usage.total_usage``)."""
    system_cpu_ns: int
    """CPU time the host used since it booted, all CPUs summed
    (``cpu_stats.system_cpu_usage``)."""
    online_cpus: int
    """CPUs the host has online (0 when the engine did not say)."""
    memory_bytes: int
    """Memory in use, less the page cache the kernel can drop, as ``docker stats`` shows."""
    memory_limit_bytes: int | None
    """The most memory it may use (the host's memory when it has no limit of its own)."""


def _int(value: Any) -> int | None:
    """``value`` when it is a whole number (JSON booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def memory_used_bytes(memory_stats: Mapping[str, Any]) -> int | None:
    """Memory in use without the reclaimable page cache, as the Docker CLI figures it.

    Args:
        memory_stats: The ``memory_stats`` object of the engine's stats JSON.

    Returns:
        ``usage`` less ``total_inactive_file`` (cgroup v1) or ``inactive_file`` (cgroup v2)
        when that is smaller than the usage; the bare usage otherwise; None when the
        engine gave no usage (the container is not running).
    """
    usage = _int(memory_stats.get("usage"))
    if usage is None:
        return None
    details = _mapping(memory_stats.get("stats"))
    # Docker 19.03 and older subtracted "cache" instead; the CLI since 20.10 uses the
    # inactive file pages, which the kernel really can drop.
    cgroup_v1 = _int(details.get("total_inactive_file"))
    if cgroup_v1 is not None and cgroup_v1 < usage:
        return usage - cgroup_v1
    cgroup_v2 = _int(details.get("inactive_file"))
    if cgroup_v2 is not None and cgroup_v2 < usage:
        return usage - cgroup_v2
    return usage


def sample_from_stats(stats: Mapping[str, Any], read_at: float) -> ContainerSample | None:
    """Read the figures out of one ``stats`` answer of the engine.

    Args:
        stats: The JSON of ``GET /containers/{id}/stats?stream=false``.
        read_at: Monotonic seconds when it was read.

    Returns:
        The sample, or None when the engine sent an empty one (it does for a container
        that is not running).
    """
    if str(stats.get("read") or _NEVER).startswith(_NEVER):
        return None
    memory_stats = _mapping(stats.get("memory_stats"))
    memory = memory_used_bytes(memory_stats)
    cpu_stats = _mapping(stats.get("cpu_stats"))
    cpu_usage = _mapping(cpu_stats.get("cpu_usage"))
    cpu_total = _int(cpu_usage.get("total_usage"))
    if memory is None or cpu_total is None:
        return None
    online = _int(cpu_stats.get("online_cpus")) or 0
    if online == 0:
        # Older engines leave online_cpus out; the CLI counts the per-CPU figures then.
        per_cpu = cpu_usage.get("percpu_usage")
        online = len(per_cpu) if isinstance(per_cpu, list) else 0
    limit = _int(memory_stats.get("limit"))
    return ContainerSample(
        read_at=read_at,
        cpu_total_ns=cpu_total,
        system_cpu_ns=_int(cpu_stats.get("system_cpu_usage")) or 0,
        online_cpus=online,
        memory_bytes=memory,
        memory_limit_bytes=limit if limit else None,
    )


def cpu_percent(previous: ContainerSample | None, current: ContainerSample) -> float | None:
    """The container's CPU use between two samples; 100.0 is one full core.

    Args:
        previous: The earlier sample of the same container, or None for the first one.
        current: The later sample.

    Returns:
        The percentage, or None when it cannot be told: no earlier sample, the container's
        counter went back (it was restarted in between), no host time passed between the
        two, or the engine did not say how many CPUs there are.
    """
    if previous is None or current.online_cpus <= 0:
        return None
    cpu_delta = current.cpu_total_ns - previous.cpu_total_ns
    system_delta = current.system_cpu_ns - previous.system_cpu_ns
    if cpu_delta < 0 or system_delta <= 0:
        return None
    return cpu_delta / system_delta * current.online_cpus * 100.0


class CpuMeter:
    """Turns one container's successive samples into CPU percentages.

    Thread-safe: the tray may ask from more than one thread.
    """

    def __init__(self) -> None:
        """Create a meter that has seen no sample yet."""
        self._lock = threading.Lock()
        self._previous: ContainerSample | None = None
        self._percent: float | None = None

    def update(self, sample: ContainerSample) -> float | None:
        """Take the next sample; returns the CPU % since the one before.

        Returns:
            None for the first sample and after the container was restarted (its counter
            went back; the next sample measures again). When no host time passed since
            the previous sample (two asks in a row), the last percentage stands and the
            previous sample is kept, so the next one measures a longer stretch.
        """
        with self._lock:
            previous = self._previous
            if (
                previous is not None
                and sample.system_cpu_ns == previous.system_cpu_ns
                and sample.cpu_total_ns >= previous.cpu_total_ns
            ):
                return self._percent
            self._previous = sample
            self._percent = cpu_percent(previous, sample)
            return self._percent


def parse_docker_time(value: object) -> datetime | None:
    """A Docker timestamp (RFC 3339, nanoseconds, ``Z``) as an aware UTC datetime.

    Returns:
        None for Docker's "never" (``0001-01-01T00:00:00Z``), an empty value or one that
        does not parse.
    """
    text = str(value or "")
    if not text or text.startswith(_NEVER):
        return None
    try:
        parsed = datetime.fromisoformat(text)  # 3.11+ reads "Z" and drops digits past µs
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class ContainerDetails:
    """One desired service's container as the tray's "Containers" tab shows it.

    The figures are None when they cannot be had: no container runs (yet), Docker is not
    reachable, or (for the CPU) this is the first look at the container.
    """

    service: str
    image: str
    state: ContainerState
    """The service's state from its latest report."""
    cpu_percent: float | None
    """CPU use since the previous look, as ``docker stats`` shows it: 100.0 is one core."""
    memory_bytes: int | None
    """Memory in use, less the page cache the kernel can drop."""
    memory_limit_bytes: int | None
    """The most memory the container may use."""
    started_at: datetime | None
    """When the running container last started (aware, UTC)."""

    def uptime(self, now: datetime) -> timedelta | None:
        """How long the container has been running at ``now`` (aware), or None.

        A clock a little behind Docker's gives zero rather than a negative time.
        """
        if self.started_at is None:
            return None
        return max(timedelta(0), now - self.started_at)
