"""How fast ``rma-desktop`` reacts to the volunteer leaving and coming back (issue 5).

"Only when I am away", measured end to end on a real X server (Xvfb + trayer,
``tests/fixtures/x_desktop.py``), a private dockerd, a loopback registry and a real
``rma-coordinator`` process (``bench/_pool.py``), with a real ``rma-desktop`` process whose
settings say ``idle_only`` (``--idle-seconds``, 5 s; ``busy_pause`` off, as in
``tests/e2e/test_idle_contribution.py``). xdotool is the volunteer's hand.

Two figures, per cycle (``--cycles``, 3):

- **threshold → answering**: from the moment the idle threshold is reached (the last
  xdotool input + ``--idle-seconds``) until the service's container answers ``/health`` on
  its published port (found with ``docker inspect`` of the running container labelled
  ``org.rma.managed=true``, ``org.rma.service=web``; polled every 20 ms). The app's policy
  holds every start for ``GovernorConfig.start_after`` (2 s): that part is policy, the
  rest machinery.
- **input → stopped**: from an xdotool mouse move until no managed container runs (the
  same label filter, polled every 20 ms). The app looks for input every
  ``LoopTiming.input_check`` (0.5 s) and tells the pool before stopping.

The clock starts when ``xdotool mousemove --sync`` has returned, i.e. once the X server
has moved the pointer. The baseline, one round per cycle in the same run and on the same
engine: the same image started with the docker SDK (``containers.run(..., detach=True,
init=True, ports={8080: ("127.0.0.1", None)})``, then ``/health`` polled every 20 ms), and
stopped with ``container.stop(timeout=10)`` until it no longer runs. Figures are shown as
ratios to it, because absolute times drift between runs on shared machines.

After a stop the app waits ``GovernorConfig.restart_after`` (30 s) before it starts again,
so a cycle lasts about 35 s: the bench keeps the pointer moving (every quarter of the
threshold) until a start after the threshold can only be held by ``start_after``, runs the
baseline meanwhile, then leaves the computer alone. While the pointer moves, a second
thread polls Docker every 20 ms: the service must not run at all then, and any time it did
is reported ("ran in use"). The app is launched with someone at the computer (watched for
``LAUNCH_WATCH_S`` past its registration); its first start follows and is shown apart, not
in the medians. The coordinator runs with its own defaults (heartbeat interval, placement
grace). The image is pulled before the app starts: this is about reacting, not downloading
(``bench/container_start.py`` measures pulls). Run as root (the private dockerd)::

    .venv/bin/python bench/reaction.py [--cycles 3] [--idle-seconds 5] [--json PATH]
        [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._pool import Pool, running_pool  # noqa: E402
from coordinator.settings import CoordinatorSettings  # noqa: E402
from desktop_app.agent.agent import AgentConfig  # noqa: E402
from desktop_app.agent.governor import GovernorConfig  # noqa: E402
from desktop_app.agent.policy_loop import LoopTiming  # noqa: E402
from tests.e2e.test_desktop_process import MANAGED, DesktopApp, only_worker  # noqa: E402
from tests.fixtures.container_images import IMAGE_PORT  # noqa: E402
from tests.fixtures.docker_engine import DockerEngine  # noqa: E402
from tests.fixtures.waiting import WaitTimedOut, wait_until  # noqa: E402
from tests.fixtures.x_desktop import (  # noqa: E402
    SCREEN,
    DesktopError,
    MissingTool,
    XDesktop,
    running_x_desktop,
)

POLL_S = 0.02
"""How often the bench looks at Docker and the service."""
SETTLE_S = 2.0
"""Contributing this long before the volunteer comes back (the app finishes its pass)."""
RESTART_MARGIN_S = 1.0
"""The threshold is reached this long after ``restart_after`` has passed since the stop."""
STEP_TIMEOUT_S = 90.0
FIRST_START_TIMEOUT_S = 180.0
"""The first start may wait for placement and a heartbeat (30 s by default)."""
LAUNCH_WATCH_S = 5.0
"""After launch, someone stays at the computer this long past registration and the app's
first decision, while the bench watches that nothing runs."""
HEALTH_TIMEOUT_S = 0.5
COMEBACK_LIMIT_S = 2.0
"""The promise: the computer is the volunteer's again within this long after they touch it."""
WAITING_HEADLINE = "Waiting: you are using the computer"

