"""How much of the CPU this computer's other programs use, the pool's own containers left out.

The contribution policy steps aside when the volunteer's own programs need the CPU. The
host's busy time alone cannot tell, since the pool's containers keep it busy too (and it
would stop itself, then start again when its own load was gone, over and over). So
:class:`OtherProgramsCpu` takes the host's busy CPU time between two samples and subtracts
what a :class:`PoolCpuMeter` says the pool's containers used meanwhile:

- :class:`CgroupPoolCpuMeter` (Linux) reads each running container's cgroup CPU counter;
- :class:`ProcessPoolCpuMeter` (Windows, macOS) reads the CPU time of Docker Desktop's
  virtual machine, where the containers run there.

:func:`create_pool_cpu_meter` picks one for this OS. Nothing here asks Docker anything:
the container ids come from :meth:`ContainerRuntime.running_container_ids`, and the
counters from files and psutil, so a sample every couple of seconds costs next to nothing.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import psutil

logger = logging.getLogger(__name__)

_COUNTED_TWICE = frozenset({"guest", "guest_nice"})
"""Linux counts a guest VM's time in ``user``/``nice`` too (as psutil's own
``cpu_percent`` allows for)."""
_NOT_BUSY = frozenset({"idle", "iowait"})
_JUMP_FACTOR = 2.0
_JUMP_SLACK_S = 1.0
"""Host or container CPU time beyond ``elapsed * CPUs * factor + slack`` cannot have been
used between two samples: a counter jumped (a resume from sleep accounted as idle, say)."""
_RESCAN_INTERVAL_S = 30.0
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")

DOCKER_VM_PROCESSES = frozenset(
    {
        "vmmem",  # WSL 2 / Hyper-V VM of Docker Desktop on Windows
        "vmmemWSL",
        "com.docker.hyperkit",  # Docker Desktop on Intel Macs before the Virtualization framework
        "com.docker.virtualization",
        "com.apple.Virtualization.VirtualMachine",
        "qemu-system-x86_64",  # Docker Desktop for Linux, Colima, Lima
        "qemu-system-aarch64",
    }
)
"""Names of the processes that run Docker Desktop's (or a look-alike's) virtual machine."""


class PoolCpuMeter(Protocol):
    """The CPU time the pool's containers used, as one running total."""

    def cpu_seconds(self) -> float | None:
        """CPU seconds the pool's containers used so far, all cores summed.

        Only differences between calls matter; the total never goes down, even when a
        container stops. None when this call could not account for every container.
        """
        ...


class HostCpuTimes(Protocol):
    """Host-wide CPU seconds by kind since boot (``psutil.cpu_times()``'s named tuple)."""

    def _asdict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _HostReading:
    at: float
    seconds: dict[str, float]
    pool_seconds: float | None


def _total(seconds: dict[str, float]) -> float:
    return sum(value for kind, value in seconds.items() if kind not in _COUNTED_TWICE)


def _cpu_capacity(elapsed: float, cpus: int | None) -> float | None:
    """The most CPU time the machine can give in ``elapsed`` seconds, with some slack."""
    if not cpus or elapsed <= 0:
        return None
    return elapsed * cpus * _JUMP_FACTOR + _JUMP_SLACK_S


