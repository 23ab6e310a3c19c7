"""The agent facade: the one object the tray app, ``rma-worker`` and the tests drive.

It joins the pool, keeps its identity, heartbeats on the coordinator's schedule, recovers
by itself (backoff when the coordinator is unreachable, re-registration under the same id
when the coordinator forgot it) and leaves the pool cleanly when stopped. Observers
subscribe to :class:`AgentStatus` changes instead of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import httpx

from desktop_app import __version__
from desktop_app.agent.backoff import Backoff
from desktop_app.agent.containers import ContainerRuntime
from desktop_app.agent.coordinator_client import (
    DEFAULT_TIMEOUT,
    CoordinatorClient,
    CoordinatorRefused,
    CoordinatorUnreachable,
)
from desktop_app.agent.credentials import CredentialStoreError
from desktop_app.agent.identity import IdentityStore, WorkerIdentity
from desktop_app.agent.listeners import Listeners
from desktop_app.agent.relay import RelayTunnel, TransportMode, ready_services
from shared import (
    PROTOCOL_VERSION,
    TIER_NAMES,
    ContainerReport,
    DockerInfo,
    HeartbeatRequest,
    RegisterRequest,
    Schedulability,
    ServiceAssignment,
    WorkerCapabilities,
)

log = logging.getLogger(__name__)

Phase = Literal["starting", "connecting", "contributing", "retrying", "refused", "stopped"]

FATAL_REFUSALS = frozenset(
    {"agent_too_old", "tier_requirements", "enrollment_required", "bad_enrollment"}
)
"""Refusals that retrying cannot fix: the volunteer (or operator) has to act."""

PROBE_MAX_AGE = 600.0
"""Seconds a hardware probe stays fresh for re-registrations."""

EXIT_OK = 0
EXIT_REFUSED = 3


class ProbeReport(Protocol):
    """What a hardware probe found: the capabilities and sentences about what is missing."""

    @property
    def capabilities(self) -> WorkerCapabilities: ...  # noqa: D102

    @property
    def notes(self) -> list[str]: ...  # noqa: D102


@dataclass(frozen=True)
class AgentConfig:
    """How the agent joins the pool."""

    coordinator_url: str
    name: str | None = None
    """The display name admins see; the host name by default."""
    enrollment_token: str | None = None
    max_retry_delay: float = 60.0
    """The longest wait between attempts to reach an unreachable coordinator."""
    unregister_timeout: float = 5.0
    """How long leaving the pool may take on stop before the agent gives up and exits."""
    reconcile_interval: float = 2.0
    """Seconds between checks of the containers while something is wrong (restarting,
    failing) and nothing prompts one sooner."""
    settled_interval: float = 10.0
    """Seconds between checks once every container runs and answers: each check costs the
    volunteer CPU, and a crash is still noticed within this time."""
    paused_interval: float = 60.0
    """Seconds between re-checks that nothing runs while the volunteer has paused."""
    pause_ack_timeout: float = 1.0
    """On pausing, how long the containers wait for the pool to confirm it routes no more
    work here before they stop anyway (an unreachable pool routes nothing here either)."""
    drain_timeout: float = 1.0
    """On pausing, how long work already under way may take to finish before the
    containers stop: the volunteer gets their computer back within about two seconds."""
    relay: bool = True
    """Answer end users' requests relayed through a tunnel to the coordinator (only where
    the agent runs containers)."""
    tunnel_transport: TransportMode = "auto"
    """How the tunnel reaches the coordinator: ``auto`` tries a WebSocket and falls back to
    HTTP long-polling where something in between blocks WebSockets."""


@dataclass(frozen=True)
class AgentStatus:
    """Where the agent stands, with a sentence for people."""

    phase: Phase
    message: str
    worker_id: str | None = None
    tier: int | None = None
    schedulability: Schedulability | None = None
    capabilities: WorkerCapabilities | None = None
    containers: tuple[ContainerReport, ...] = ()
    """The pool's containers on this machine and how each is doing."""
    docker: DockerInfo | None = None
    """Docker's status as the container runtime last saw it (None before its first look)."""


