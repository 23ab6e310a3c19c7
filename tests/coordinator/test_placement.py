"""Placement as a pure function: candidates, spread, packing, grace, catalogue changes."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from coordinator.placement.assignments import AssignmentBuilder, assignment_reason
from coordinator.placement.planner import (
    Assignment,
    PlacementPlan,
    WorkerState,
    format_duration,
    plan_placement,
)
from coordinator.placement.store import worker_state
from shared import ServiceCatalog

GIB = 1024**3
T0 = 1_750_000_000.0
GRACE = 300.0


def service(name: str, tiers: Iterable[int] = (2,), **fields: Any) -> dict[str, Any]:
    base = {"name": name, "image": f"example.org/{name}:1", "port": 8000, "tiers": list(tiers)}
    return base | fields


def catalog(*services: dict[str, Any]) -> ServiceCatalog:
    return ServiceCatalog.model_validate({"services": list(services)})


def worker(worker_id: str, tier: int = 2, **fields: Any) -> WorkerState:
    values: dict[str, Any] = {
        "docker_usable": True,
        "cpu_cores": 8,
        "ram": 16 * GIB,
        "disk": 500 * GIB,
        **fields,
    }
    return WorkerState(worker_id=worker_id, tier=tier, **values)


def gpu_worker(worker_id: str, gpu_memory: int = 24 * GIB, **fields: Any) -> WorkerState:
    return worker(worker_id, 1, has_gpu=True, gpu_memory=gpu_memory, gpu_runtime=True, **fields)


def plan(
    services: ServiceCatalog,
    workers: Iterable[WorkerState],
    current: Iterable[Assignment] = (),
    now: float = T0,
    grace: float = GRACE,
) -> PlacementPlan:
    return plan_placement(services, list(workers), list(current), now, grace=grace)


def placed(result: PlacementPlan) -> dict[str, list[str]]:
    """Service -> the workers it is on, sorted."""
    found: dict[str, list[str]] = {}
    for assignment in result.assignments:
        found.setdefault(assignment.service, []).append(assignment.worker_id)
    return {name: sorted(workers) for name, workers in found.items()}


def messages(result: PlacementPlan) -> list[str]:
    return [change.message for change in result.changes]


# --- spread -------------------------------------------------------------------------------


def test_replicas_spread_to_the_least_busy_workers_with_stable_ties() -> None:
    services = catalog(service("a", replicas=2), service("b", replicas=2), service("c", replicas=1))
    result = plan(services, [worker("w3"), worker("w1"), worker("w2")])
    # a: the two lowest ids; b: w3 (empty), then w1 (tie with w2, lower id); c: w2.
    assert placed(result) == {"a": ["w1", "w2"], "b": ["w1", "w3"], "c": ["w2"]}
    assert result.shortfalls == ()
    assert all(a.assigned_at == T0 and a.unplaceable_since is None for a in result.assignments)
    assert "Placed a on worker w1 (tier 2)" in messages(result)


def test_the_same_inputs_give_the_same_plan_in_any_order() -> None:
    services = catalog(service("a", replicas=3), service("b", replicas=2), service("c"))
    workers = [worker(f"w{n}") for n in range(8)]
    first = plan(services, workers)
    for seed in range(5):
        shuffled = workers[:]
        random.Random(seed).shuffle(shuffled)
        assert plan(services, shuffled).assignments == first.assignments


def test_a_second_run_changes_nothing() -> None:
    services = catalog(service("a", replicas=2), service("b"))
    workers = [worker("w1"), worker("w2"), worker("w3")]
    first = plan(services, workers)
    second = plan(services, workers, first.assignments, now=T0 + 60)
    assert second.assignments == first.assignments
    assert second.changes == ()


def test_a_new_worker_takes_only_new_replicas_nothing_moves() -> None:
    services = catalog(service("a"), service("b"), service("c"))
    first = plan(services, [worker("w1")])
    assert placed(first) == {"a": ["w1"], "b": ["w1"], "c": ["w1"]}
    second = plan(services, [worker("w1"), worker("w0")], first.assignments, now=T0 + 60)
    assert second.assignments == first.assignments
    assert second.changes == ()


def test_one_replica_per_worker() -> None:
    result = plan(catalog(service("a", replicas=3)), [worker("w1"), worker("w2")])
    assert placed(result) == {"a": ["w1", "w2"]}
    (shortfall,) = result.shortfalls
    assert (shortfall.placed, shortfall.wanted) == (2, 3)
    assert "2 of 3 replicas placed" in shortfall.message
    assert "2 already running it" in shortfall.message


def test_zero_replicas_places_nothing() -> None:
    result = plan(catalog(service("a", replicas=0)), [worker("w1")])
    assert result.assignments == () and result.shortfalls == ()


def test_no_workers_at_all() -> None:
    result = plan(catalog(service("a")), [])
    assert result.workers == 0
    assert "no workers are registered" in result.shortfalls[0].message


# --- candidates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_fields", "worker_fields", "summary"),
    [
        ({}, {"online": False}, "offline"),
        ({}, {"schedulability": "paused"}, "paused by its owner"),
        ({}, {"schedulability": "drained"}, "drained by an admin"),
        ({}, {"docker_usable": False}, "not able to run containers"),
        ({"tiers": [3]}, {}, "of another tier"),
        ({"min_cpu_cores": 16}, {"cpu_cores": 8}, "short of CPU cores"),
        ({"min_cpu_cores": 2}, {"cpu_cores": None}, "short of CPU cores"),
        ({"min_ram": "32GiB"}, {"ram": 16 * GIB}, "short of RAM"),
        ({"min_disk": "1TiB"}, {"disk": 500 * GIB}, "short of disk"),
        ({"min_disk": "1GiB"}, {"disk": None}, "short of disk"),
        ({"gpu": True, "tiers": [2]}, {}, "without an NVIDIA GPU"),
    ],
)
def test_each_requirement_keeps_a_worker_out(
    spec_fields: dict[str, Any], worker_fields: dict[str, Any], summary: str
) -> None:
    services = catalog(service("a", **spec_fields))
    result = plan(services, [worker("w1", **worker_fields)])
    assert result.assignments == ()
    (shortfall,) = result.shortfalls
    assert shortfall.message == (
        f"Could not place a: 0 of 1 replica placed; of 1 worker: 1 {summary}"
    )
    assert placed(plan(catalog(service("a")), [worker("w1")])) == {"a": ["w1"]}


def test_gpu_services_go_only_to_nvidia_gpus_with_the_runtime() -> None:
    services = catalog(
        service("llm", tiers=[1], gpu=True, min_gpu_memory="8GiB"),
        service("vision", tiers=[1], gpu=True),
    )
    amd = worker("amd", 1, has_gpu=False, gpu_memory=None, gpu_runtime=True)
    no_runtime = worker("no-runtime", 1, has_gpu=True, gpu_memory=24 * GIB, gpu_runtime=False)
    small = gpu_worker("small", gpu_memory=6 * GIB)
    cpu = worker("cpu", 2)
    result = plan(services, [amd, no_runtime, small, cpu])
    assert placed(result) == {"vision": ["small"]}
    (shortfall,) = result.shortfalls
    assert shortfall.service == "llm"
    for part in (
        "1 without an NVIDIA GPU",
        "1 missing the GPU container runtime",
        "1 short of GPU memory",
        "1 of another tier",
    ):
        assert part in shortfall.message

    result = plan(services, [amd, no_runtime, small, cpu, gpu_worker("big")])
    assert placed(result) == {"llm": ["big"], "vision": ["small"]}


def test_cpu_services_may_use_gpu_workers_of_their_tiers() -> None:
    result = plan(catalog(service("rag", tiers=[1, 2])), [gpu_worker("g")])
    assert placed(result) == {"rag": ["g"]}


# --- packing ------------------------------------------------------------------------------


def test_a_worker_hosts_several_services_while_ram_lasts() -> None:
    services = catalog(*(service(name, min_ram="3GiB") for name in ("a", "b", "c")))
    alone = plan(services, [worker("w1", ram=8 * GIB)])
    assert placed(alone) == {"a": ["w1"], "b": ["w1"]}
    (shortfall,) = alone.shortfalls
    assert shortfall.service == "c"
    assert "1 out of free RAM" in shortfall.message

    pair = plan(services, [worker("w1", ram=8 * GIB), worker("w2", ram=4 * GIB)])
    assert placed(pair) == {"a": ["w1"], "b": ["w2"], "c": ["w1"]}


def test_disk_adds_up_across_services() -> None:
    services = catalog(service("a", min_disk="60GiB"), service("b", min_disk="50GiB"))
    result = plan(services, [worker("w1", disk=100 * GIB)])
    assert placed(result) == {"a": ["w1"]}
    assert "out of free disk" in result.shortfalls[0].message


def test_gpu_memory_adds_up_across_gpu_services() -> None:
    services = catalog(
        service("llm", tiers=[1], gpu=True, min_gpu_memory="8GiB"),
        service("vision", tiers=[1], gpu=True, min_gpu_memory="6GiB"),
    )
    assert placed(plan(services, [gpu_worker("g", gpu_memory=12 * GIB)])) == {"llm": ["g"]}
    assert placed(plan(services, [gpu_worker("g", gpu_memory=24 * GIB)])) == {
        "llm": ["g"],
        "vision": ["g"],
    }


def test_services_without_minimums_always_fit() -> None:
    services = catalog(*(service(f"s{n}") for n in range(12)))
    result = plan(services, [worker("w1", ram=1 * GIB, disk=1 * GIB)])
    assert len(result.assignments) == 12


# --- grace period -------------------------------------------------------------------------


def test_an_offline_worker_keeps_its_services_for_the_grace_then_they_move() -> None:
    services = catalog(service("ner"))
    first = plan(services, [worker("w1", name="alice-pc"), worker("w2")])
    assert placed(first) == {"ner": ["w1"]}

    gone = [worker("w1", name="alice-pc", online=False), worker("w2")]
    held = plan(services, gone, first.assignments, now=T0 + 100)
    assert placed(held) == {"ner": ["w1"]}
    assert held.assignments[0].unplaceable_since == T0 + 100
    assert messages(held) == [
        "Worker alice-pc [w1] is offline: keeping ner there for up to 5 min in case it comes back"
    ]

    still = plan(services, gone, held.assignments, now=T0 + 100 + GRACE - 1)
    assert still.assignments == held.assignments
    assert still.changes == ()

    moved = plan(services, gone, still.assignments, now=T0 + 100 + GRACE)
    assert placed(moved) == {"ner": ["w2"]}
    assert messages(moved) == [
        "Moved ner from worker alice-pc [w1]: offline for 5 min",
        "Placed ner on worker w2 (tier 2)",
    ]


@pytest.mark.parametrize(
    ("away", "summary"),
    [
        ({"schedulability": "paused"}, "paused by its owner"),
        ({"schedulability": "drained"}, "drained by an admin"),
        ({"docker_usable": False}, "not able to run containers"),
    ],
)
def test_paused_drained_or_dockerless_workers_get_the_same_grace(
    away: dict[str, Any], summary: str
) -> None:
    services = catalog(service("rag"))
    first = plan(services, [worker("w1"), worker("w2")])
    workers = [worker("w1", **away), worker("w2")]
    held = plan(services, workers, first.assignments, now=T0 + 10)
    assert placed(held) == {"rag": ["w1"]}
    moved = plan(services, workers, held.assignments, now=T0 + 10 + GRACE)
    assert placed(moved) == {"rag": ["w2"]}
    assert messages(moved)[0] == f"Moved rag from worker w1: {summary} for 5 min"


def test_a_worker_that_flaps_keeps_its_services_and_nothing_moves() -> None:
    services = catalog(service("rag"), service("ner"))
    online = [worker("w1"), worker("w2", ram=16 * GIB)]
    current = plan(services, [online[0]]).assignments  # w1 has both
    offline = [worker("w1", online=False), online[1]]
    now = T0
    for cycle in range(20):  # offline for 4 min, back for 1 min, again and again
        now += 60
        state = offline if cycle % 5 != 4 else online
        result = plan(services, state, current, now=now)
        assert placed(result) == {"rag": ["w1"], "ner": ["w1"]}, cycle
        assert not [c for c in result.changes if c.kind in ("moved", "placed", "removed")]
        current = result.assignments
    assert {a.assigned_at for a in current} == {T0}


def test_back_within_the_grace_clears_the_hold() -> None:
    services = catalog(service("rag"))
    first = plan(services, [worker("w1")])
    held = plan(services, [worker("w1", online=False)], first.assignments, now=T0 + 60)
    back = plan(services, [worker("w1")], held.assignments, now=T0 + 120)
    assert back.assignments == first.assignments
    assert messages(back) == ["Worker w1 can run rag again; it stays there"]


def test_zero_grace_moves_at_once() -> None:
    services = catalog(service("rag"))
    first = plan(services, [worker("w1"), worker("w2")])
    moved = plan(services, [worker("w1", online=False), worker("w2")], first.assignments, grace=0)
    assert placed(moved) == {"rag": ["w2"]}


def test_a_held_service_with_nowhere_to_go_is_dropped_after_the_grace() -> None:
    services = catalog(service("rag"))
    first = plan(services, [worker("w1")])
    gone = [worker("w1", online=False)]
    held = plan(services, gone, first.assignments, now=T0 + 1)
    dropped = plan(services, gone, held.assignments, now=T0 + 1 + GRACE)
    assert dropped.assignments == ()
    assert "1 offline" in dropped.shortfalls[0].message
    # When it comes back it is a candidate like any other and gets the service again.
    again = plan(services, [worker("w1")], dropped.assignments, now=T0 + 2 * GRACE)
    assert placed(again) == {"rag": ["w1"]}


# --- changes to workers and to the catalogue ----------------------------------------------


def test_a_worker_that_no_longer_fits_loses_the_service_at_once() -> None:
    services = catalog(service("rag", tiers=[1, 2]))
    first = plan(services, [worker("w1"), worker("w2")])
    # w1 re-registered with less hardware: now tier 3.
    result = plan(services, [worker("w1", 3), worker("w2")], first.assignments, now=T0 + 1)
    assert placed(result) == {"rag": ["w2"]}
    assert messages(result)[0] == (
        "Moved rag from worker w1: it is tier 3 and rag runs on tier 1, 2"
    )


def test_a_service_removed_from_the_catalogue_goes_at_once() -> None:
    first = plan(catalog(service("rag"), service("ocr")), [worker("w1")])
    result = plan(catalog(service("rag")), [worker("w1")], first.assignments, now=T0 + 1)
    assert placed(result) == {"rag": ["w1"]}
    assert messages(result) == ["Removed ocr from worker w1: it is no longer in the catalogue"]


def test_a_service_added_to_the_catalogue_is_placed() -> None:
    first = plan(catalog(service("rag")), [worker("w1"), worker("w2")])
    result = plan(
        catalog(service("rag"), service("ocr")),
        [worker("w1"), worker("w2")],
        first.assignments,
        now=T0 + 1,
    )
    assert placed(result) == {"rag": ["w1"], "ocr": ["w2"]}


def test_raised_minimums_drop_the_newest_services_that_no_longer_fit() -> None:
    workers = [worker("w1", ram=8 * GIB)]
    current = [Assignment("w1", "a", T0), Assignment("w1", "b", T0 + 10)]
    raised = catalog(service("a", min_ram="5GiB"), service("b", min_ram="5GiB"))
    result = plan(raised, workers, current, now=T0 + 20)
    assert placed(result) == {"a": ["w1"]}
    assert messages(result)[0].startswith("Moved b from worker w1: its other services take")


def test_fewer_replicas_drop_the_newest_assignments() -> None:
    services = catalog(service("rag", replicas=3))
    workers = [worker("w1"), worker("w2"), worker("w3")]
    current = [
        Assignment("w1", "rag", T0 + 20),
        Assignment("w2", "rag", T0),
        Assignment("w3", "rag", T0 + 10),
    ]
    result = plan(catalog(service("rag", replicas=1)), workers, current, now=T0 + 30)
    assert placed(result) == {"rag": ["w2"]}
    assert messages(result) == [
        "Removed rag from worker w3: the catalogue asks for 1 replica",
        "Removed rag from worker w1: the catalogue asks for 1 replica",
    ]
    more = plan(services, workers, result.assignments, now=T0 + 40)
    assert placed(more) == {"rag": ["w1", "w2", "w3"]}


def test_fewer_replicas_drop_held_assignments_before_running_ones() -> None:
    workers = [worker("w1", online=False), worker("w2")]
    current = [
        Assignment("w1", "rag", T0, unplaceable_since=T0 + 5),
        Assignment("w2", "rag", T0 + 10),
    ]
    result = plan(catalog(service("rag", replicas=1)), workers, current, now=T0 + 20)
    assert placed(result) == {"rag": ["w2"]}


def test_assignments_of_unknown_workers_are_dropped() -> None:
    result = plan(catalog(service("rag")), [worker("w2")], [Assignment("w1", "rag", T0)])
    assert placed(result) == {"rag": ["w2"]}
    assert messages(result)[0] == "Removed rag from worker w1: the worker left the pool"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0 s"), (45, "45 s"), (300, "5 min"), (5400, "90 min"), (7200, "2 h")]
)
def test_durations_for_people(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- what the worker is told --------------------------------------------------------------


def test_assignment_reason_is_a_sentence_for_the_volunteer() -> None:
    spec = catalog(service("rag", description="Finds answers in the advice library.")).services[0]
    assert assignment_reason(spec, 2) == (
        "Tier 2 service worker: runs rag (finds answers in the advice library)"
    )
    ocr = catalog(service("ocr", description="OCR for scanned letters")).services[0]
    assert assignment_reason(ocr, 1) == "Tier 1 GPU worker: runs ocr (OCR for scanned letters)"
    bare = catalog(service("x")).services[0]
    assert assignment_reason(bare, 3) == "Tier 3 data worker: runs x"


def test_builder_copies_the_spec_in_catalogue_order() -> None:
    services = catalog(
        service("b", env={"A": "1"}, command=["serve"], health_path="/health", min_ram="1GiB"),
        service(
            "a",
            tiers=[3],
            volumes=["/data"],
            cap_add=["CHOWN"],
            min_disk="2GiB",
            gpu=False,
        ),
    )
    built = AssignmentBuilder(services).for_worker(2, ["a", "unknown", "b"])
    assert [assignment.service for assignment in built] == ["b", "a"]
    b, a = built
    assert (b.image, b.port, b.env, b.command, b.health_path, b.min_ram) == (
        "example.org/b:1",
        8000,
        {"A": "1"},
        ["serve"],
        "/health",
        GIB,
    )
    assert (a.volumes, a.cap_add, a.min_disk, a.gpu) == (["/data"], ["CHOWN"], 2 * GIB, False)
    assert a.reason.startswith("Tier 2 service worker: runs a")


# --- reading stored workers ---------------------------------------------------------------


def stored(**overrides: Any) -> WorkerState:
    values: dict[str, Any] = {
        "worker_id": "w1",
        "name": "box",
        "tier": 1,
        "status": "online",
        "drained": False,
        "owner_paused": False,
        "capabilities": {
            "cpu_cores": 8,
            "ram": 32 * GIB,
            "storage": 200 * GIB,
            "gpus": [
                {"vendor": "amd", "memory": 48 * GIB},
                {"vendor": "nvidia", "memory": 12 * GIB},
                {"vendor": "nvidia", "memory": 24 * GIB},
            ],
            "docker": {"usable": True, "status": "running", "gpu_runtime": True},
        },
        "docker": None,
    }
    return worker_state(**(values | overrides))


def test_stored_capabilities_read_for_placement() -> None:
    state = stored()
    assert (state.cpu_cores, state.ram, state.disk) == (8, 32 * GIB, 200 * GIB)
    assert (state.has_gpu, state.gpu_memory) == (True, 24 * GIB)  # the largest NVIDIA GPU
    assert (state.docker_usable, state.gpu_runtime, state.online) == (True, True, True)
    assert state.schedulability == "active"


def test_the_latest_heartbeat_docker_status_wins() -> None:
    state = stored(docker={"usable": False, "status": "not_running"})
    assert (state.docker_usable, state.gpu_runtime) == (False, False)
    assert stored(owner_paused=True, drained=True).schedulability == "drained"
    assert stored(status="offline").online is False


def test_seed_and_odd_capabilities_are_read_safely() -> None:
    seed = stored(capabilities={"cpu_cores": 16, "ram": 64 * GIB, "gpus": []})
    assert (seed.docker_usable, seed.has_gpu, seed.disk) == (False, False, None)
    apple = stored(
        capabilities={
            "gpus": [
                {"vendor": "nvidia", "memory": True, "unified_memory": False},
                {"vendor": "apple", "memory": GIB, "unified_memory": True},
            ]
        }
    )
    assert (apple.has_gpu, apple.gpu_memory, apple.ram) == (True, None, None)
    assert replace(apple, name=None).label == "w1"
    assert apple.label == "box [w1]"


def test_sensitive_services_go_only_to_trusted_workers() -> None:
    services = catalog(service("rag", sensitive=True, replicas=2), service("ocr"))
    workers = [worker("a"), worker("b", trusted=True)]
    result = plan(services, workers)
    assert placed(result) == {"rag": ["b"], "ocr": ["a"]}
    assert any("not trusted" in reason for reason in str(result.shortfalls).split(";"))


def test_losing_trust_takes_sensitive_services_away_at_once() -> None:
    services = catalog(service("rag", sensitive=True))
    first = plan(services, [worker("a", trusted=True)])
    assert placed(first) == {"rag": ["a"]}
    # No grace: personal data must not stay on a machine the admin stopped vouching for.
    second = plan(services, [worker("a", trusted=False)], first.assignments, now=T0 + 1)
    assert placed(second) == {}