class OtherProgramsCpu:
    """Samples how much CPU everything but the pool's containers used since the last sample.

    Not thread-safe: one caller samples it, at a steady pace (every couple of seconds).
    """

    def __init__(
        self,
        pool: PoolCpuMeter | None,
        *,
        cpu_times: Callable[[], HostCpuTimes] = psutil.cpu_times,
        clock: Callable[[], float] = time.monotonic,
        cpu_count: Callable[[], int | None] = os.cpu_count,
    ) -> None:
        """Create the sampler; nothing is read until :meth:`sample`.

        Args:
            pool: What the pool's containers used; None counts all busy time as other
                programs' (nothing of the pool's runs here).
            cpu_times: Host-wide CPU times (``psutil.cpu_times``).
            clock: Monotonic seconds.
            cpu_count: Logical CPUs (``os.cpu_count``), to tell a counter that jumped.
        """
        self._pool = pool
        self._cpu_times = cpu_times
        self._clock = clock
        self._cpu_count = cpu_count
        self._previous: _HostReading | None = None

    def sample(self) -> float | None:
        """Percent of all cores (0–100) that other programs used since the previous call.

        Returns:
            The share, or None on the first call, when the pool's use could not be told
            for this span, or when a counter went backwards or jumped (after a suspend);
            such a call starts a new span, so the next one answers again.
        """
        now = self._clock()
        try:
            raw = self._cpu_times()._asdict()
        except OSError as exc:
            logger.debug("Could not read the host's CPU times: %s", exc)
            self._previous = None
            return None
        seconds = {kind: float(value) for kind, value in raw.items()}
        pool_seconds = self._pool.cpu_seconds() if self._pool is not None else 0.0
        current = _HostReading(at=now, seconds=seconds, pool_seconds=pool_seconds)
        previous = self._previous
        if previous is None or _total(seconds) < _total(previous.seconds):
            # First call, or the counters restarted: this reading is the new baseline.
            self._previous = current
            return None
        # Single counters may step back a little (Linux's iowait does, see proc(5));
        # psutil's cpu_percent ignores such steps the same way.
        delta = {
            kind: max(0.0, value - previous.seconds.get(kind, value))
            for kind, value in seconds.items()
        }
        total = _total(delta)
        if total <= 0:
            return None  # too soon to tell; the span goes on from the previous reading
        self._previous = current
        capacity = _cpu_capacity(now - previous.at, self._cpu_count())
        if capacity is not None and total > capacity:
            logger.debug("The host's CPU counters jumped by %.1f s; starting afresh.", total)
            return None
        if pool_seconds is None or previous.pool_seconds is None:
            return None
        pool = pool_seconds - previous.pool_seconds
        if pool < 0:
            return None  # a meter that broke its promise; start afresh rather than guess
        busy = total - sum(value for kind, value in delta.items() if kind in _NOT_BUSY)
        # The two meters are read a moment apart, so the pool's share can come out a
        # little over the host's busy time when nothing else runs.
        return min(100.0, max(0.0, (busy - pool) / total * 100.0))


# -- Linux: cgroup counters ---------------------------------------------------------------


@dataclass(frozen=True)
class _CgroupCounter:
    """One container's CPU counter file."""

    path: Path
    kind: Literal["v1", "v2"]
    """``v2``: ``cpu.stat``'s ``usage_usec``; ``v1``: ``cpuacct.usage`` in nanoseconds."""

    def read_seconds(self) -> float:
        """The counter now, in seconds.

        Raises:
            FileNotFoundError: The cgroup is gone (its container stopped).
            OSError: It could not be read.
            ValueError: It holds no counter.
        """
        text = self.path.read_text(encoding="ascii", errors="replace")
        if self.kind == "v1":
            return int(text.strip()) / 1e9
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        raise ValueError(f"no usage_usec in {self.path}")


_V1_CONTROLLER_DIRS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")
"""Where the cpuacct hierarchy is mounted: alone, or joined with cpu (then usually also
linked as ``cpuacct``)."""


