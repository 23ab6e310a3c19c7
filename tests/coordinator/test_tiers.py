"""Tier assignment: the best tier a machine meets, exact boundaries, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from coordinator.settings import CoordinatorSettings, TierRules
from coordinator.workers.tiers import TierRequirementsNotMet, assign_tier
from shared import WorkerCapabilities

from .conftest import GIB, SEED_CAPABILITIES, FakeClock, running_coordinator

RULES = TierRules()


def caps(**fields: Any) -> WorkerCapabilities:
    return WorkerCapabilities.model_validate(fields)


def gpu(memory: Any, *, vendor: str = "nvidia", **fields: Any) -> dict[str, Any]:
    return {"vendor": vendor, "name": f"{vendor} test GPU", "memory": memory, **fields}


def tier_of(capabilities: WorkerCapabilities, rules: TierRules = RULES) -> int:
    return assign_tier(capabilities, rules).tier


def test_seed_capabilities_are_tier1() -> None:
    decision = assign_tier(WorkerCapabilities.model_validate(SEED_CAPABILITIES), RULES)
    assert decision.tier == 1
    assert "NVIDIA GeForce RTX 4090" in decision.reason
    assert "24.0 GiB" in decision.reason


def test_24564mb_of_vram_is_tier1() -> None:
    capabilities = caps(ram="16GB", cpu_cores=8, gpu_memory="24564MB", gpu_driver="nvidia")
    assert capabilities.gpus[0].memory == 24564 * 1024**2
    assert tier_of(capabilities) == 1


def test_gpu_memory_exactly_8gib_is_tier1() -> None:
    assert tier_of(caps(ram="16GB", cpu_cores=8, gpus=[gpu(8 * GIB)])) == 1
    assert tier_of(caps(ram="16GB", cpu_cores=8, gpus=[gpu("8GB")])) == 1
    assert tier_of(caps(ram="16GB", cpu_cores=8, gpus=[gpu("8192MB")])) == 1


def test_gpu_memory_just_below_8gib_is_not_tier1() -> None:
    assert tier_of(caps(ram="16GB", cpu_cores=8, gpus=[gpu(8 * GIB - 1)])) == 2
    assert tier_of(caps(ram="16GB", cpu_cores=8, gpus=[gpu("8191MB")])) == 2
    assert tier_of(caps(ram="16GB", cpu_cores=8, gpus=[gpu("7.99GB")])) == 2


def test_amd_gpu_is_tier1() -> None:
    seed_amd = caps(
        cpu_cores=16,
        ram="64GB",
        gpu_type="AMD Radeon RX 7900 XTX",
        gpu_memory="24GB",
        gpu_driver="amdgpu",
    )
    assert seed_amd.gpus[0].vendor == "amd"
    decision = assign_tier(seed_amd, RULES)
    assert decision.tier == 1
    assert "AMD Radeon RX 7900 XTX" in decision.reason
    assert tier_of(caps(ram="8GB", gpus=[gpu(16 * GIB, vendor="amd")])) == 1


def test_amd_gpu_with_unknown_memory_is_not_tier1() -> None:
    """The seed's AMD agent sent "Unknown (AMD)" as memory; that is unknown, not an error."""
    capabilities = caps(
        cpu_cores=8,
        ram="32GB",
        gpu_type="AMD Radeon RX 6800",
        gpu_memory="Unknown (AMD)",
        gpu_driver="amd",
    )
    assert capabilities.gpus[0].vendor == "amd"
    assert capabilities.gpus[0].memory is None
    assert tier_of(capabilities) == 2


def test_apple_unified_memory_is_not_tier1() -> None:
    apple = gpu(64 * GIB, vendor="apple", unified_memory=True)
    assert tier_of(caps(cpu_cores=10, ram="64GB", gpus=[apple])) == 2
    # Even a vendor tier 1 accepts does not count memory shared with the CPU.
    shared_memory = gpu(64 * GIB, vendor="nvidia", unified_memory=True)
    assert tier_of(caps(cpu_cores=10, ram="64GB", gpus=[shared_memory])) == 2


def test_intel_and_unknown_gpus_are_not_tier1() -> None:
    for vendor in ("intel", "unknown"):
        assert tier_of(caps(cpu_cores=4, ram="16GB", gpus=[gpu(16 * GIB, vendor=vendor)])) == 2


def test_best_gpu_is_named() -> None:
    capabilities = caps(
        cpu_cores=8,
        ram="32GB",
        gpus=[
            {"vendor": "nvidia", "name": "small", "memory": 10 * GIB},
            {"vendor": "nvidia", "name": "big", "memory": 48 * GIB},
            {"vendor": "intel", "name": "igpu", "memory": 128 * GIB},
        ],
    )
    decision = assign_tier(capabilities, RULES)
    assert decision.tier == 1
    assert "big" in decision.reason


