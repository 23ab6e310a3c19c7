"""Run the services the coordinator assigned, in Docker, and say how each one is doing.

:class:`ContainerRuntime` is level-triggered: the agent calls :meth:`ContainerRuntime.reconcile`
with the desired assignments again and again (from a worker thread; every call blocks on
Docker for a moment), and each call moves every service one step towards what is desired
from what the engine says now, then returns a :class:`~shared.ContainerReport` per service.
Nothing is remembered that the engine can tell instead, so a crash of the agent, a restart
of Docker or a container someone removed by hand all heal on the next pass.

Downloads are the one slow step, so they run on background threads (one per image) and a
pass only looks at how far they came: a pass never waits for a download, and the report says
``pulling`` with bytes done/total meanwhile. :meth:`ContainerRuntime.wait_for_work` lets
the caller's loop wake as soon as a download finishes.

Containers are found by labels (``security.py``); a container without this agent
instance's labels is never stopped, removed or adopted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from shared import ContainerReport, ContainerState, DockerInfo, ServiceAssignment

from ..backoff import Backoff
from ..listeners import Listeners
from .errors import ContainerRuntimeError, DockerUnavailable, PullCancelled
from .gateway import ContainerInfo, DockerGateway
from .progress import PullProgress
from .security import (
    SERVICE_LABEL,
    SPEC_LABEL,
    ContainerSpec,
    ResourceLimits,
    container_spec,
    owner_labels,
)
from .stats import ContainerDetails, CpuMeter

logger = logging.getLogger(__name__)

_MESSAGE_LIMIT = 1000  # ContainerReport.message max_length
_PROGRESS_PUBLISH_INTERVAL_S = 0.25
_MB = 1000**2
_CALM_STATES = frozenset({"pulling", "starting", "running"})
_STATS_WORKERS = 8


@dataclass(frozen=True)
class RuntimeConfig:
    """How the runtime behaves; the defaults suit a volunteer's computer."""

    worker: str
    """This agent instance's label value: containers labelled otherwise are not ours."""
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    """What the volunteer lets each container use."""
    stop_timeout_s: float = 10.0
    """Grace between SIGTERM and SIGKILL when a container is stopped."""
    health_timeout_s: float = 2.0
    """How long one health check may take."""
    start_grace_s: float = 300.0
    """How long a started service may take to answer before it is called unhealthy
    (models take a while to load)."""
    restart_initial_s: float = 2.0
    """First wait before restarting a container that stopped; doubles with each crash."""
    restart_max_s: float = 300.0
    """Longest wait before restarting a container that keeps stopping."""
    stable_after_s: float = 60.0
    """Running this long forgives past crashes (the restart wait starts small again)."""
    retry_initial_s: float = 10.0
    """First wait before retrying after an error (download failed, not enough disk, …)."""
    retry_max_s: float = 600.0
    """Longest wait between retries after errors."""


ReportsListener = Callable[[list[ContainerReport]], None]
"""Called with every service's report whenever any of them changes."""


@dataclass
class _PullTask:
    """One image being downloaded on a background thread."""

    image: str
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: PullProgress | None = None
    error: ContainerRuntimeError | None = None
    done: bool = False
    last_published: float = 0.0


@dataclass
class _Slot:
    """What the runtime knows about one desired service between passes."""

    assignment: ServiceAssignment
    restart_backoff: Backoff
    retry_backoff: Backoff
    state: ContainerState = "starting"
    message: str | None = None
    spec: ContainerSpec | None = None
    container_id: str | None = None
    host_port: int | None = None
    container_up: bool = False
    restarts: int = 0
    retry_at: float | None = None
    """While set: nothing is tried before this time (after an error or an exit)."""
    restart_now: bool = False
    """Restart a stopped container without waiting (Docker itself was restarted)."""
    seen_exit: str | None = None
    """The ``FinishedAt`` of the exit already handled, so one exit counts once."""
    started_at: float | None = None
    answered: bool = False
    """Whether the service has answered its health check since it last started."""
    last_exit_code: int | None = None


@dataclass(frozen=True)
class _Usage:
    """What one look at a running container found (all None when nothing could be had)."""

    cpu_percent: float | None = None
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    started_at: datetime | None = None


def _truncate(message: str) -> str:
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


def _seconds(delay: float) -> str:
    return f"{delay:.1f} s" if delay < 10 else f"{delay:.0f} s"