# What rma-desktop runs with: it passes no timings of its own to the agent's classes.
GOVERNOR = GovernorConfig()
LOOP = LoopTiming()
AGENT = AgentConfig(coordinator_url="http://unused")
AGENT_PAUSE_ACK_S = AGENT.pause_ack_timeout
AGENT_DRAIN_S = AGENT.drain_timeout
COORDINATOR_FIELDS = CoordinatorSettings.model_fields
HEARTBEAT_S = float(COORDINATOR_FIELDS["heartbeat_interval"].default)
PLACEMENT_GRACE_S = float(COORDINATOR_FIELDS["placement_grace"].default)


class BenchFailed(RuntimeError):
    """A step did not happen as the bench expects; the message says which."""


@dataclass
class Cycle:
    """One leave-and-come-back of the volunteer, and the baseline round beside it."""

    number: int
    """0 for the first start after launch (not counted)."""
    threshold_to_answering_s: float | None = None
    threshold_to_running_s: float | None = None
    """Until Docker lists the container as running (part of the above)."""
    input_to_stopped_s: float | None = None
    direct_run_to_answering_s: float | None = None
    direct_stop_s: float | None = None
    ran_while_in_use_s: float | None = None
    """About how long the service ran while someone was at the computer (None: never seen)."""

    @property
    def machinery_s(self) -> float | None:
        """threshold → answering less the policy's ``start_after``."""
        answering = self.threshold_to_answering_s
        return None if answering is None else answering - GOVERNOR.start_after


@dataclass
class Report:
    cycles: list[Cycle] = field(default_factory=list)
    error: str | None = None

    def counted(self) -> list[Cycle]:
        return [cycle for cycle in self.cycles if cycle.number > 0]

    def median(self, name: str) -> float | None:
        values = [getattr(c, name) for c in self.counted() if getattr(c, name) is not None]
        return statistics.median(values) if values else None


# -- the volunteer's hand ------------------------------------------------------------------


class Hand:
    """The volunteer's hand on the mouse: every touch is real pointer input."""

    def __init__(self, desktop: XDesktop) -> None:
        self._desktop = desktop
        self._lock = threading.Lock()

    def touch(self) -> float:
        """Move the pointer; return the monotonic time once the X server has moved it."""
        with self._lock:
            self._desktop.nudge_pointer()
            return time.monotonic()

    @contextlib.contextmanager
    def at_the_computer(self, every: float) -> Iterator[None]:
        """Touch every ``every`` seconds on a thread while the block runs (someone is there)."""
        stop = threading.Event()
        failures: list[BaseException] = []

        def keep_touching() -> None:
            try:
                while not stop.is_set():
                    self.touch()
                    stop.wait(every)
            except BaseException as exc:  # reported by the main thread below
                failures.append(exc)

        thread = threading.Thread(target=keep_touching, name="hand", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)
        if failures:
            raise BenchFailed(f"moving the pointer failed: {failures[0]}")


# -- watching Docker and the service -------------------------------------------------------


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=HEALTH_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False


def poll(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Call ``check`` on 20 ms ticks until it is true; return the monotonic time it was."""
    start = time.monotonic()
    tick = 0
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() - start > timeout:
            raise BenchFailed(f"timed out after {timeout:g} s waiting for {what}")
        tick += 1
        time.sleep(max(0.0, start + tick * POLL_S - time.monotonic()))


def managed_running(client: docker.DockerClient) -> list[Any]:
    """The app's running service containers (one list call; ``running_containers`` makes
    a new client, and so a version request, on every call)."""
    return list(client.containers.list(filters=MANAGED, sparse=True))


def host_port(client: docker.DockerClient, container_id: str) -> int | None:
    """The host port of the container's 8080/tcp on 127.0.0.1, from ``docker inspect``."""
    attrs = client.api.inspect_container(container_id)
    bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(f"{IMAGE_PORT}/tcp") or []:
        if binding.get("HostIp") == "127.0.0.1" and str(binding.get("HostPort")).isdigit():
            return int(binding["HostPort"])
    return None


def wait_until_answering(client: docker.DockerClient, timeout: float) -> tuple[float, float]:
    """Poll until the managed service answers; return (first seen running, answering)."""
    seen_running: float | None = None
    ports: dict[str, int | None] = {}

    def answering() -> bool:
        nonlocal seen_running
        containers = managed_running(client)
        if not containers:
            return False
        if seen_running is None:
            seen_running = time.monotonic()
        container_id = containers[0].id
        if ports.get(container_id) is None:
            ports[container_id] = host_port(client, container_id)
        port = ports[container_id]
        return port is not None and answers(f"http://127.0.0.1:{port}/health")

    answered = poll(answering, timeout, "the service to answer")
    assert seen_running is not None
    return seen_running, answered