class CgroupPoolCpuMeter:
    """The pool's containers' CPU time on Linux, from their cgroups' counters.

    Each container's counter is found by where dockerd puts containers: cgroup v2 with the
    systemd driver (``system.slice/docker-<id>.scope/cpu.stat``) or the cgroupfs driver
    (``docker/<id>/cpu.stat``), and cgroup v1 (``cpuacct/docker/<id>/cpuacct.usage``,
    ``cpuacct/system.slice/docker-<id>.scope/cpuacct.usage``). When none of those exist
    (rootless Docker, a ``--cgroup-parent``, Docker inside a container), the processes'
    ``/proc/<pid>/cgroup`` files are searched for the id, at most every 30 s while some
    container is still not found; a found counter is kept until its cgroup goes away.

    The total is the sum of each container's growth between calls, so a container that
    stops takes nothing away from it. Not thread-safe: one caller
    (:class:`OtherProgramsCpu`) reads it.
    """

    def __init__(
        self,
        container_ids: Callable[[], Iterable[str]],
        *,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        proc_root: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
        cpu_count: Callable[[], int | None] = os.cpu_count,
    ) -> None:
        """Create the meter; nothing is read until :meth:`cpu_seconds`.

        Args:
            container_ids: The full ids of the pool's running containers
                (:meth:`ContainerRuntime.running_container_ids`); called on every read.
            cgroup_root: Where the cgroup file systems are mounted.
            proc_root: Where procfs is mounted.
            clock: Monotonic seconds.
            cpu_count: Logical CPUs, to tell a new container's use since it started from
                a long history (an adopted container).
        """
        self._container_ids = container_ids
        self._cgroup_root = cgroup_root
        self._proc_root = proc_root
        self._clock = clock
        self._cpu_count = cpu_count
        self._counters: dict[str, _CgroupCounter] = {}
        self._last: dict[str, float] = {}
        # Containers whose cgroup went away while the runtime still lists them: stopped,
        # not unknown.
        self._gone: set[str] = set()
        self._total = 0.0
        self._called_at: float | None = None
        self._scanned_at: float | None = None

    def cpu_seconds(self) -> float | None:
        """CPU seconds the pool's containers used so far (see :class:`PoolCpuMeter`).

        Returns:
            The running total, or None when a running container's counter could not be
            found or read, or a container seen for the first time has used more than
            could fit since the previous call (its use cannot be placed in time).
        """
        now = self._clock()
        since = None if self._called_at is None else now - self._called_at
        self._called_at = now
        ids = {cid for cid in self._container_ids() if _CONTAINER_ID.fullmatch(cid)}
        self._forget_all_but(ids)
        self._find_counters(ids, now)
        known = True
        for cid in ids:
            counter = self._counters.get(cid)
            if counter is None:
                known = known and cid in self._gone
                continue
            try:
                value = counter.read_seconds()
            except FileNotFoundError:
                # It stopped since the runtime last looked; the runtime will drop it.
                self._forget(cid)
                self._gone.add(cid)
                continue
            except (OSError, ValueError) as exc:
                logger.debug("Could not read %s: %s", counter.path, exc)
                known = False
                continue
            last = self._last.get(cid)
            self._last[cid] = value
            if last is None:
                if since is None:
                    continue  # the first call: only a baseline
                capacity = _cpu_capacity(since, self._cpu_count())
                if capacity is not None and value > capacity:
                    known = False  # started long before this span (adopted): a baseline
                else:
                    self._total += value  # started since the previous call
            elif value >= last:
                self._total += value - last
            else:
                # Restarted in a fresh cgroup under the same id since the previous call.
                self._total += value
        return self._total if known else None

    def _forget(self, cid: str) -> None:
        self._counters.pop(cid, None)
        self._last.pop(cid, None)

    def _forget_all_but(self, ids: set[str]) -> None:
        for cid in set(self._counters) - ids:
            self._forget(cid)
        self._last = {cid: value for cid, value in self._last.items() if cid in ids}
        self._gone &= ids

    def _find_counters(self, ids: set[str], now: float) -> None:
        missing: set[str] = set()
        for cid in ids - set(self._counters):
            counter = next((c for c in self._candidates(cid) if c.path.is_file()), None)
            if counter is not None:
                self._counters[cid] = counter
                self._gone.discard(cid)
            elif cid not in self._gone:
                missing.add(cid)
        if missing and (self._scanned_at is None or now - self._scanned_at >= _RESCAN_INTERVAL_S):
            self._scanned_at = now
            self._counters.update(self._scan_processes(missing))

    def _candidates(self, cid: str) -> Iterator[_CgroupCounter]:
        root = self._cgroup_root
        parents = (f"system.slice/docker-{cid}.scope", f"docker/{cid}")
        for parent in parents:
            yield _CgroupCounter(root / parent / "cpu.stat", "v2")
        for controllers in _V1_CONTROLLER_DIRS:
            for parent in reversed(parents):
                yield _CgroupCounter(root / controllers / parent / "cpuacct.usage", "v1")

    def _scan_processes(self, missing: set[str]) -> dict[str, _CgroupCounter]:
        """Find the containers' cgroups from their processes' ``/proc/<pid>/cgroup``."""
        found: dict[str, _CgroupCounter] = {}
        try:
            entries = [entry.name for entry in os.scandir(self._proc_root)]
        except OSError as exc:
            logger.debug("Could not list %s: %s", self._proc_root, exc)
            return found
        for name in entries:
            if not name.isdigit():
                continue
            try:
                text = (self._proc_root / name / "cgroup").read_text(errors="replace")
            except OSError:
                continue  # the process ended meanwhile, or is not ours to read
            for line in text.splitlines():
                _, _, rest = line.partition(":")
                controllers, _, path = rest.partition(":")
                for cid in missing - set(found):
                    if cid in path:
                        counter = self._counter_at(controllers, path)
                        if counter is not None:
                            found[cid] = counter
            if len(found) == len(missing):
                break
        return found

    def _counter_at(self, controllers: str, path: str) -> _CgroupCounter | None:
        relative = path.lstrip("/")
        if controllers == "":
            candidates = [_CgroupCounter(self._cgroup_root / relative / "cpu.stat", "v2")]
        elif "cpuacct" in controllers.split(","):
            candidates = [
                _CgroupCounter(self._cgroup_root / mount / relative / "cpuacct.usage", "v1")
                for mount in (controllers, *_V1_CONTROLLER_DIRS)
            ]
        else:
            return None
        return next((c for c in candidates if c.path.is_file()), None)


