"""The GPU of an Apple Silicon Mac, which shares the machine's memory."""

from __future__ import annotations

import platform
from collections.abc import Callable

import psutil

from shared import GpuInfo

from .gpu import GpuProbeResult
from .host import read_cpu_model


def _total_ram() -> int:
    return int(psutil.virtual_memory().total)


def _brand_string() -> str | None:
    return read_cpu_model("Darwin")


class AppleGpuProbe:
    """Reports the Apple Silicon GPU (one per Mac) with unified memory equal to RAM."""

    def __init__(
        self,
        system: Callable[[], str] = platform.system,
        machine: Callable[[], str] = platform.machine,
        total_ram: Callable[[], int] = _total_ram,
        brand_string: Callable[[], str | None] = _brand_string,
    ) -> None:
        """Create the probe. Nothing is read until :meth:`probe`.

        Args:
            system: Returns ``platform.system()``.
            machine: Returns ``platform.machine()``.
            total_ram: Returns total memory in bytes.
            brand_string: Returns the chip name (``sysctl machdep.cpu.brand_string``),
                e.g. ``"Apple M2 Pro"``.
        """
        self._system = system
        self._machine = machine
        self._total_ram = total_ram
        self._brand_string = brand_string

    def probe(self) -> GpuProbeResult:
        """The Apple GPU on an Apple Silicon Mac; nothing elsewhere."""
        if self._system() != "Darwin":
            return GpuProbeResult()
        brand = (self._brand_string() or "").strip()
        is_apple_brand = brand.lower().startswith("apple")
        # An x86_64 Python under Rosetta sees machine() == "x86_64" on an Apple chip.
        if self._machine() != "arm64" and not is_apple_brand:
            return GpuProbeResult(
                notes=["This Mac has an Intel processor; its GPU is not used by the pool."]
            )
        name = brand if is_apple_brand else "Apple Silicon GPU"
        return GpuProbeResult(
            gpus=[
                GpuInfo(
                    vendor="apple",
                    name=name,
                    memory=self._total_ram(),
                    driver="Metal",
                    unified_memory=True,
                )
            ]
        )