# -- the baseline --------------------------------------------------------------------------


def direct_round(client: docker.DockerClient, image: str) -> tuple[float, float]:
    """Plain docker SDK: (run → answering, stop → not running), in seconds."""
    start = time.monotonic()
    container = client.containers.run(
        image, detach=True, init=True, ports={IMAGE_PORT: ("127.0.0.1", None)}
    )
    try:
        port = host_port(client, container.id)
        if port is None:
            raise BenchFailed("the baseline container has no published port")
        answered = poll(
            lambda: answers(f"http://127.0.0.1:{port}/health"),
            STEP_TIMEOUT_S,
            "the baseline container to answer",
        )
        started = time.monotonic()
        container.stop(timeout=10)
        stopped = poll(
            lambda: not client.containers.list(filters={"id": container.id}, sparse=True),
            STEP_TIMEOUT_S,
            "the baseline container to stop",
        )
        return answered - start, stopped - started
    finally:
        container.remove(force=True)


# -- the run -------------------------------------------------------------------------------


@contextlib.contextmanager
def watching_for_runs(engine: DockerEngine) -> Iterator[list[float]]:
    """While the block runs, note each 20 ms poll that finds the service running.

    For the times someone is at the computer, when nothing may run: a thread with its own
    Docker client, so a start that lasts a fraction of a second is still seen.
    """
    sightings: list[float] = []
    stop = threading.Event()
    client = engine.client()

    def watch() -> None:
        with contextlib.suppress(docker.errors.DockerException):
            while not stop.wait(POLL_S):
                if managed_running(client):
                    sightings.append(time.monotonic())

    thread = threading.Thread(target=watch, name="watch", daemon=True)
    thread.start()
    try:
        yield sightings
    finally:
        stop.set()
        thread.join(timeout=30)
        client.close()


def ran_for(sightings: list[float]) -> float | None:
    """About how long the service was seen running (first to last sighting, plus a poll)."""
    return sightings[-1] - sightings[0] + POLL_S if sightings else None


def first_start(
    app: DesktopApp, pool: Pool, hand: Hand, client: docker.DockerClient, idle_s: float
) -> Cycle:
    """Launch the app while someone is at the computer, then leave it alone."""
    cycle = Cycle(0)
    with hand.at_the_computer(idle_s / 4), watching_for_runs(pool.engine) as sightings:
        app.start()
        wait_until(lambda: only_worker(pool.coordinator), 60, f"registration:\n{app.log()}")
        wait_until(lambda: WAITING_HEADLINE in app.log(), 30, f"its decision:\n{app.log()}")
        # The app starts its container loop once registered; give it time to settle.
        time.sleep(LAUNCH_WATCH_S)
        if managed_running(client):
            raise BenchFailed(f"the service runs while someone is at the computer:\n{app.log()}")
    cycle.ran_while_in_use_s = ran_for(sightings)
    last_input = hand.touch()
    threshold = last_input + idle_s
    running, answered = wait_until_answering(client, FIRST_START_TIMEOUT_S)
    cycle.threshold_to_answering_s = answered - threshold
    cycle.threshold_to_running_s = running - threshold
    return cycle


def one_cycle(
    number: int, app: DesktopApp, pool: Pool, hand: Hand, client: docker.DockerClient, idle_s: float
) -> Cycle:
    """Contributing → the volunteer comes back → uses it ≥ restart_after → leaves."""
    cycle = Cycle(number)
    time.sleep(SETTLE_S)
    if not managed_running(client):
        raise BenchFailed(f"the service stopped before anyone came back:\n{app.log()}")
    came_back = hand.touch()
    stopped = poll(lambda: not managed_running(client), STEP_TIMEOUT_S, "the containers to stop")
    cycle.input_to_stopped_s = stopped - came_back

    # They use the computer until a start could follow the threshold by start_after alone:
    # the governor stopped no later than `stopped`, so restart_after has passed by then.
    leave_at = stopped + GOVERNOR.restart_after - idle_s + RESTART_MARGIN_S
    with hand.at_the_computer(idle_s / 4), watching_for_runs(pool.engine) as sightings:
        cycle.direct_run_to_answering_s, cycle.direct_stop_s = direct_round(client, pool.image)
        time.sleep(max(0.0, leave_at - time.monotonic()))
        if managed_running(client):
            raise BenchFailed(
                f"the service started while someone was at the computer:\n{app.log()}"
            )
    cycle.ran_while_in_use_s = ran_for(sightings)
    last_input = hand.touch()
    threshold = last_input + idle_s
    running, answered = wait_until_answering(client, STEP_TIMEOUT_S)
    if running < threshold:
        raise BenchFailed(
            f"the service started {threshold - running:.2f} s before the idle threshold"
        )
    cycle.threshold_to_answering_s = answered - threshold
    cycle.threshold_to_running_s = running - threshold
    return cycle


