"""CPU, memory, disk and operating system of this machine, read through psutil."""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

_SYSCTL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HostFacts:
    """What the host probe found; ``None`` where the OS would not say."""

    cpu_cores: int | None
    """Logical cores (hardware threads)."""
    cpu_physical_cores: int | None
    """Physical cores."""
    cpu_model: str | None
    """The CPU's marketing name."""
    ram: int
    """Total memory in bytes."""
    storage: int | None
    """Free bytes on the disk that holds the probed path."""
    os: str
    """``platform.system()``: ``"Linux"``, ``"Windows"``, ``"Darwin"``."""
    os_version: str
    """``platform.release()``."""
    arch: str
    """``platform.machine()``: ``"x86_64"``, ``"arm64"``, ``"AMD64"``."""


def parse_cpuinfo_model(cpuinfo: str) -> str | None:
    """The first ``model name`` in the text of ``/proc/cpuinfo``.

    Args:
        cpuinfo: The file's text.

    Returns:
        The model name, or None when the file has none (some ARM boards).
    """
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def _linux_cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        logger.debug("Could not read /proc/cpuinfo: %s", exc)
        return None
    return parse_cpuinfo_model(text)


def _macos_cpu_model() -> str | None:
    try:
        result = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"],
            capture_output=True,
            text=True,
            timeout=_SYSCTL_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("sysctl machdep.cpu.brand_string failed: %s", exc)
        return None
    return result.stdout.strip() or None


def _windows_cpu_model() -> str | None:
    if sys.platform != "win32":
        return None
    import winreg

    key_path = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as key:
            value, _kind = winreg.QueryValueEx(key, "ProcessorNameString")
    except OSError as exc:
        logger.debug("Could not read the CPU name from the registry: %s", exc)
        return None
    return str(value).strip() or None


def read_cpu_model(system: str) -> str | None:
    """The CPU's marketing name, the way this operating system tells it.

    Args:
        system: ``platform.system()`` of this machine.

    Returns:
        The name, e.g. ``"Apple M2 Pro"`` or ``"AMD Ryzen 9 7950X 16-Core Processor"``;
        ``platform.processor()`` when the OS-specific source is silent; None when even that
        is empty.
    """
    readers: dict[str, Callable[[], str | None]] = {
        "Linux": _linux_cpu_model,
        "Darwin": _macos_cpu_model,
        "Windows": _windows_cpu_model,
    }
    reader = readers.get(system)
    model = reader() if reader else None
    return model or platform.processor().strip() or None


def free_disk_bytes(path: Path) -> int | None:
    """Free bytes on the disk that holds ``path`` or, if it does not exist yet, its parent.

    Args:
        path: Where data would be written.

    Returns:
        Free bytes for this user, or None when no part of the path can be examined.
    """
    candidate = path.absolute()
    for existing in (candidate, *candidate.parents):
        if existing.exists():
            try:
                return int(psutil.disk_usage(str(existing)).free)
            except OSError as exc:
                logger.debug("disk_usage(%s) failed: %s", existing, exc)
                return None
    return None


class HostProbe:
    """Reads CPU, memory, disk and OS facts of this machine. Holds no state."""

    def probe(self, disk_path: Path) -> HostFacts:
        """Read the facts now.

        Args:
            disk_path: Where containers would keep their data; the free space of the disk
                holding it (or its nearest existing parent) is reported.

        Returns:
            The facts.
        """
        system = platform.system()
        return HostFacts(
            cpu_cores=psutil.cpu_count(logical=True),
            cpu_physical_cores=psutil.cpu_count(logical=False),
            cpu_model=read_cpu_model(system),
            ram=int(psutil.virtual_memory().total),
            storage=free_disk_bytes(disk_path),
            os=system,
            os_version=platform.release(),
            arch=platform.machine(),
        )


def cpu_load() -> float:
    """The machine's CPU use since the last call, as a fraction of all cores."""
    return psutil.cpu_percent(interval=None) / 100.0
