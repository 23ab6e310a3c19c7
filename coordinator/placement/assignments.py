"""What a worker is told to run: :class:`shared.ServiceAssignment` built from the catalogue."""

from __future__ import annotations

from collections.abc import Iterable

from shared import TIER_NAMES, ServiceAssignment, ServiceCatalog, ServiceSpec


def assignment_reason(spec: ServiceSpec, tier: int) -> str:
    """Why a worker runs ``spec``, for the volunteer.

    For example ``"Tier 2 service worker: runs rag (finds answers in the advice library)"``.
    """
    reason = f"Tier {tier} {TIER_NAMES.get(tier, 'worker')}: runs {spec.name}"
    description = spec.description.strip().rstrip(".")
    if description:
        # Lower-case the first letter of a sentence ("Finds ..."), not of an acronym ("OCR").
        if len(description) > 1 and description[0].isupper() and description[1].islower():
            description = description[0].lower() + description[1:]
        reason += f" ({description})"
    return reason


def build_assignment(spec: ServiceSpec, tier: int) -> ServiceAssignment:
    """The assignment of ``spec`` to a worker of ``tier``."""
    return ServiceAssignment(
        service=spec.name,
        image=spec.image,
        port=spec.port,
        env=dict(spec.env),
        command=list(spec.command) if spec.command is not None else None,
        gpu=spec.gpu,
        health_path=spec.health_path,
        volumes=list(spec.volumes),
        cap_add=list(spec.cap_add),
        min_ram=spec.min_ram,
        min_disk=spec.min_disk,
        reason=assignment_reason(spec, tier),
    )


class AssignmentBuilder:
    """Turns assigned service names into what the worker runs, in catalogue order.

    Every (service, tier) pair is built once up front, so answering a heartbeat only looks
    them up. A name the catalogue does not know (another coordinator replica placed it from a
    newer catalogue) is left out until this replica's catalogue has it.
    """

    def __init__(self, catalog: ServiceCatalog) -> None:
        self._order = {spec.name: index for index, spec in enumerate(catalog.services)}
        self._built = {
            (spec.name, tier): build_assignment(spec, tier)
            for spec in catalog.services
            for tier in TIER_NAMES
        }

    def for_worker(self, tier: int, services: Iterable[str]) -> list[ServiceAssignment]:
        """The assignments of a worker of ``tier`` that was given ``services``."""
        known = sorted(
            (name for name in services if name in self._order), key=self._order.__getitem__
        )
        return [self._built[(name, tier)] for name in known if (name, tier) in self._built]