def measure(args: argparse.Namespace, root: Path, report: Report) -> None:
    with (
        running_pool(
            root / "pool", heartbeat_interval=HEARTBEAT_S, placement_grace=PLACEMENT_GRACE_S
        ) as pool,
        contextlib.closing(pool.engine.client()) as client,
        running_x_desktop(root / "desktop") as desktop,
    ):
        client.images.pull(pool.image)
        app = DesktopApp(
            desktop,
            root / "home",
            {"RMA_COORDINATOR_URL": pool.coordinator.url, "DOCKER_HOST": pool.engine.host},
        )
        rules = {"idle_only": True, "idle_minutes": args.idle_seconds / 60, "busy_pause": False}
        app.write_settings({"joined": True, "rules": rules})
        hand = Hand(desktop)
        print(f"desktop {desktop.display} ({SCREEN}, trayer); logs in {root}", flush=True)
        try:
            cycle = first_start(app, pool, hand, client, args.idle_seconds)
            report.cycles.append(cycle)
            print(
                f"first start after launch: threshold→answering "
                f"{cycle.threshold_to_answering_s:.2f} s (not counted)",
                flush=True,
            )
            for number in range(1, args.cycles + 1):
                cycle = one_cycle(number, app, pool, hand, client, args.idle_seconds)
                report.cycles.append(cycle)
                print(
                    f"cycle {number}/{args.cycles}: input→stopped "
                    f"{cycle.input_to_stopped_s:.2f} s, threshold→answering "
                    f"{cycle.threshold_to_answering_s:.2f} s",
                    flush=True,
                )
        except (BenchFailed, WaitTimedOut, DesktopError) as exc:
            report.error = str(exc)
            print(f"FAILED: {exc}\nthe app's log ends:\n{app.log()}", file=sys.stderr)


# -- output --------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(report: Report) -> None:
    header = (
        f"{'cycle':<7}{'threshold→answering':>21}{'machinery':>11}{'→running':>10}"
        f"{'input→stopped':>15}{'direct run→answ.':>18}{'direct stop':>13}{'ran in use':>12}"
    )
    print()
    print(header)
    print("-" * len(header))
    for cycle in report.cycles:
        name = "first*" if cycle.number == 0 else str(cycle.number)
        print(
            f"{name:<7}{_s(cycle.threshold_to_answering_s):>21}{_s(cycle.machinery_s):>11}"
            f"{_s(cycle.threshold_to_running_s):>10}{_s(cycle.input_to_stopped_s):>15}"
            f"{_s(cycle.direct_run_to_answering_s):>18}{_s(cycle.direct_stop_s):>13}"
            f"{_s(cycle.ran_while_in_use_s):>12}"
        )
    if report.counted():
        print("-" * len(header))
        print(
            f"{'median':<7}{_s(report.median('threshold_to_answering_s')):>21}"
            f"{_s(report.median('machinery_s')):>11}{_s(report.median('threshold_to_running_s')):>10}"
            f"{_s(report.median('input_to_stopped_s')):>15}"
            f"{_s(report.median('direct_run_to_answering_s')):>18}"
            f"{_s(report.median('direct_stop_s')):>13}"
        )
    print(
        "seconds. first*: launch with someone at the computer, then the first start (it "
        "follows the launch rather than a stop; not in the medians). machinery = "
        f"threshold→answering - start_after ({GOVERNOR.start_after:.1f} s). →running: "
        "threshold until Docker lists the container as running. ran in use: about how long "
        "the service's container ran while the pointer was moving (polled every 20 ms; "
        "- = never seen)."
    )


