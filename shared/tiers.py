"""Which tier a worker's hardware qualifies for.

The rules live in the protocol package (``shared``), so the desktop app can tell a volunteer
which tier their computer qualifies for before it joins the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from shared.capabilities import WorkerCapabilities
from shared.messages import TIER_NAMES
from shared.units import format_bytes, parse_bytes

GIB = 1024**3


def _strict_bytes(value: Any) -> int:
    size = parse_bytes(value)
    if size is None:
        raise ValueError(f"{value!r} is not a size; write bytes or e.g. '8GiB'")
    return size


StrictByteSize = Annotated[int, BeforeValidator(_strict_bytes)]


class TierRules(BaseModel):
    """The minimums for each tier; a worker gets the best tier it meets."""

    tier1_min_gpu_memory: StrictByteSize = 8 * GIB
    """Tier 1 (GPU worker): one NVIDIA or AMD GPU with at least this much memory."""
    tier2_min_cpu_cores: int = Field(default=2, ge=1)
    """Tier 2 (service worker): at least this many logical CPU cores ..."""
    tier2_min_ram: StrictByteSize = 4 * GIB
    """... and at least this much RAM."""
    tier3_min_ram: StrictByteSize = 2 * GIB
    """Tier 3 (data worker): at least this much RAM. Below it, registration is refused."""


TIER1_GPU_VENDORS = ("nvidia", "amd")


class TierRequirementsNotMet(ValueError):
    """The machine is below the smallest tier; the message says which minimum failed."""


@dataclass(frozen=True)
class TierDecision:
    """A tier and why, in words for the volunteer and the admin."""

    tier: int
    reason: str


def assign_tier(capabilities: WorkerCapabilities, rules: TierRules) -> TierDecision:
    """Give a worker the best tier it meets.

    Raises:
        TierRequirementsNotMet: It does not even meet tier 3; the message names the minimum.
    """
    gpus = [
        gpu
        for gpu in capabilities.gpus
        if gpu.vendor in TIER1_GPU_VENDORS
        and not gpu.unified_memory
        and gpu.memory is not None
        and gpu.memory >= rules.tier1_min_gpu_memory
    ]
    if gpus:
        best = max(gpus, key=lambda gpu: gpu.memory or 0)
        return TierDecision(
            1, f"{TIER_NAMES[1]}: {best.name} with {format_bytes(best.memory)} of GPU memory"
        )
    ram = capabilities.ram
    cores = capabilities.cpu_cores
    if (
        cores is not None
        and ram is not None
        and cores >= rules.tier2_min_cpu_cores
        and ram >= rules.tier2_min_ram
    ):
        return TierDecision(2, f"{TIER_NAMES[2]}: {cores} CPU cores and {format_bytes(ram)} RAM")
    if ram is not None and ram >= rules.tier3_min_ram:
        return TierDecision(3, f"{TIER_NAMES[3]}: {format_bytes(ram)} RAM")
    if ram is None:
        raise TierRequirementsNotMet(
            "The worker did not report its RAM (or sent a value that is not a size), so no "
            f"tier can be assigned; every tier needs at least {format_bytes(rules.tier3_min_ram)}."
        )
    raise TierRequirementsNotMet(
        f"This machine has {format_bytes(ram)} RAM; the smallest tier (data worker) needs at "
        f"least {format_bytes(rules.tier3_min_ram)}."
    )