def test_tier2_boundary_exactly_2_cores_and_4gib() -> None:
    assert tier_of(caps(cpu_cores=2, ram=4 * GIB)) == 2
    assert tier_of(caps(cpu_cores=2, ram="4GB")) == 2


def test_tier2_needs_both_cores_and_ram() -> None:
    assert tier_of(caps(cpu_cores=1, ram=64 * GIB)) == 3
    assert tier_of(caps(cpu_cores=2, ram=4 * GIB - 1)) == 3
    assert tier_of(caps(cpu_cores=None, ram=64 * GIB)) == 3


def test_tier3_boundary_exactly_2gib() -> None:
    assert tier_of(caps(cpu_cores=1, ram=2 * GIB)) == 3
    assert tier_of(caps(ram="2GB")) == 3
    assert tier_of(caps(ram="2048MB")) == 3


def test_real_unit_arithmetic_not_digit_stripping() -> None:
    """The seed read "62.7GB" as 627; here it is 62.7 GiB, and "1.9GB" stays below tier 3."""
    assert tier_of(caps(cpu_cores=4, ram="62.7GB")) == 2
    with pytest.raises(TierRequirementsNotMet):
        assign_tier(caps(cpu_cores=4, ram="1.9GB"), RULES)


def test_below_tier3_is_refused_naming_the_minimum() -> None:
    with pytest.raises(TierRequirementsNotMet) as info:
        assign_tier(caps(cpu_cores=4, ram=2 * GIB - 1), RULES)
    message = str(info.value)
    assert "2.0 GiB" in message
    assert "2.0 GiB RAM" in message or "needs at least 2.0 GiB" in message


def test_unknown_ram_is_refused_naming_the_minimum() -> None:
    for ram in (None, "plenty", "Unknown"):
        with pytest.raises(TierRequirementsNotMet) as info:
            assign_tier(caps(cpu_cores=64, ram=ram), RULES)
        assert "2.0 GiB" in str(info.value)


def test_gpu_does_not_rescue_too_little_ram_below_tier1() -> None:
    """A small GPU that misses tier 1 leaves the decision to RAM, which may refuse."""
    with pytest.raises(TierRequirementsNotMet):
        assign_tier(caps(cpu_cores=4, ram="1GB", gpus=[gpu(4 * GIB)]), RULES)


def test_rules_are_configurable() -> None:
    rules = TierRules(
        tier1_min_gpu_memory="16GiB",
        tier2_min_cpu_cores=8,
        tier2_min_ram="16GiB",
        tier3_min_ram="1GiB",
    )
    assert tier_of(caps(cpu_cores=8, ram="16GB", gpus=[gpu(12 * GIB)]), rules) == 2
    assert tier_of(caps(cpu_cores=8, ram="16GB", gpus=[gpu(16 * GIB)]), rules) == 1
    assert tier_of(caps(cpu_cores=4, ram="16GB"), rules) == 3
    assert tier_of(caps(cpu_cores=1, ram="1GB"), rules) == 3
    with pytest.raises(TierRequirementsNotMet) as info:
        assign_tier(caps(cpu_cores=1, ram="1023MB"), rules)
    assert "1.0 GiB" in str(info.value)


def test_rules_refuse_values_that_are_not_sizes() -> None:
    with pytest.raises(ValidationError):
        TierRules(tier3_min_ram="lots")
    with pytest.raises(ValidationError):
        TierRules(tier2_min_cpu_cores=0)


def test_rules_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RMA_TIERS__TIER3_MIN_RAM", "1GiB")
    settings = CoordinatorSettings(data_dir=tmp_path)
    assert settings.tiers.tier3_min_ram == GIB
    # The others keep their defaults.
    assert settings.tiers.tier2_min_ram == 4 * GIB
    assert settings.tiers.tier1_min_gpu_memory == 8 * GIB
    assert tier_of(caps(ram="1.5GB"), settings.tiers) == 3


def test_bad_rule_in_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RMA_TIERS__TIER3_MIN_RAM", "lots")
    with pytest.raises(ValidationError) as info:
        CoordinatorSettings(data_dir=tmp_path)
    assert "tier3_min_ram" in str(info.value)


def test_configured_rules_apply_to_registration(tmp_path: Path) -> None:
    small = {"capabilities": {"cpu_cores": 1, "ram": "1.5GB"}}
    with running_coordinator(tmp_path / "default", FakeClock()) as client:
        refused = client.post("/api/worker/register", json=small)
        assert refused.status_code == 422
        assert refused.json()["code"] == "tier_requirements"
        assert "2.0 GiB" in refused.json()["detail"]
    relaxed = TierRules(tier3_min_ram="1GiB")
    with running_coordinator(tmp_path / "relaxed", FakeClock(), tiers=relaxed) as client:
        accepted = client.post("/api/worker/register", json=small)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["tier"] == 3
