"""Placement: which workers run which services. Pure: no database, no clock, no logging.

:func:`plan_placement` takes the catalogue, the workers as they are now, the assignments
that exist and the time, and returns the assignments there should be, with every change
described in plain words. It runs in two steps:

1. **Candidates.** A worker may take a service when it is online, active (not paused by its
   owner, not drained by an admin), can run containers (Docker usable, and the GPU runtime
   for GPU services), is of one of the service's tiers and has the hardware: an NVIDIA GPU
   with enough memory for GPU services, enough CPU cores, and enough RAM, disk and GPU
   memory left after the services already placed on it (their ``min_ram``, ``min_disk`` and
   ``min_gpu_memory`` add up, so one worker hosts several services when it has room).
2. **Spread.** Each missing replica goes to the candidate with the fewest assignments, ties
   broken by worker id, so the same inputs always give the same plan.

Existing assignments are kept while they are valid, so nothing moves when a worker joins.
A worker that goes offline, is paused or drained, or whose Docker stops keeps its
assignments for a grace period (home PCs reboot; Docker Desktop restarts), and only then do
they move. One that comes back within the grace period keeps everything: the grace starts
again the next time it goes away. What is wrong for good moves at once: a service removed
from the catalogue, or a worker whose tier or hardware no longer fits the service. When the
catalogue asks for fewer replicas, the assignments kept are those on available workers,
oldest first; the newest extra ones go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from shared import Schedulability, ServiceCatalog, ServiceSpec
from shared.units import format_bytes

GPU_RUNTIME_VENDORS = frozenset({"nvidia"})
"""GPU makers whose cards a container can use through the GPU runtime the agent reports
(the NVIDIA container toolkit)."""


@dataclass(frozen=True)
class WorkerState:
    """What placement needs to know about one worker."""

    worker_id: str
    tier: int
    online: bool = True
    schedulability: Schedulability = "active"
    docker_usable: bool = False
    """Whether the worker's Docker engine answers and may be used (its latest report)."""
    gpu_runtime: bool = False
    """Whether a GPU container runtime is configured in that engine."""
    cpu_cores: int | None = None
    ram: int | None = None
    disk: int | None = None
    """Free disk where containers keep their images and data, in bytes."""
    has_gpu: bool = False
    """Whether it has a GPU that containers can use (see :data:`GPU_RUNTIME_VENDORS`)."""
    gpu_memory: int | None = None
    """The memory of its largest such GPU, in bytes, when known."""
    name: str | None = None
    trusted: bool = False
    """An admin trusts it with services that handle people's personal data."""

    @property
    def label(self) -> str:
        """How logs name it: the display name with the id, or the id."""
        return f"{self.name} [{self.worker_id}]" if self.name else self.worker_id


@dataclass(frozen=True)
class Assignment:
    """One service placed on one worker."""

    worker_id: str
    service: str
    assigned_at: float
    """When it was placed there (Unix seconds)."""
    unplaceable_since: float | None = None
    """Since when the worker has been unable to run it (offline, paused, drained, Docker
    gone); None while it can. The assignment moves once this is older than the grace."""


ChangeKind = Literal["placed", "moved", "removed", "holding", "restored"]


@dataclass(frozen=True)
class PlacementChange:
    """One change a plan makes, with a sentence for the log."""

    kind: ChangeKind
    service: str
    worker_id: str
    message: str


@dataclass(frozen=True)
class Shortfall:
    """A service with fewer replicas placed than the catalogue asks for, and why."""

    service: str
    placed: int
    wanted: int
    message: str


@dataclass(frozen=True)
class PlacementPlan:
    """What placement decided."""

    assignments: tuple[Assignment, ...]
    """Every assignment there should be, sorted by worker id and service."""
    changes: tuple[PlacementChange, ...] = ()
    shortfalls: tuple[Shortfall, ...] = ()
    workers: int = 0
    """How many workers were considered."""


class Problem(NamedTuple):
    """Why a worker cannot take a service."""

    summary: str
    """A short phrase that reads after "is" and after a count: ``"offline"``."""
    detail: str
    """The same with the numbers, for a log line about one worker."""


@dataclass
class _Usage:
    """What the services placed on one worker ask of it."""

    assignments: int = 0
    ram: int = 0
    disk: int = 0
    gpu_memory: int = 0

    def add(self, spec: ServiceSpec) -> None:
        self.assignments += 1
        self.ram += spec.min_ram or 0
        self.disk += spec.min_disk or 0
        if spec.gpu:
            self.gpu_memory += spec.min_gpu_memory or 0


@dataclass
class _Planning:
    """The state of one planning pass."""

    now: float
    workers: dict[str, WorkerState]
    kept: dict[str, list[Assignment]]
    changes: list[PlacementChange] = field(default_factory=list)

    def change(self, kind: ChangeKind, assignment: Assignment, message: str) -> None:
        self.changes.append(
            PlacementChange(kind, assignment.service, assignment.worker_id, message)
        )

    def fresh_usage(self) -> dict[str, _Usage]:
        return {worker_id: _Usage() for worker_id in self.workers}