# -- Windows, macOS: Docker Desktop's virtual machine ---------------------------------------


class ProcessCpuTimes(Protocol):
    """A process's CPU seconds (``psutil.Process.cpu_times()``)."""

    @property
    def user(self) -> float:
        """Seconds in user mode."""
        ...

    @property
    def system(self) -> float:
        """Seconds in the kernel."""
        ...


class VmProcess(Protocol):
    """What :class:`ProcessPoolCpuMeter` needs of a process (``psutil.Process``)."""

    def name(self) -> str:
        """The process's name."""
        ...

    def cpu_times(self) -> ProcessCpuTimes:
        """Its CPU seconds so far."""
        ...


_TRUNCATED_NAME_LENGTH = 15
"""macOS keeps 15 characters of a process's name where psutil cannot read its command."""


def _normalized(name: str) -> str:
    name = name.casefold()
    return name.removesuffix(".exe")


class ProcessPoolCpuMeter:
    """The pool's CPU time where containers run in Docker Desktop's VM (Windows, macOS).

    There the host sees one VM process, not the containers, so this counts the CPU time
    (user + system) of the processes named in ``names``. An approximation: every Docker
    workload on the machine counts as the pool's, including the volunteer's own containers
    and the VM's own upkeep. The processes are found by a full process listing at most
    every 30 s and kept between calls, since listing every process each time costs far more
    than reading a few processes' times. Not thread-safe: one caller reads it.
    """

    def __init__(
        self,
        names: frozenset[str] = DOCKER_VM_PROCESSES,
        *,
        process_iter: Callable[[], Iterable[VmProcess]] = psutil.process_iter,
        clock: Callable[[], float] = time.monotonic,
        rescan_interval_s: float = _RESCAN_INTERVAL_S,
    ) -> None:
        """Create the meter; no process is looked at until :meth:`cpu_seconds`.

        Args:
            names: Process names to count (compared without case and ``.exe``).
            process_iter: Lists the running processes (``psutil.process_iter``).
            clock: Monotonic seconds.
            rescan_interval_s: How often to look for new VM processes.
        """
        self._names = frozenset(_normalized(name) for name in names)
        self._process_iter = process_iter
        self._clock = clock
        self._rescan_interval_s = rescan_interval_s
        self._scanned_at: float | None = None
        # The processes followed, with their CPU seconds at the previous call.
        self._last: dict[VmProcess, float | None] = {}
        self._total = 0.0

    def cpu_seconds(self) -> float | None:
        """CPU seconds the VM processes used so far (see :class:`PoolCpuMeter`).

        A VM process found for the first time is a baseline: it counts from then on.

        Returns:
            The running total, or None when a VM process's times could not be read.
        """
        now = self._clock()
        if self._scanned_at is None or now - self._scanned_at >= self._rescan_interval_s:
            self._scanned_at = now
            self._scan()
        known = True
        for process, last in list(self._last.items()):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                del self._last[process]  # the VM stopped; what it used stays counted
                continue
            except (psutil.Error, OSError) as exc:
                logger.debug("Could not read the CPU times of a Docker VM process: %s", exc)
                known = False
                continue
            value = times.user + times.system
            if last is not None and value >= last:
                self._total += value - last
            self._last[process] = value
        return self._total if known else None

    def _scan(self) -> None:
        try:
            processes = list(self._process_iter())
        except (psutil.Error, OSError) as exc:
            logger.debug("Could not list the processes: %s", exc)
            return
        for process in processes:
            if process in self._last:
                continue
            try:
                name = process.name()
            except (psutil.Error, OSError):
                continue  # gone meanwhile, or a system process we may not look at
            if self._is_vm(name):
                self._last[process] = None

    def _is_vm(self, name: str) -> bool:
        name = _normalized(name)
        if name in self._names:
            return True
        return len(name) >= _TRUNCATED_NAME_LENGTH and any(
            known.startswith(name) for known in self._names
        )


