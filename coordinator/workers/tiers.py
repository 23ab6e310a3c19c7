"""Which tier a worker's hardware qualifies for."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.settings import TierRules
from shared import TIER_NAMES, WorkerCapabilities
from shared.units import format_bytes

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
