"""CPU and memory figures from the engine's stats JSON, the way ``docker stats`` shows them."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from desktop_app.agent.containers import (
    ContainerDetails,
    ContainerSample,
    CpuMeter,
    cpu_percent,
    memory_used_bytes,
)
from desktop_app.agent.containers.stats import parse_docker_time, sample_from_stats

# Trimmed from a real answer of docker 20.10.24 (API 1.41, cgroup v1) for a busybox
# container spinning one core: GET /containers/{id}/stats?stream=false&one-shot=true.
CGROUP_V1: dict[str, Any] = {
    "read": "2026-11-22T09:20:57.355375863Z",
    "preread": "0001-01-01T00:00:00Z",
    "pids_stats": {"current": 2},
    "num_procs": 0,
    "cpu_stats": {
        "cpu_usage": {
            "total_usage": 1018604328,
            "percpu_usage": [555241265, 463363063],
            "usage_in_kernelmode": 10000000,
            "usage_in_usermode": 990000000,
        },
        "system_cpu_usage": 15129570000000,
        "online_cpus": 2,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "memory_stats": {
        "usage": 585728,
        "max_usage": 3850240,
        "stats": {
            "active_anon": 8192,
            "active_file": 4096,
            "cache": 4096,
            "inactive_anon": 110592,
            "inactive_file": 0,
            "rss": 118784,
            "total_active_file": 4096,
            "total_cache": 4096,
            "total_inactive_file": 0,
            "total_rss": 118784,
        },
        "limit": 67108864,
    },
    "name": "/thirsty_ramanujan",
    "id": "eae558f9e3355c14c01b94028044bec31bc248de8bb716026975f7ee1d539647",
}

# The shape a cgroup v2 host gives (Docker 20.10+): no "cache", no "total_*" keys, no
# per-CPU figures; the page cache the kernel can drop is "inactive_file".
CGROUP_V2: dict[str, Any] = {
    "read": "2024-03-05T10:11:12.123456789Z",
    "preread": "0001-01-01T00:00:00Z",
    "cpu_stats": {
        "cpu_usage": {
            "total_usage": 48_250_000,
            "usage_in_kernelmode": 12_000_000,
            "usage_in_usermode": 36_250_000,
        },
        "system_cpu_usage": 9_876_540_000_000,
        "online_cpus": 8,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "memory_stats": {
        "usage": 31_457_280,
        "stats": {
            "active_anon": 4096,
            "active_file": 2_097_152,
            "anon": 7_340_032,
            "file": 23_068_672,
            "inactive_anon": 7_335_936,
            "inactive_file": 20_971_520,
            "kernel_stack": 65536,
            "slab": 638_976,
        },
        "limit": 8_312_033_280,
    },
}

# What the engine answers for a container that is not running.
NOT_RUNNING: dict[str, Any] = {
    "read": "0001-01-01T00:00:00Z",
    "preread": "0001-01-01T00:00:00Z",
    "pids_stats": {},
    "cpu_stats": {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "memory_stats": {},
    "name": "/thirsty_ramanujan",
}


def sample(cpu_ns: int, system_ns: int, online: int = 2, read_at: float = 0.0) -> ContainerSample:
    return ContainerSample(
        read_at=read_at,
        cpu_total_ns=cpu_ns,
        system_cpu_ns=system_ns,
        online_cpus=online,
        memory_bytes=1,
        memory_limit_bytes=None,
    )


# -- memory ----------------------------------------------------------------------------------


def test_cgroup_v1_memory_subtracts_total_inactive_file() -> None:
    memory = copy.deepcopy(CGROUP_V1["memory_stats"])
    memory["stats"]["total_inactive_file"] = 200_000
    memory["stats"]["inactive_file"] = 999  # the cgroup's own figure; v1 uses the total
    assert memory_used_bytes(memory) == 585728 - 200_000


def test_cgroup_v1_memory_keeps_usage_when_nothing_is_inactive() -> None:
    # "cache" (what Docker 19.03 subtracted) is not what the CLI subtracts any more.
    assert memory_used_bytes(CGROUP_V1["memory_stats"]) == 585728


def test_cgroup_v2_memory_subtracts_inactive_file() -> None:
    assert memory_used_bytes(CGROUP_V2["memory_stats"]) == 31_457_280 - 20_971_520


def test_inactive_file_not_below_usage_leaves_the_usage() -> None:
    v1 = {"usage": 1000, "stats": {"total_inactive_file": 1000, "inactive_file": 400}}
    # The v1 figure is not smaller, so the CLI falls through to inactive_file.
    assert memory_used_bytes(v1) == 600
    v2 = {"usage": 1000, "stats": {"inactive_file": 5000}}
    assert memory_used_bytes(v2) == 1000
    assert memory_used_bytes({"usage": 1000}) == 1000


def test_no_usage_is_no_figure() -> None:
    assert memory_used_bytes({}) is None
    assert memory_used_bytes({"usage": None, "stats": {}}) is None


# -- samples ---------------------------------------------------------------------------------


def test_sample_from_cgroup_v1_stats() -> None:
    assert sample_from_stats(CGROUP_V1, 12.5) == ContainerSample(
        read_at=12.5,
        cpu_total_ns=1018604328,
        system_cpu_ns=15129570000000,
        online_cpus=2,
        memory_bytes=585728,
        memory_limit_bytes=67108864,
    )


def test_sample_from_cgroup_v2_stats() -> None:
    got = sample_from_stats(CGROUP_V2, 3.0)
    assert got is not None
    assert (got.cpu_total_ns, got.system_cpu_ns, got.online_cpus) == (
        48_250_000,
        9_876_540_000_000,
        8,
    )
    assert got.memory_bytes == 10_485_760
    assert got.memory_limit_bytes == 8_312_033_280


def test_sample_counts_per_cpu_figures_when_online_cpus_is_missing() -> None:
    older = copy.deepcopy(CGROUP_V1)
    del older["cpu_stats"]["online_cpus"]
    got = sample_from_stats(older, 0.0)
    assert got is not None and got.online_cpus == 2


def test_a_container_that_is_not_running_gives_no_sample() -> None:
    assert sample_from_stats(NOT_RUNNING, 0.0) is None
    assert sample_from_stats({}, 0.0) is None


# -- CPU -------------------------------------------------------------------------------------


def test_cpu_percent_is_share_of_host_time_times_cpus() -> None:
    # One core busy on a 2-CPU host for 1 s: the host's summed CPU time grows by 2 s.
    first = sample(1_000_000_000, 10_000_000_000)
    second = sample(2_000_000_000, 12_000_000_000)
    assert cpu_percent(first, second) == pytest.approx(100.0)
    # A quarter of one core.
    assert cpu_percent(first, sample(1_250_000_000, 12_000_000_000)) == pytest.approx(25.0)
    # Idle.
    assert cpu_percent(first, sample(1_000_000_000, 12_000_000_000)) == 0.0


def test_cpu_percent_cannot_be_told_without_two_good_samples() -> None:
    first = sample(1_000_000_000, 10_000_000_000)
    assert cpu_percent(None, first) is None
    # Restarted in between: the container's counter starts again from zero.
    assert cpu_percent(first, sample(5_000_000, 12_000_000_000)) is None
    # No host time passed.
    assert cpu_percent(first, sample(1_000_000_000, 10_000_000_000)) is None
    # The engine did not say how many CPUs there are.
    assert cpu_percent(first, sample(2_000_000_000, 12_000_000_000, online=0)) is None


def test_cpu_percent_from_two_recorded_answers() -> None:
    later = copy.deepcopy(CGROUP_V1)
    later["cpu_stats"]["cpu_usage"]["total_usage"] += 966_000_000
    later["cpu_stats"]["system_cpu_usage"] += 1_950_000_000
    first, second = sample_from_stats(CGROUP_V1, 0.0), sample_from_stats(later, 1.0)
    assert second is not None
    assert cpu_percent(first, second) == pytest.approx(966 / 1950 * 2 * 100)


def test_meter_first_sample_then_percentages() -> None:
    meter = CpuMeter()
    assert meter.update(sample(0, 10_000_000_000)) is None
    assert meter.update(sample(500_000_000, 11_000_000_000)) == pytest.approx(100.0)
    assert meter.update(sample(750_000_000, 12_000_000_000)) == pytest.approx(50.0)


def test_meter_after_a_restart_measures_again() -> None:
    meter = CpuMeter()
    meter.update(sample(3_000_000_000, 10_000_000_000))
    assert meter.update(sample(100_000_000, 11_000_000_000)) is None
    assert meter.update(sample(350_000_000, 12_000_000_000)) == pytest.approx(50.0)


def test_meter_asked_twice_at_once_keeps_its_last_figure() -> None:
    meter = CpuMeter()
    meter.update(sample(0, 10_000_000_000))
    assert meter.update(sample(500_000_000, 11_000_000_000)) == pytest.approx(100.0)
    # No host time passed: the figure stands, and the earlier sample stays the baseline.
    assert meter.update(sample(510_000_000, 11_000_000_000)) == pytest.approx(100.0)
    assert meter.update(sample(1_000_000_000, 13_000_000_000)) == pytest.approx(50.0)


def test_meter_from_many_threads() -> None:
    meter = CpuMeter()
    meter.update(sample(0, 0))
    results: list[float | None] = []
    lock = threading.Lock()

    def worker(step: int) -> None:
        got = meter.update(sample(step * 100, step * 400))
        with lock:
            results.append(got)

    threads = [threading.Thread(target=worker, args=(step,)) for step in range(1, 51)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Whatever order they came in, every figure is a number or "cannot tell", never junk.
    assert len(results) == 50
    assert all(r is None or r >= 0 for r in results)


# -- time ------------------------------------------------------------------------------------


def test_docker_time_is_aware_utc() -> None:
    parsed = parse_docker_time("2024-03-05T10:11:12.123456789Z")
    assert parsed == datetime(2024, 3, 5, 10, 11, 12, 123456, tzinfo=UTC)
    offset = parse_docker_time("2024-03-05T11:11:12+01:00")
    assert offset == datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("") is None
    assert parse_docker_time(None) is None
    assert parse_docker_time("yesterday") is None


def details(started_at: datetime | None) -> ContainerDetails:
    return ContainerDetails(
        service="web",
        image="example/web:1",
        state="running",
        cpu_percent=None,
        memory_bytes=None,
        memory_limit_bytes=None,
        started_at=started_at,
    )


def test_uptime() -> None:
    started = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    assert details(started).uptime(started + timedelta(minutes=5)) == timedelta(minutes=5)
    # This computer's clock is a little behind Docker's.
    assert details(started).uptime(started - timedelta(seconds=1)) == timedelta(0)
    assert details(None).uptime(started) is None