DOCKER_ENGINE_PROCESSES = frozenset(
    {"dockerd", "containerd", "containerd-shim-runc-v2", "docker-proxy", "runc"}
)
"""Docker's own processes on a Linux host: downloading and unpacking the pool's images and
starting its containers is work done for the pool, not by the volunteer's programs."""


class SumOfPoolCpuMeters:
    """The pool's CPU time from several meters (its containers, and the engine's work)."""

    def __init__(self, first: PoolCpuMeter, *more: PoolCpuMeter) -> None:
        """Add ``more`` to ``first``; ``first`` decides when the total is unknown."""
        self._first = first
        self._more = more

    def cpu_seconds(self) -> float | None:
        """The sum; None when ``first`` does not know (an unreadable extra counts as 0)."""
        total = self._first.cpu_seconds()
        if total is None:
            return None
        for meter in self._more:
            extra = meter.cpu_seconds()
            if extra is not None:
                total += extra
        return total


def create_pool_cpu_meter(
    container_ids: Callable[[], Iterable[str]], *, platform: str = sys.platform
) -> PoolCpuMeter:
    """The pool CPU meter for this OS.

    On Linux, Docker runs containers on the host, so their cgroups tell; elsewhere they run
    in Docker Desktop's VM, whose processes tell. (Docker Desktop for Linux also runs a VM;
    there the cgroup meter finds no container and answers None.)

    Args:
        container_ids: The full ids of the pool's running containers (Linux only).
        platform: ``sys.platform``.
    """
    if platform.startswith("linux"):
        # Unpacking a large image keeps dockerd and containerd busy for minutes; counted as
        # the volunteer's load, it would pause the pool, which abandons the download.
        return SumOfPoolCpuMeters(
            CgroupPoolCpuMeter(container_ids), ProcessPoolCpuMeter(DOCKER_ENGINE_PROCESSES)
        )
    return ProcessPoolCpuMeter()