class Agent:
    """Membership of the pool: register, heartbeat, recover, leave."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        identities: IdentityStore,
        probe: Callable[[], ProbeReport],
        load_sampler: Callable[[], float],
        containers: ContainerRuntime | None = None,
        http: httpx.AsyncClient | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        """Nothing runs until :meth:`run`.

        Args:
            config: How to join the pool.
            identities: Where this computer's worker identity is kept.
            probe: Probes the hardware.
            load_sampler: The machine's CPU use, for heartbeats.
            containers: Runs the assigned services (None: membership only).
            http: The HTTP client (tests inject one); made per run otherwise.
            in_flight: How many requests the pool's services here are answering; a pause
                lets them finish (up to ``drain_timeout``). None when nothing counts them;
                the relay tunnel's count when it runs.
        """
        self._config = config
        self._tunnel = (
            RelayTunnel(
                # Only once registered: a saved identity may be one the pool forgot.
                lambda: self._identity if self._registered else None,
                containers.local_url,
                mode=config.tunnel_transport,
            )
            if containers is not None and config.relay
            else None
        )
        if in_flight is None and self._tunnel is not None:
            in_flight = self._tunnel.in_flight
        self._in_flight = in_flight
        self._pause_generation = 0
        self._pause_acked_generation = 0
        self._pause_acked: asyncio.Event | None = None
        self._containers = containers
        self._assignments: list[ServiceAssignment] = []
        self._reports: list[ContainerReport] = []
        self._containers_changed: asyncio.Event | None = None
        self._assignments_known: asyncio.Event | None = None
        self._identities = identities
        self._probe = probe
        self._load_sampler = load_sampler
        self._http = http
        self._status = AgentStatus("starting", "Starting up.")
        self._listeners: Listeners[AgentStatus] = Listeners("status")
        self._identity: WorkerIdentity | None = None
        self._registered = False
        self._paused = False
        self._stop_requested = False
        self._probed: tuple[float, WorkerCapabilities] | None = None
        self._register_again = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._wake_event: asyncio.Event | None = None

    # -- observing -------------------------------------------------------------------------

    @property
    def status(self) -> AgentStatus:
        """The latest status."""
        return self._status

    def subscribe(self, listener: Callable[[AgentStatus], None]) -> Callable[[], None]:
        """Call ``listener`` with every new status (on the agent's thread); returns unsubscribe."""
        return self._listeners.subscribe(listener)

    def _publish(self, status: AgentStatus) -> None:
        if status == self._status:
            return
        if status.phase != self._status.phase or status.message != self._status.message:
            log.info("%s", status.message)
        self._status = status
        self._listeners.notify(status)

    # -- controlling (thread-safe) ---------------------------------------------------------

    def stop(self) -> None:
        """Ask the agent to leave the pool and return from :meth:`run`. Safe from any thread."""
        self._stop_requested = True
        self._notify(self._stop_event)
        self._notify(self._containers_changed)

    def set_paused(self, paused: bool) -> None:
        """Pause (or resume) contribution. Safe from any thread.

        Pausing tells the pool first (a heartbeat goes at once), lets work under way finish
        (bounded), then stops the containers; resuming starts them.
        """
        if paused and not self._paused:
            self._pause_generation += 1
        self._paused = paused
        loop = self._loop
        if loop is not None and self._tunnel is not None:
            # Queued before the container loop wakes: the tunnel refuses new requests
            # before that loop lets the ones under way finish.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._update_tunnel)
        self._notify(self._wake_event)
        self._notify(self._containers_changed)

    def register_again(self) -> None:
        """Probe and register again under the same identity, keeping the containers running.

        For a change in what this computer offers (the graphics card while the volunteer is
        away): the pool re-plans from the new capabilities and answers with new assignments.
        Safe from any thread.
        """
        self._register_again = True
        self._notify(self._wake_event)

    def _notify(self, event: asyncio.Event | None) -> None:
        loop = self._loop
        if loop is not None and event is not None:
            # The loop may close between the check and the call when run() just returned.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Be a member of the pool until :meth:`stop`; return the process exit code."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._wake_event = asyncio.Event()
        if self._stop_requested:
            self._stop_event.set()
        http = self._http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        client = CoordinatorClient(self._config.coordinator_url, http)
        maximum = self._config.max_retry_delay
        backoff = Backoff(initial=min(1.0, maximum), maximum=maximum)
        self._containers_changed = asyncio.Event()
        self._assignments_known = asyncio.Event()
        self._pause_acked = asyncio.Event()
        runtime = self._containers
        containers_task = (
            asyncio.create_task(self._containers_loop(runtime), name="containers")
            if runtime is not None
            else None
        )
        tunnel = self._tunnel
        tunnel_task = None
        if tunnel is not None:
            self._update_tunnel()
            # It opens once the agent has registered (it watches for an identity).
            tunnel_task = asyncio.create_task(tunnel.run(), name="relay tunnel")
        try:
            self._identity = await asyncio.to_thread(self._load_identity, client.base_url)
            exit_code = await self._membership_loop(client, backoff)
            await self._leave(client)
            return exit_code
        finally:
            if tunnel is not None and tunnel_task is not None:
                # Before the containers stop: no request may be relayed to a stopped one.
                tunnel.stop()
                try:
                    await tunnel_task
                except Exception:
                    log.exception("The relay tunnel failed")
            if runtime is not None and containers_task is not None:
                containers_task.cancel()
                try:
                    await containers_task
                except asyncio.CancelledError:
                    pass
                except Exception:  # whatever happened there, the containers must stop
                    log.exception("The container loop failed")
                # Never leave a container running after the volunteer quit.
                try:
                    await asyncio.to_thread(runtime.stop_all)
                    log.info("Stopped the pool's containers on this computer.")
                except Exception:
                    log.exception("Could not stop the pool's containers")
            self._loop = None
            if self._http is None:
                await http.aclose()
            if self._status.phase != "refused":  # keep the reason the pool gave
                self._publish(replace(self._status, phase="stopped", message="Stopped."))

    def _load_identity(self, coordinator_url: str) -> WorkerIdentity | None:
        try:
            return self._identities.load(coordinator_url)
        except (CredentialStoreError, OSError) as exc:
            log.warning("Could not read this computer's pool identity (%s); joining afresh", exc)
            return None

    async def _membership_loop(self, client: CoordinatorClient, backoff: Backoff) -> int:
        assert self._stop_event is not None
        assert self._wake_event is not None
        while not self._stop_event.is_set():
            # Cleared before this pass reads the state, so a pause or re-registration asked
            # for while a heartbeat is in flight wakes the next wait at once (not in 30 s).
            self._wake_event.clear()
            if self._register_again:
                self._register_again = False
                self._probed = None
                self._registered = False
            try:
                if self._registered and self._identity is not None:
                    delay = await self._heartbeat(client, self._identity)
                else:
                    delay = await self._register(client)
                backoff.reset()
            except CoordinatorUnreachable as exc:
                delay = backoff.next_delay()
                log.debug("%s", exc)
                self._publish(
                    replace(
                        self._status,
                        phase="retrying",
                        message=f"Cannot reach the pool at {client.base_url}; trying again in "
                        f"{delay:.0f} s.",
                    )
                )
            except CoordinatorRefused as exc:
                if exc.code in FATAL_REFUSALS:
                    self._publish(
                        replace(self._status, phase="refused", message=f"The pool said: {exc}")
                    )
                    return EXIT_REFUSED
                delay = await self._recover_identity(exc)
            await self._wait(delay)
        return EXIT_OK

    async def _register(self, client: CoordinatorClient) -> float:
        self._publish(
            replace(
                self._status,
                phase="connecting",
                message=f"Checking this computer and joining the pool at {client.base_url}.",
            )
        )
        capabilities = await self._capabilities()
        identity = self._identity
        request = RegisterRequest(
            capabilities=capabilities,
            protocol_version=PROTOCOL_VERSION,
            worker_id=identity.worker_id if identity else None,
            name=self._config.name or socket.gethostname(),
            agent_version=__version__,
            enrollment_token=self._config.enrollment_token,
        )
        response = await client.register(request, identity.token if identity else None)
        self._identity = WorkerIdentity(response.worker_id, response.worker_token, client.base_url)
        try:
            await asyncio.to_thread(self._identities.save, self._identity)
        except (CredentialStoreError, OSError) as exc:
            # Keep contributing with the identity in memory; only a restart loses it.
            log.warning(
                "Could not save this computer's pool identity (%s); it will join as a new "
                "worker after a restart.",
                exc,
            )
        self._registered = True
        self._apply_assignments(response.assigned_containers)
        tier_name = TIER_NAMES.get(response.tier, f"tier {response.tier}")
        self._publish(
            replace(
                self._status,
                phase="contributing",
                message=f"Connected to the pool as a tier {response.tier} {tier_name} "
                f"({response.tier_reason}).",
                worker_id=response.worker_id,
                tier=response.tier,
                schedulability=response.schedulability,
                capabilities=capabilities,
            )
        )
        # Registering says nothing of a pause: say it at once, so no work is routed here.
        return 0.0 if self._paused else response.next_heartbeat_in

    async def _capabilities(self) -> WorkerCapabilities:
        """The machine's capabilities, probed again only when the last probe is stale.

        Retrying a registration every few seconds must not re-run the Docker and GPU probes
        (each can take seconds) or repeat their log lines.
        """
        now = time.monotonic()
        if self._probed is not None and now - self._probed[0] < PROBE_MAX_AGE:
            return self._probed[1]
        report = await asyncio.to_thread(self._probe)
        for note in report.notes:
            log.info("Hardware: %s", note)
        capabilities = report.capabilities
        if capabilities.docker is not None and not capabilities.docker.usable:
            log.warning(
                "Docker is not available, so this computer cannot run the pool's containers "
                "yet: %s",
                capabilities.docker.message or capabilities.docker.status,
            )
        self._probed = (now, capabilities)
        return capabilities

    async def _heartbeat(self, client: CoordinatorClient, identity: WorkerIdentity) -> float:
        load = await asyncio.to_thread(self._load_sampler)
        paused, generation = self._paused, self._pause_generation
        response = await client.heartbeat(
            HeartbeatRequest(
                worker_id=identity.worker_id,
                current_load=max(0.0, load),
                paused=paused,
                containers=list(self._reports) if self._containers is not None else None,
                docker=self._containers.docker if self._containers is not None else None,
            ),
            identity.token,
        )
        if paused:
            self._pause_acked_generation = generation
            if self._pause_acked is not None:
                self._pause_acked.set()
        self._apply_assignments(response.assigned_containers)
        self._publish(
            replace(
                self._status,
                phase="contributing",
                message=self._status.message
                if self._status.phase == "contributing"
                else f"Connected to the pool again as worker {identity.worker_id}.",
                tier=response.tier,
                schedulability=response.schedulability,
            )
        )
        return response.next_heartbeat_in

    def _apply_assignments(self, assignments: list[ServiceAssignment]) -> None:
        """Take the coordinator's current assignments; wake the container loop on a change."""
        if self._assignments_known is not None:
            self._assignments_known.set()
        if assignments != self._assignments:
            self._assignments = list(assignments)
            self._notify(self._containers_changed)

    def _containers_wanted(self) -> bool:
        # Paused, the containers stop once the pool has heard it (see _let_work_finish).
        return not (self._paused or self._stop_requested)

    async def _containers_loop(self, runtime: ContainerRuntime) -> None:
        """Keep the containers matching the assignments, until cancelled.

        It starts once the coordinator has said what to run (the first registration), so
        containers left running from before a restart are adopted rather than removed.
        A pause or quit stops the containers but keeps their data volumes; only an
        assignment the coordinator takes away removes them.
        """
        assert self._containers_changed is not None and self._assignments_known is not None
        changed = self._containers_changed
        await self._assignments_known.wait()
        if self._containers_wanted():
            adopted = await asyncio.to_thread(runtime.adopt_or_clean, list(self._assignments))
            self._take_reports(adopted)
        # Paused from the start (the volunteer is at the keyboard): nothing is adopted or
        # started; the first pass below stops whatever was left running.
        while True:
            changed.clear()
            delay = self._config.reconcile_interval
            try:
                if self._containers_wanted():
                    reports = await asyncio.to_thread(runtime.reconcile, list(self._assignments))
                    self._take_reports(reports)
                    delay = next_reconcile_delay(reports, delay, self._config.settled_interval)
                else:
                    if self._reports and not self._stop_requested:
                        await self._let_work_finish()
                    if not self._containers_wanted():  # unless resumed meanwhile
                        await asyncio.to_thread(runtime.stop_all)
                        self._take_reports([])
                        delay = self._config.paused_interval
            except Exception:  # Docker failures are reported; this keeps the loop alive
                log.exception("Checking the pool's containers failed; trying again shortly")
            # Wake for the next pass after the delay, when the assignments change, or when
            # a download finishes (wait_for_work), whichever comes first.
            work = asyncio.ensure_future(asyncio.to_thread(runtime.wait_for_work, delay))
            wake = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({work, wake}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wake.cancel()
                if not work.done():
                    # Release the waiting thread now: with long waits, abandoned ones would
                    # fill asyncio's small thread pool and stall the next pass.
                    runtime.wake()
                    await work

    async def _let_work_finish(self) -> None:
        """Before the containers stop for a pause: the pool first, then work under way."""
        assert self._pause_acked is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.pause_ack_timeout
        while self._registered and self._pause_acked_generation != self._pause_generation:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._containers_wanted():
                if remaining <= 0:
                    log.warning("The pool did not confirm the pause in time; stopping anyway.")
                break
            self._pause_acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pause_acked.wait(), remaining)
        if self._in_flight is None:
            return
        deadline = loop.time() + self._config.drain_timeout
        while (busy := self._in_flight()) > 0 and not self._containers_wanted():
            if loop.time() >= deadline:
                log.info("Stopping with %d request(s) still being answered.", busy)
                return
            await asyncio.sleep(0.05)

    def _take_reports(self, reports: list[ContainerReport]) -> None:
        before = {report.service: report for report in self._reports}
        for report in reports:
            old = before.get(report.service)
            if old is None or (old.state, old.message) != (report.state, report.message):
                log.info("Service %s: %s", report.service, describe_container(report))
        for service in before.keys() - {report.service for report in reports}:
            log.info("Service %s: removed from this computer.", service)
        self._reports = reports
        self._update_tunnel()
        docker = self._containers.docker if self._containers is not None else None
        if tuple(reports) != self._status.containers or docker != self._status.docker:
            self._publish(replace(self._status, containers=tuple(reports), docker=docker))

    def _update_tunnel(self) -> None:
        """Tell the tunnel which services answer here now and whether the volunteer paused."""
        if self._tunnel is not None and self._containers is not None:
            services = ready_services(self._reports, self._containers.local_url)
            self._tunnel.update(services, self._paused)

    async def _recover_identity(self, refusal: CoordinatorRefused) -> float:
        """Decide what a refusal means for who we are; return the delay before trying again."""
        identity = self._identity
        if refusal.code in {"unknown_worker", "bad_token"} and self._registered:
            # The coordinator lost or removed us: register again under the same id.
            log.warning("The pool no longer knows this worker (%s); registering again", refusal)
            self._registered = False
            return 0.0
        if identity is not None:
            # Our id is someone else's, or our token is not accepted for it: start afresh.
            log.warning("The pool refused this worker's identity (%s); joining afresh", refusal)
            try:
                await asyncio.to_thread(self._identities.forget, identity.worker_id)
            except (CredentialStoreError, OSError) as exc:
                log.warning("Could not delete the refused identity: %s", exc)
            self._identity = None
            self._registered = False
            return 0.0
        self._publish(replace(self._status, phase="retrying", message=f"The pool said: {refusal}"))
        return self._config.max_retry_delay

    async def _wait(self, delay: float) -> None:
        assert self._stop_event is not None and self._wake_event is not None
        if delay <= 0:
            return
        stop = asyncio.ensure_future(self._stop_event.wait())
        wake = asyncio.ensure_future(self._wake_event.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _leave(self, client: CoordinatorClient) -> None:
        identity = self._identity
        if identity is None or not self._registered:
            return
        try:
            await asyncio.wait_for(
                client.unregister(identity.worker_id, identity.token),
                timeout=self._config.unregister_timeout,
            )
            log.info("Left the pool (worker %s unregistered).", identity.worker_id)
        except (CoordinatorUnreachable, CoordinatorRefused, TimeoutError) as exc:
            log.warning("Could not tell the pool that this worker is leaving: %s", exc)
        self._registered = False


TRANSITION_RECHECK = 0.25
"""Seconds between container checks while one is starting: it runs as soon as it answers."""
PULL_RECHECK = 1.0
"""Seconds between checks while downloading, so the progress people see moves."""


def next_reconcile_delay(
    reports: list[ContainerReport], idle_interval: float, settled_interval: float | None = None
) -> float:
    """How long to wait before the next container check.

    Short while a container is starting (so the volunteer and the pool see it running as
    soon as its health check answers) or downloading (so its progress moves); long once
    every container runs; the normal interval otherwise (restarts, errors). Downloads
    wake the loop by themselves when they finish.
    """
    if any(report.state == "starting" for report in reports):
        return min(TRANSITION_RECHECK, idle_interval)
    if any(report.state == "pulling" for report in reports):
        return min(PULL_RECHECK, idle_interval)
    if settled_interval is not None and all(report.state == "running" for report in reports):
        return max(settled_interval, idle_interval)
    return idle_interval


_STATE_WORDS = {
    "pulling": "downloading",
    "starting": "starting",
    "running": "running",
    "unhealthy": "running but not answering its health check",
    "exited": "stopped",
    "error": "cannot run",
}


def describe_container(report: ContainerReport) -> str:
    """One line for people: ``"downloading (45%)"``, ``"cannot run: not enough disk"``."""
    words = _STATE_WORDS.get(report.state, report.state)
    if report.state == "pulling" and report.progress is not None:
        words += f" ({report.progress:.0%})"
    return f"{words}: {report.message}" if report.message else words + "."