def print_summary(report: Report) -> None:
    answering = report.median("threshold_to_answering_s")
    machinery = report.median("machinery_s")
    stopped = report.median("input_to_stopped_s")
    direct_run = report.median("direct_run_to_answering_s")
    direct_stop = report.median("direct_stop_s")
    print()
    if answering is not None and machinery is not None and direct_run:
        print(
            f"threshold→answering: median {answering:.2f} s = policy start_after "
            f"{GOVERNOR.start_after:.1f} s + {machinery:.2f} s machinery (direct docker "
            f"run→answering {direct_run:.2f} s, {machinery / direct_run:.1f}x; "
            f"+{machinery - direct_run:.2f} s)"
        )
    if stopped is not None and direct_stop:
        print(
            f"input→stopped: median {stopped:.2f} s (direct docker stop {direct_stop:.2f} s; "
            f"{stopped / direct_stop:.1f}x; +{stopped - direct_stop:.2f} s)"
        )
    print(
        f"policy, as rma-desktop runs it: start_after {GOVERNOR.start_after:.1f} s, restart_after "
        f"{GOVERNOR.restart_after:.1f} s (each cycle waits it out before the threshold), input "
        f"checked every {LOOP.input_check:.1f} s while contributing (up to that much of "
        f"input→stopped is waiting for the next look); before stopping, the pool is told "
        f"(the app waits up to {AGENT_PAUSE_ACK_S:.1f} s for its answer) and requests under way "
        f"get up to {AGENT_DRAIN_S:.1f} s. Coordinator: heartbeat {HEARTBEAT_S:g} s, placement "
        f"grace {PLACEMENT_GRACE_S:g} s (its defaults)."
    )
    in_use = [c for c in report.cycles if c.ran_while_in_use_s is not None]
    if in_use:
        where = ", ".join(
            f"{'at launch' if c.number == 0 else f'cycle {c.number}'} ~{c.ran_while_in_use_s:.2f} s"
            for c in in_use
        )
        print(
            f"while someone was at the computer the service ran anyway, briefly: {where} "
            "(it should not run at all)."
        )
    elif report.cycles:
        print("while someone was at the computer, the service never ran (polled every 20 ms).")
    stops = [c.input_to_stopped_s for c in report.counted() if c.input_to_stopped_s is not None]
    if stops:
        kept = sum(1 for s in stops if s < COMEBACK_LIMIT_S)
        verdict = "kept" if kept == len(stops) else "BROKEN"
        print(
            f"promise (input→stopped under {COMEBACK_LIMIT_S:g} s): {verdict} in {kept}/"
            f"{len(stops)} cycles; slowest {max(stops):.2f} s."
        )


def write_json(path: Path, args: argparse.Namespace, report: Report) -> None:
    data = {
        "idle_seconds": args.idle_seconds,
        "cycles_asked": args.cycles,
        "poll_s": POLL_S,
        "policy": {
            **asdict(GOVERNOR),
            "input_check": LOOP.input_check,
            "pause_ack_timeout": AGENT_PAUSE_ACK_S,
            "drain_timeout": AGENT_DRAIN_S,
        },
        "coordinator": {"heartbeat_interval": HEARTBEAT_S, "placement_grace": PLACEMENT_GRACE_S},
        "cycles": [{**asdict(c), "machinery_s": c.machinery_s} for c in report.cycles],
        "medians": {
            name: report.median(name)
            for name in (
                "threshold_to_answering_s",
                "machinery_s",
                "threshold_to_running_s",
                "input_to_stopped_s",
                "direct_run_to_answering_s",
                "direct_stop_s",
            )
        },
        "error": report.error,
        "python": platform.python_version(),
        "machine": platform.platform(),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every process the bench started is stopped;
    # a second one must not cut that short.
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=3, help="leave-and-come-back cycles (3)")
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="the volunteer's idle threshold (5)"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--keep-logs", type=Path, help="keep the logs (app, coordinator, X) in this new folder"
    )
    args = parser.parse_args()
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    if args.idle_seconds < 1:
        parser.error("--idle-seconds must be at least 1 (the pointer moves every quarter of it)")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)

    report = Report()
    with tempfile.TemporaryDirectory(prefix="rma-reaction-") as tmp:
        try:
            measure(args, args.keep_logs or Path(tmp), report)
        except MissingTool as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except pytest.fail.Exception as exc:  # the fixtures' way of saying Docker is missing
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            # Everything the bench started has been stopped on the way out; show what it got.
            report.error = "interrupted"
            print("interrupted: stopped everything the bench started", file=sys.stderr)
    if report.cycles:
        print_table(report)
        print_summary(report)
    if args.json is not None:
        write_json(args.json, args, report)
    if report.error == "interrupted":
        return 130
    return 1 if report.error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