def unavailable(worker: WorkerState, spec: ServiceSpec) -> Problem | None:
    """Why ``worker`` cannot run ``spec`` now, for a reason that may pass (or None)."""
    if not worker.online:
        return Problem("offline", "it is offline")
    if worker.schedulability == "drained":
        return Problem("drained by an admin", "an admin drained it")
    if worker.schedulability == "paused":
        return Problem("paused by its owner", "its owner paused it")
    if not worker.docker_usable:
        return Problem("not able to run containers", "its Docker is not usable")
    if spec.gpu and not worker.gpu_runtime:
        return Problem(
            "missing the GPU container runtime", "its Docker has no GPU container runtime"
        )
    return None


def misfit(worker: WorkerState, spec: ServiceSpec) -> Problem | None:
    """Why ``worker`` can never run ``spec`` as it is (tier or hardware), or None."""
    if spec.sensitive and not worker.trusted:
        # Volunteers are strangers: personal data only goes where an admin vouched for it.
        return Problem(
            "not trusted",
            f"{spec.name} handles personal data and an admin has not marked it trusted",
        )
    if worker.tier not in spec.tiers:
        tiers = ", ".join(str(tier) for tier in spec.tiers)
        return Problem(
            "of another tier", f"it is tier {worker.tier} and {spec.name} runs on tier {tiers}"
        )
    if spec.gpu and not worker.has_gpu:
        return Problem("without an NVIDIA GPU", "it has no NVIDIA GPU")
    if spec.gpu and spec.min_gpu_memory and (worker.gpu_memory or 0) < spec.min_gpu_memory:
        gpu_memory = format_bytes(worker.gpu_memory) if worker.gpu_memory else "an unknown amount"
        return Problem(
            "short of GPU memory",
            f"its GPU has {gpu_memory} of memory and {spec.name} needs "
            f"{format_bytes(spec.min_gpu_memory)}",
        )
    if spec.min_cpu_cores and (worker.cpu_cores or 0) < spec.min_cpu_cores:
        return Problem(
            "short of CPU cores",
            f"it has {worker.cpu_cores or 'an unknown number of'} CPU cores and {spec.name} "
            f"needs {spec.min_cpu_cores}",
        )
    for what, has, needs in (
        ("RAM", worker.ram, spec.min_ram),
        ("disk", worker.disk, spec.min_disk),
    ):
        if needs and (has or 0) < needs:
            amount = format_bytes(has) if has is not None else "an unknown amount"
            return Problem(
                f"short of {what}",
                f"it has {amount} of {what} and {spec.name} needs {format_bytes(needs)}",
            )
    return None


def _no_room(worker: WorkerState, spec: ServiceSpec, used: _Usage) -> Problem | None:
    """Why the services already on ``worker`` leave no room for ``spec``, or None."""
    needs: list[tuple[str, int | None, int, int]] = [
        ("RAM", worker.ram, used.ram, spec.min_ram or 0),
        ("disk", worker.disk, used.disk, spec.min_disk or 0),
    ]
    if spec.gpu:
        needs.append(("GPU memory", worker.gpu_memory, used.gpu_memory, spec.min_gpu_memory or 0))
    for what, total, taken, need in needs:
        if need and total is not None and taken + need > total:
            return Problem(
                f"out of free {what}",
                f"its other services take {format_bytes(taken)} of its "
                f"{format_bytes(total)} {what} and {spec.name} needs {format_bytes(need)}",
            )
    return None