class HttpHealthCheck:
    """``(url, timeout) -> answered 2xx``, over one HTTP client made on the first check.

    One client for every check: building one loads TLS certificates (~15 ms of CPU), which
    every few seconds was most of the tray app's idle CPU use.
    """

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __call__(self, url: str, timeout_s: float) -> bool:
        """Whether ``url`` answered 2xx within ``timeout_s``."""
        with self._lock:
            if self._client is None:
                # trust_env=False: a proxy from the environment must not stand between the
                # agent and a container on loopback.
                self._client = httpx.Client(trust_env=False)
            client = self._client
        try:
            response = client.get(url, timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return response.is_success


class ContainerRuntime:
    """Keeps the engine's containers in line with the coordinator's assignments."""

    def __init__(
        self,
        gateway: DockerGateway,
        config: RuntimeConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        health_check: Callable[[str, float], bool] | None = None,
    ) -> None:
        """Create the runtime. Nothing is contacted until a method is called.

        Args:
            gateway: The Docker engine.
            config: Labels, limits and timings.
            clock: Monotonic seconds (tests may inject one).
            health_check: ``(url, timeout) -> answered 2xx``; HTTP GET by default.
        """
        self._gateway = gateway
        self._config = config
        self._limits = config.limits
        self._clock = clock
        self._health_check = health_check or HttpHealthCheck()
        self._owner = owner_labels(config.worker)
        self._slots: dict[str, _Slot] = {}
        self._order: list[str] = []
        self._pulls: dict[str, _PullTask] = {}
        self._docker: DockerInfo | None = None
        self._docker_down = False
        self._state_lock = threading.RLock()
        self._pass_lock = threading.RLock()
        self._publish_lock = threading.Lock()
        self._work = threading.Event()
        self._listeners: Listeners[list[ContainerReport]] = Listeners("container report")
        self._published: list[ContainerReport] = []
        self._meters: dict[str, CpuMeter] = {}  # by container id, for details()
        self._meters_lock = threading.Lock()

    # -- observing ---------------------------------------------------------------------------

    @property
    def reports(self) -> list[ContainerReport]:
        """The latest report for every desired service, in the order they were desired."""
        with self._state_lock:
            return self._build_reports()

    @property
    def docker(self) -> DockerInfo | None:
        """Docker's status as of the last pass (None before the first)."""
        return self._docker

    def subscribe(self, listener: ReportsListener) -> Callable[[], None]:
        """Call ``listener`` with all reports whenever one changes; returns unsubscribe.

        It is called on the thread that made the change (the one calling :meth:`reconcile`,
        or a download's thread), never with a lock of the runtime's held, so it may read
        :attr:`reports` or :meth:`local_url`; it should hand work to its own thread (the
        tray's ``QMetaObject.invokeMethod``) rather than block.
        """
        return self._listeners.subscribe(listener)

    def local_url(self, service: str) -> str | None:
        """Where the agent reaches ``service``: ``http://127.0.0.1:<port>``, while it runs."""
        with self._state_lock:
            slot = self._slots.get(service)
            if slot is None or slot.host_port is None or not slot.container_up:
                return None
            return f"http://127.0.0.1:{slot.host_port}"

    def running_container_ids(self) -> list[str]:
        """The full ids of the desired services' containers that were running at the last look.

        Cheap and safe from any thread: it reads what the passes recorded and asks Docker
        nothing, so a container that stopped since the last pass is still listed until the
        next one (a caller reading its counters must expect it gone).
        """
        with self._state_lock:
            return [
                slot.container_id
                for slot in self._slots.values()
                if slot.container_up and slot.container_id is not None
            ]

    def details(self) -> list[ContainerDetails]:
        """Every desired service with its container's CPU, memory and start time now.

        Blocks on Docker, so call it from a worker thread; safe alongside :meth:`reconcile`
        on another thread. The engine reads every container's counters in one sweep and
        then waits a second before the next, and a request waits for the next sweep: with
        one container, calls at least 1 s apart answer in about 10 ms; otherwise a call
        takes up to about 1 s (2 s on engines before Docker 20.10), whatever the number of
        containers, as they are asked in parallel. The CPU figure is the use since the
        previous call (None on the first call for a container), so call it at a steady
        pace, e.g. every 2 s. Never raises for Docker: when the engine cannot be reached,
        or a container went away meanwhile, its figures are None.

        Returns:
            One entry per desired service, in the order of :attr:`reports`.
        """
        with self._state_lock:
            reports = self._build_reports()
            running = {
                service: slot.container_id
                for service, slot in self._slots.items()
                if slot.container_up and slot.container_id is not None
            }
        if len(running) <= 1:
            usages = {service: self._usage(service, cid) for service, cid in running.items()}
        else:
            # Asked one after the other, each container would wait for the engine's next
            # sweep (about 1 s each); asked together, they mostly share one.
            workers = min(_STATS_WORKERS, len(running))
            with ThreadPoolExecutor(workers, thread_name_prefix="rma-stats") as pool:
                futures = {
                    service: pool.submit(self._usage, service, cid)
                    for service, cid in running.items()
                }
            usages = {service: future.result() for service, future in futures.items()}
        details = []
        for report in reports:
            usage = usages.get(report.service, _Usage())
            details.append(
                ContainerDetails(
                    service=report.service,
                    image=report.image,
                    state=report.state,
                    cpu_percent=usage.cpu_percent,
                    memory_bytes=usage.memory_bytes,
                    memory_limit_bytes=usage.memory_limit_bytes,
                    started_at=usage.started_at,
                )
            )
        with self._meters_lock:
            for container_id in list(self._meters):
                if container_id not in running.values():
                    del self._meters[container_id]
        return details

    def logs(self, service: str, tail: int = 200) -> str:
        """The last ``tail`` lines ``service``'s container wrote (stdout and stderr).

        The container's log survives its exit, so a crashed service's last words show too.
        Blocks on Docker: call it from a worker thread. Never raises for Docker: when the
        log cannot be read, the text is a plain sentence saying why.

        Args:
            service: A desired service's name.
            tail: How many lines from the end.
        """
        with self._state_lock:
            slot = self._slots.get(service)
            container_id = slot.container_id if slot is not None else None
        if slot is None:
            return f"The service {service} is not assigned to this computer."
        none_yet = f"No container is running for {service} yet."
        if container_id is None:
            return none_yet
        try:
            text = self._gateway.container_logs(container_id, tail)
        except ContainerRuntimeError as exc:
            return exc.message
        return none_yet if text is None else text

    def _usage(self, service: str, container_id: str) -> _Usage:
        """Look at one container now; nothing when it cannot be read (never raises)."""
        try:
            info = self._gateway.inspect_container(container_id)
            if info is None or info.status != "running":
                return _Usage()
            sample = self._gateway.container_stats(container_id)
        except ContainerRuntimeError as exc:
            logger.debug("%s: could not read its usage: %s", service, exc.message)
            return _Usage()
        except Exception:  # a bug here must not take the tray's worker down
            logger.exception("%s: reading its usage failed unexpectedly", service)
            return _Usage()
        if sample is None:
            return _Usage(started_at=info.started_at)
        with self._meters_lock:
            meter = self._meters.setdefault(container_id, CpuMeter())
        return _Usage(
            cpu_percent=meter.update(sample),
            memory_bytes=sample.memory_bytes,
            memory_limit_bytes=sample.memory_limit_bytes,
            started_at=info.started_at,
        )

    def wait_for_work(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a download to finish; True if one did.

        The caller's loop can wait here between passes, so a finished download is started
        at once instead of at the next scheduled pass.
        """
        woke = self._work.wait(timeout_s)
        self._work.clear()
        return woke

    def wake(self) -> None:
        """End a :meth:`wait_for_work` early (its caller has another reason to go on)."""
        self._work.set()

    def set_limits(self, limits: ResourceLimits) -> None:
        """Use new resource limits; the next pass recreates containers created with others."""
        with self._state_lock:
            self._limits = limits

    # -- the passes --------------------------------------------------------------------------

    def reconcile(self, desired: Sequence[ServiceAssignment]) -> list[ContainerReport]:
        """Move every service one step towards ``desired``; returns each one's report.

        Removes our containers whose service is not desired (with their named volumes: the
        coordinator took the service away), recreates those whose assignment changed,
        downloads, creates and starts missing ones, checks health, and restarts stopped
        ones with backoff. Never raises for Docker or the services: every failure becomes
        a report's ``error`` state and sentence, and the next pass tries again.

        Args:
            desired: The services the coordinator wants here now (one per service name;
                a later duplicate wins).
        """
        with self._pass_lock:
            wanted = self._take_desired(desired)
            status = self._gateway.engine_status()
            if status.usable:
                try:
                    self._pass(wanted, status)
                except DockerUnavailable as exc:
                    status = exc.info
            self._set_docker(status, wanted)
        self._publish()
        return self.reports

    def adopt_or_clean(self, desired: Sequence[ServiceAssignment]) -> list[ContainerReport]:
        """On start-up: keep our running containers that still match, remove the rest.

        A container is adopted when its service is desired, its assignment hash matches
        and it is running; every other container of ours (left by a crash, stopped, or
        outdated) is removed. Named volumes are kept (the service may come back). Then a
        normal :meth:`reconcile` pass follows.

        Args:
            desired: The services the coordinator wants here now.
        """
        with self._pass_lock:
            wanted = self._take_desired(desired)
            status = self._gateway.engine_status()
            if status.usable:
                try:
                    specs = {
                        service: self._spec_or_none(slot, status.gpu_runtime)
                        for service, slot in wanted.items()
                    }
                    adopted: set[str] = set()
                    for info in self._gateway.list_containers(self._owner):
                        service = info.labels.get(SERVICE_LABEL, "")
                        spec = specs.get(service)
                        if (
                            spec is not None
                            and info.labels.get(SPEC_LABEL) == spec.spec_hash
                            and info.status == "running"
                            and service not in adopted
                        ):
                            adopted.add(service)
                            logger.info("%s: adopted its running container.", service)
                        else:
                            logger.info("%s: removing a container left from before.", service)
                            self._remove_quietly(info)
                except DockerUnavailable as exc:
                    self._set_docker(exc.info, wanted)
                except ContainerRuntimeError as exc:
                    logger.warning("Could not look for containers left from before: %s", exc)
        return self.reconcile(desired)

    def stop_all(self) -> None:
        """Stop and remove every container of ours now (pause, quit); keeps named volumes.

        Downloads are abandoned. Containers stop in parallel, each with the configured
        grace. When Docker cannot be reached nothing can be stopped; that is logged (a
        Docker that stopped has stopped the containers too).
        """
        with self._pass_lock:
            with self._state_lock:
                for task in self._pulls.values():
                    task.cancel.set()
                self._pulls.clear()
                self._slots.clear()
                self._order = []
            try:
                containers = self._gateway.list_containers(self._owner)
                if containers:
                    with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
                        list(pool.map(self._remove_quietly, containers))
            except DockerUnavailable:
                # A Docker that is not running runs no containers either.
                logger.info("Docker is not running, so none of the pool's containers are.")
            except ContainerRuntimeError as exc:
                logger.warning("Could not stop the service containers: %s", exc.message)
        self._publish()

    # -- one pass ----------------------------------------------------------------------------

    def _take_desired(self, desired: Sequence[ServiceAssignment]) -> dict[str, _Slot]:
        """Update the slots to ``desired``; returns the desired ones by service."""
        by_service: dict[str, ServiceAssignment] = {}
        for assignment in desired:
            by_service[assignment.service] = assignment
        with self._state_lock:
            for service in list(self._slots):
                if service not in by_service:
                    del self._slots[service]
            for service, assignment in by_service.items():
                slot = self._slots.get(service)
                if slot is None:
                    self._slots[service] = _Slot(
                        assignment=assignment,
                        restart_backoff=self._backoff(
                            self._config.restart_initial_s, self._config.restart_max_s
                        ),
                        retry_backoff=self._backoff(
                            self._config.retry_initial_s, self._config.retry_max_s
                        ),
                    )
                elif slot.assignment != assignment:
                    slot.assignment = assignment
                    slot.retry_at = None
            self._order = list(by_service)
            self._cancel_unwanted_pulls()
            return dict(self._slots)

    @staticmethod
    def _backoff(initial: float, maximum: float) -> Backoff:
        return Backoff(initial=initial, maximum=max(initial, maximum))

    def _cancel_unwanted_pulls(self) -> None:
        wanted_images = {slot.assignment.image for slot in self._slots.values()}
        for image in list(self._pulls):
            if image not in wanted_images:
                self._pulls.pop(image).cancel.set()

    def _set_docker(self, status: DockerInfo, wanted: dict[str, _Slot]) -> None:
        previous = self._docker
        self._docker = status
        if status.usable:
            if self._docker_down:
                logger.info("Docker is back; restarting the services.")
            self._docker_down = False
            return
        if previous is None or previous.status != status.status or not self._docker_down:
            logger.warning("%s", status.message)
        self._docker_down = True
        with self._state_lock:
            for slot in wanted.values():
                slot.state = "error"
                slot.message = status.message
                slot.container_up = False
                slot.answered = False
                # Containers stop with the engine: start them at once when it is back.
                slot.retry_at = None
                slot.restart_now = True
                slot.restart_backoff.reset()
                slot.retry_backoff.reset()
            for image, task in list(self._pulls.items()):
                if task.done:
                    del self._pulls[image]

    def _pass(self, wanted: dict[str, _Slot], status: DockerInfo) -> None:
        try:
            containers = self._gateway.list_containers(self._owner)
        except DockerUnavailable:
            raise
        except ContainerRuntimeError as exc:
            # The engine answered but failed; nothing can be compared this pass.
            for slot in wanted.values():
                self._fail(slot, exc)
            return
        by_service: dict[str, list[ContainerInfo]] = {}
        for info in containers:
            by_service.setdefault(info.labels.get(SERVICE_LABEL, ""), []).append(info)
        for service, infos in by_service.items():
            if service not in wanted:
                try:
                    self._retire(service, infos)
                except DockerUnavailable:
                    raise
                except ContainerRuntimeError as exc:  # tried again next pass
                    logger.warning("Could not remove %s: %s", service, exc.message)
        for service, slot in wanted.items():
            try:
                self._step(slot, by_service.get(service, []), status)
            except DockerUnavailable:
                raise
            except ContainerRuntimeError as exc:
                self._fail(slot, exc)
            except Exception as exc:  # a bug in one service's step must not stop the others
                logger.exception("%s: unexpected failure", service)
                self._fail(
                    slot,
                    ContainerRuntimeError(
                        "Unexpected failure",
                        f"Something unexpected went wrong ({exc}); the agent will try again.",
                    ),
                )

    def _retire(self, service: str, infos: list[ContainerInfo]) -> None:
        """The coordinator took ``service`` away: remove its containers and data."""
        logger.info("%s: no longer assigned here; removing it.", service)
        for info in infos:
            self._remove(info)
        try:
            for volume in self._gateway.list_volumes({**self._owner, SERVICE_LABEL: service}):
                self._gateway.remove_volume(volume)
        except DockerUnavailable:
            raise
        except ContainerRuntimeError as exc:
            logger.warning("%s: could not remove its data volume: %s", service, exc.message)

    def _remove(self, info: ContainerInfo) -> None:
        if info.status in ("running", "restarting", "paused"):
            self._gateway.stop_container(info.id, self._config.stop_timeout_s)
        self._gateway.remove_container(info.id)

    def _remove_quietly(self, info: ContainerInfo) -> None:
        try:
            self._remove(info)
        except ContainerRuntimeError as exc:
            logger.warning("Could not remove the container %s: %s", info.name, exc.message)

    def _spec_or_none(self, slot: _Slot, gpu_runtime: bool) -> ContainerSpec | None:
        try:
            return self._spec(slot, gpu_runtime=gpu_runtime)
        except ContainerRuntimeError:
            return None

    def _spec(self, slot: _Slot, *, gpu_runtime: bool) -> ContainerSpec:
        with self._state_lock:
            limits = self._limits
        return container_spec(
            slot.assignment, worker=self._config.worker, limits=limits, gpu_runtime=gpu_runtime
        )

    def _step(self, slot: _Slot, infos: list[ContainerInfo], status: DockerInfo) -> None:
        spec = self._spec(slot, gpu_runtime=status.gpu_runtime)
        if slot.spec is not None and slot.spec.spec_hash != spec.spec_hash:
            logger.info("%s: its assignment changed; recreating it.", slot.assignment.service)
            slot.restarts = 0
            slot.restart_backoff.reset()
        slot.spec = spec
        current = [info for info in infos if info.labels.get(SPEC_LABEL) == spec.spec_hash]
        keep = current[0].id if current else None
        for info in infos:
            if info.id != keep:
                self._remove(info)
        if current:
            self._follow(slot, current[0])
        else:
            self._bring_up(slot, spec)

    def _bring_up(self, slot: _Slot, spec: ContainerSpec) -> None:
        """No container yet: download the image if needed, then create and start one."""
        now = self._clock()
        self._set_container(slot, None, None, up=False)
        if slot.retry_at is not None and now < slot.retry_at:
            return
        slot.retry_at = None
        task = self._pulls.get(spec.image)
        if task is not None:
            if not task.done:
                self._show_pull(slot, task)
                return
            with self._state_lock:
                self._pulls.pop(spec.image, None)
            if task.error is not None and not isinstance(
                task.error, DockerUnavailable | PullCancelled
            ):
                raise task.error
        if not self._gateway.image_present(spec.image):
            if slot.assignment.min_disk:
                self._gateway.ensure_free_disk(slot.assignment.min_disk, spec.image)
            self._start_pull(slot, spec.image)
            return
        for volume in spec.volumes:
            self._gateway.ensure_volume(volume.name, volume.labels)
        container_id = self._gateway.create_container(spec.image, spec.create_kwargs)
        try:
            self._gateway.start_container(container_id)
        except ContainerRuntimeError:
            # Leave nothing half-made: the next pass creates it afresh.
            with contextlib.suppress(ContainerRuntimeError):
                self._gateway.remove_container(container_id)
            raise
        logger.debug("%s: started container %s.", slot.assignment.service, container_id[:12])
        self._started(slot, now)
        info = self._gateway.inspect_container(container_id)
        if info is not None:
            self._follow(slot, info)

    def _started(self, slot: _Slot, now: float) -> None:
        slot.started_at = now
        slot.answered = False
        slot.restart_now = False
        slot.retry_backoff.reset()
        self._set(slot, "starting", "Starting.")

    def _follow(self, slot: _Slot, info: ContainerInfo) -> None:
        """A container exists: watch its health, restart it with backoff when it stopped."""
        now = self._clock()
        port = slot.assignment.port
        host_port = info.host_ports.get(port) if port is not None else None
        if info.status == "running":
            self._set_container(slot, info.id, host_port, up=True)
            if slot.started_at is None or slot.state in ("exited", "error", "pulling"):
                # Adopted, or started again (by us, or by Docker coming back).
                self._started(slot, now)
            assert slot.started_at is not None
            slot.retry_at = None
            self._check_health(slot, info, host_port, now)
            if slot.state == "running" and now - slot.started_at >= self._config.stable_after_s:
                slot.restart_backoff.reset()
            return
        self._set_container(slot, info.id, host_port, up=False)
        if info.status == "created":
            self._gateway.start_container(info.id)
            self._started(slot, now)
        elif info.status in ("exited", "dead"):
            self._handle_exit(slot, info, now)
        elif info.status == "paused":
            self._set(slot, "unhealthy", "Its container was paused outside this app.")
        else:  # restarting, removing: Docker is busy with it
            self._set(slot, "starting", "Docker is busy with its container.")

    def _check_health(
        self, slot: _Slot, info: ContainerInfo, host_port: int | None, now: float
    ) -> None:
        assert slot.started_at is not None
        path = slot.assignment.health_path
        answered: bool | None = None
        if path is not None and host_port is not None:
            url = f"http://127.0.0.1:{host_port}/{path.lstrip('/')}"
            answered = self._health_check(url, self._config.health_timeout_s)
        elif info.health in ("healthy", "unhealthy"):
            answered = info.health == "healthy"
        elif info.health == "starting":
            answered = False
        if answered is None or answered:
            slot.answered = True
            self._set(slot, "running", "Running.")
            return
        waited = now - slot.started_at
        if not slot.answered and waited < self._config.start_grace_s:
            self._set(slot, "starting", "Started; waiting for the service to answer.")
        elif slot.answered:
            self._set(slot, "unhealthy", "Running, but it stopped answering its health check.")
        else:
            self._set(
                slot,
                "unhealthy",
                f"Running, but it has not answered its health check in {waited:.0f} s.",
            )

    def _handle_exit(self, slot: _Slot, info: ContainerInfo, now: float) -> None:
        code = info.exit_code if info.exit_code is not None else -1
        if slot.state != "exited" or info.finished_at != slot.seen_exit:
            # A new exit: count it once, and decide when to restart.
            slot.seen_exit = info.finished_at
            slot.last_exit_code = code
            delay = 0.0 if slot.restart_now else slot.restart_backoff.next_delay()
            slot.retry_at = now + delay
            stopped = f"Stopped with exit code {code}"
            if info.oom_killed:
                stopped += " (it ran out of memory)"
            self._set(slot, "exited", f"{stopped}; restarting in {_seconds(delay)}.")
        if slot.retry_at is None or now >= slot.retry_at:
            slot.retry_at = None
            self._gateway.start_container(info.id)
            slot.restarts += 1
            self._started(slot, now)
            self._set(slot, "starting", f"Restarted after it stopped with exit code {code}.")

    def _fail(self, slot: _Slot, exc: ContainerRuntimeError) -> None:
        delay = slot.retry_backoff.next_delay()
        slot.retry_at = self._clock() + delay
        self._set(slot, "error", exc.message)

    # -- downloads ---------------------------------------------------------------------------

    def _start_pull(self, slot: _Slot, image: str) -> None:
        task = _PullTask(image=image)
        with self._state_lock:
            self._pulls[image] = task
        logger.info("%s: downloading %s.", slot.assignment.service, image)
        self._show_pull(slot, task)
        thread = threading.Thread(
            target=self._run_pull, args=(task,), name=f"rma-pull-{image}", daemon=True
        )
        thread.start()

    def _run_pull(self, task: _PullTask) -> None:
        def on_progress(progress: PullProgress) -> None:
            with self._state_lock:
                task.progress = progress
                now = self._clock()
                due = now - task.last_published >= _PROGRESS_PUBLISH_INTERVAL_S
                if due:
                    task.last_published = now
                    self._show_pulls(task)
            if due:
                self._publish()

        try:
            self._gateway.pull(task.image, on_progress=on_progress, cancel=task.cancel)
        except ContainerRuntimeError as exc:
            task.error = exc
        except Exception as exc:  # a thread must not die silently
            logger.exception("Downloading %s failed unexpectedly", task.image)
            task.error = ContainerRuntimeError("Download failed", f"Downloading failed: {exc}")
        finally:
            with self._state_lock:
                task.done = True
                if task.error is None:
                    self._show_pulls(task)
            self._work.set()
            self._publish()

    def _show_pulls(self, task: _PullTask) -> None:
        for slot in self._slots.values():
            if slot.assignment.image == task.image and slot.state == "pulling":
                self._show_pull(slot, task)

    def _show_pull(self, slot: _Slot, task: _PullTask) -> None:
        message = f"Downloading the image {task.image}."
        progress = task.progress
        if progress is not None and progress.bytes_total:
            message = (
                f"Downloading the image {task.image}: {progress.bytes_done / _MB:.1f} of "
                f"{progress.bytes_total / _MB:.1f} MB."
            )
        self._set(slot, "pulling", message)

    # -- reports -----------------------------------------------------------------------------

    def _set(self, slot: _Slot, state: ContainerState, message: str | None) -> None:
        with self._state_lock:
            slot.state = state
            slot.message = message

    def _set_container(
        self, slot: _Slot, container_id: str | None, host_port: int | None, *, up: bool
    ) -> None:
        with self._state_lock:
            slot.container_id = container_id
            slot.host_port = host_port
            slot.container_up = up

    def _build_reports(self) -> list[ContainerReport]:
        reports = []
        for service in self._order:
            slot = self._slots.get(service)
            if slot is None:
                continue
            progress: PullProgress | None = None
            if slot.state == "pulling":
                task = self._pulls.get(slot.assignment.image)
                progress = task.progress if task is not None else None
            reports.append(
                ContainerReport(
                    service=service,
                    image=slot.assignment.image,
                    state=slot.state,
                    progress=progress.fraction if progress is not None else None,
                    bytes_done=progress.bytes_done if progress is not None else None,
                    bytes_total=progress.bytes_total if progress is not None else None,
                    message=_truncate(slot.message) if slot.message else None,
                    restarts=slot.restarts,
                )
            )
        return reports

    def _publish(self) -> None:
        with self._publish_lock:
            with self._state_lock:
                reports = self._build_reports()
            if reports == self._published:
                return
            # The transitions, in plain words: what ``rma-worker`` shows in its log.
            before = {report.service: report for report in self._published}
            for report in reports:
                old = before.get(report.service)
                if old is not None and old.state == report.state == "pulling":
                    continue  # progress, not a transition
                if old is None or (old.state, old.message) != (report.state, report.message):
                    level = logging.INFO if report.state in _CALM_STATES else logging.WARNING
                    logger.log(level, "%s: %s", report.service, report.message or report.state)
            self._published = reports
            self._listeners.notify(reports)