def format_duration(seconds: float) -> str:
    """A duration for people: ``"45 s"``, ``"5 min"``, ``"3 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def plan_placement(
    catalog: ServiceCatalog,
    workers: Iterable[WorkerState],
    current: Iterable[Assignment],
    now: float,
    *,
    grace: float,
) -> PlacementPlan:
    """Decide which workers run which services (see the module's docstring for the rules).

    Args:
        catalog: The services and how many replicas of each.
        workers: Every registered worker.
        current: The assignments that exist now.
        now: The time (Unix seconds); new assignments and holds are stamped with it.
        grace: Seconds an assignment stays on a worker that went away before it moves.

    Returns:
        The assignments there should be, the changes from ``current`` in plain words, and
        the services that could not get all their replicas.
    """
    planning = _Planning(
        now=now,
        workers={worker.worker_id: worker for worker in workers},
        kept={spec.name: [] for spec in catalog.services},
    )
    _keep_valid(planning, catalog, current, grace)
    _trim_replicas(planning, catalog)
    shortfalls = _place_missing(planning, catalog)
    assignments = sorted(
        (assignment for kept in planning.kept.values() for assignment in kept),
        key=lambda assignment: (assignment.worker_id, assignment.service),
    )
    return PlacementPlan(
        tuple(assignments), tuple(planning.changes), tuple(shortfalls), len(planning.workers)
    )


def _keep_valid(
    planning: _Planning, catalog: ServiceCatalog, current: Iterable[Assignment], grace: float
) -> None:
    """Keep each existing assignment that is still valid, holding those of absent workers."""
    now = planning.now
    usage = planning.fresh_usage()
    specs = {spec.name: spec for spec in catalog.services}
    # Oldest first, so when a worker no longer has room for all its services (the catalogue
    # raised a minimum), the ones it has run longest stay.
    for assignment in sorted(current, key=lambda a: (a.assigned_at, a.worker_id, a.service)):
        worker = planning.workers.get(assignment.worker_id)
        spec = specs.get(assignment.service)
        if worker is None:
            planning.change(
                "removed",
                assignment,
                f"Removed {assignment.service} from worker {assignment.worker_id}: "
                "the worker left the pool",
            )
            continue
        if spec is None:
            planning.change(
                "removed",
                assignment,
                f"Removed {assignment.service} from worker {worker.label}: "
                "it is no longer in the catalogue",
            )
            continue
        problem = misfit(worker, spec) or _no_room(worker, spec, usage[worker.worker_id])
        if problem is not None:
            planning.change(
                "moved",
                assignment,
                f"Moved {spec.name} from worker {worker.label}: {problem.detail}",
            )
            continue
        away = unavailable(worker, spec)
        if away is None:
            if assignment.unplaceable_since is not None:
                planning.change(
                    "restored",
                    assignment,
                    f"Worker {worker.label} can run {spec.name} again; it stays there",
                )
                assignment = replace(assignment, unplaceable_since=None)
        else:
            since = assignment.unplaceable_since
            if since is None:
                since = now
            if now - since >= grace:
                planning.change(
                    "moved",
                    assignment,
                    f"Moved {spec.name} from worker {worker.label}: "
                    f"{away.summary} for {format_duration(now - since)}",
                )
                continue
            if assignment.unplaceable_since is None:
                planning.change(
                    "holding",
                    assignment,
                    f"Worker {worker.label} is {away.summary}: keeping {spec.name} there for "
                    f"up to {format_duration(grace)} in case it comes back",
                )
                assignment = replace(assignment, unplaceable_since=now)
        planning.kept[spec.name].append(assignment)
        usage[worker.worker_id].add(spec)


def _trim_replicas(planning: _Planning, catalog: ServiceCatalog) -> None:
    """Drop the assignments beyond each service's replicas: held ones, then the newest."""
    for spec in catalog.services:
        kept = planning.kept[spec.name]
        if len(kept) <= spec.replicas:
            continue
        kept.sort(key=lambda a: (a.unplaceable_since is not None, a.assigned_at, a.worker_id))
        for extra in kept[spec.replicas :]:
            worker = planning.workers[extra.worker_id]
            planning.change(
                "removed",
                extra,
                f"Removed {spec.name} from worker {worker.label}: the catalogue asks for "
                f"{spec.replicas} replica{'' if spec.replicas == 1 else 's'}",
            )
        del kept[spec.replicas :]


def _place_missing(planning: _Planning, catalog: ServiceCatalog) -> list[Shortfall]:
    """Place each service's missing replicas on the least busy candidates."""
    usage = planning.fresh_usage()
    for spec in catalog.services:
        for assignment in planning.kept[spec.name]:
            usage[assignment.worker_id].add(spec)
    shortfalls = []
    for spec in catalog.services:
        kept = planning.kept[spec.name]
        missing = spec.replicas - len(kept)
        if missing <= 0:
            continue
        hosts = {assignment.worker_id for assignment in kept}
        rejected: Counter[str] = Counter()
        # Placing a replica changes only the chosen worker's count, and that worker is not
        # considered again for this service, so one ranking serves all of its replicas.
        ranked = sorted(
            planning.workers.values(),
            key=lambda worker: (usage[worker.worker_id].assignments, worker.worker_id),
        )
        for worker in ranked:
            if missing == 0:
                break
            if worker.worker_id in hosts:
                continue
            used = usage[worker.worker_id]
            # What can never change first: "of another tier" says more than "offline".
            problem = (
                misfit(worker, spec) or unavailable(worker, spec) or _no_room(worker, spec, used)
            )
            if problem is not None:
                rejected[problem.summary] += 1
                continue
            assignment = Assignment(worker.worker_id, spec.name, assigned_at=planning.now)
            kept.append(assignment)
            used.add(spec)
            missing -= 1
            planning.change(
                "placed",
                assignment,
                f"Placed {spec.name} on worker {worker.label} (tier {worker.tier})",
            )
        if missing > 0:
            if kept:
                rejected["already running it"] = len(kept)
            shortfalls.append(_shortfall(spec, len(kept), len(planning.workers), rejected))
    return shortfalls


def _shortfall(spec: ServiceSpec, placed: int, workers: int, rejected: Counter[str]) -> Shortfall:
    if workers == 0:
        why = "no workers are registered"
    else:
        reasons = ", ".join(f"{count} {summary}" for summary, count in rejected.most_common())
        why = f"of {workers} worker{'' if workers == 1 else 's'}: {reasons}"
    return Shortfall(
        spec.name,
        placed,
        spec.replicas,
        f"Could not place {spec.name}: {placed} of {spec.replicas} "
        f"replica{'' if spec.replicas == 1 else 's'} placed; {why}",
    )
