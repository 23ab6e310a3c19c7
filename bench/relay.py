"""What the coordinator's relay adds: one service container called directly and relayed.

A real pool (``bench/_pool.py``: a private dockerd, a loopback registry holding the tests'
busybox httpd image, an ``rma-coordinator`` process whose catalogue assigns that image as
the service ``web`` to every worker) and one real ``rma-worker`` process on that engine.
Once the service's container runs, the bench creates a client API key
(``POST /api/admin/api-keys``) and waits until ``GET /api/service/web/health`` answers 200
through the coordinator. It checks that both ways reach that container
(``/cgi-bin/echo`` names its hostname: private dockerds side by side share ``docker0``, so
another engine's container can hold the same address). Then, for each concurrency
(``--concurrency``, ``1,8,32``), it measures ``GET --path`` (``/index.html``) two ways with
the same load generator (``bench/_load.py``: raw asyncio HTTP/1.1, one request in flight
per connection):

- **direct**: the container's published port on 127.0.0.1. busybox httpd closes after
  every answer, so every request pays a TCP connect (to Docker's port proxy), and that is
  in its latency.
- **relayed**: ``/api/service/web<path>`` on the coordinator, with ``Authorization:
  Bearer <key>``, on kept-alive connections. The coordinator hands the request to the
  worker over its tunnel, the worker calls the same container, and the answer comes back.

Each concurrency runs ``--rounds`` rounds (3) of both, alternating which goes first (direct
then relayed, relayed then direct, ...), so that drift touches both; each round is a
``--warmup`` (1 s) and a measured ``--seconds`` (5 s). A row shows the median round by
throughput (the lower middle one for an even count) of each. The targets: the relay adds at
most 2 ms to the median latency (relayed p50 - direct p50), and relayed throughput is at
least 50% of direct. Client, coordinator, worker and container share the machine, so
compare rows of the same run only. Needs root (dockerd) and Debian's ``docker.io``,
``docker-registry`` and ``busybox-static``::

    .venv/bin/python bench/relay.py [--concurrency 1,8,32] [--rounds 3] [--seconds 5]
        [--json PATH] [--direct-only] [--keep-logs DIR]

Exit status: 0 when it measured (whether or not the targets were met), 1 when a step
failed (the service did not start, the relay did not answer), 2 when a tool is missing,
130 when interrupted. Every process it started is stopped on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._load import LoadResult, run_load  # noqa: E402
from bench._pool import Pool, running_pool  # noqa: E402
from bench.heartbeats import machine_info  # noqa: E402
from tests.e2e.processes import Process, worker_process  # noqa: E402
from tests.fixtures.container_images import ECHO_PATH, IMAGE_PORT, EchoReply  # noqa: E402
from tests.fixtures.waiting import WaitTimedOut, wait_until  # noqa: E402

SERVICE = "web"
MANAGED = {"label": ["org.rma.managed=true", f"org.rma.service={SERVICE}"], "status": "running"}
TARGET_ADDED_P50_MS = 2.0
"""The relay adds at most this much to the median latency."""
TARGET_THROUGHPUT_RATIO = 0.50
"""Relayed throughput is at least this share of direct."""
HEARTBEAT_S = 2.0
"""The coordinator's heartbeat interval here: the service is placed within a few seconds."""
SERVICE_START_TIMEOUT_S = 120.0
"""Registration, placement, the pull and the container's start."""
RELAY_READY_TIMEOUT_S = 60.0
"""From the API key to the relay answering ``/health``: the worker's tunnel must be open."""
PROBE_TIMEOUT_S = 2.0
STALL_MS = 1000.0
"""Answers this slow most likely waited for a connect whose SYN busybox httpd dropped (its
listen backlog is 9) and the kernel sent again after 1 s; counted and shown apart."""
MODES = ("direct", "relayed")


class BenchFailed(RuntimeError):
    """A step did not happen as the bench expects; the message says which."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (0 if it is gone)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system
    return total


@dataclass
class CpuMeter:
    """The CPU time the pool's processes use during one measured phase."""

    pids: dict[str, int]
    """``coordinator`` and ``worker``, each counted with its descendants."""
    _started: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def used(self) -> dict[str, float]:
        return {
            name: cpu_seconds(pid) - self._started.get(name, 0.0) for name, pid in self.pids.items()
        }


@dataclass
class Round:
    """One measured phase of one mode, and the pool's CPU time during it."""

    result: LoadResult
    cpu_s: dict[str, float]

    def cpu_us_per_request(self) -> dict[str, float]:
        answered = self.result.ok + self.result.non_2xx
        return {name: s / answered * 1e6 if answered else 0.0 for name, s in self.cpu_s.items()}

    def summary(self) -> dict[str, Any]:
        return {
            **self.result.summary(),
            "stalled_1s": self.result.count_at_least_ms(STALL_MS),
            "cpu_s": self.cpu_s,
            "cpu_us_per_request": self.cpu_us_per_request(),
        }


@dataclass
class Row:
    """One concurrency: every round of each mode."""

    concurrency: int
    rounds: dict[str, list[Round]] = field(default_factory=lambda: {m: [] for m in MODES})

    def median_round(self, mode: str) -> Round | None:
        ordered = sorted(self.rounds[mode], key=lambda one: one.result.throughput)
        return ordered[(len(ordered) - 1) // 2] if ordered else None

    def median(self, mode: str) -> LoadResult | None:
        picked = self.median_round(mode)
        return picked.result if picked is not None else None


@dataclass
class Verdict:
    added_p50_ms: float
    ratio: float
    errors: int

    @property
    def latency_ok(self) -> bool:
        return self.added_p50_ms <= TARGET_ADDED_P50_MS

    @property
    def throughput_ok(self) -> bool:
        return self.ratio >= TARGET_THROUGHPUT_RATIO


def verdict(row: Row) -> Verdict | None:
    direct, relayed = row.median("direct"), row.median("relayed")
    if direct is None or relayed is None:
        return None
    return Verdict(
        added_p50_ms=relayed.p50_ms - direct.p50_ms,
        ratio=relayed.throughput / direct.throughput if direct.throughput else 0.0,
        errors=sum(
            one.result.errors + one.result.non_2xx for mode in MODES for one in row.rounds[mode]
        ),
    )


# --------------------------------------------------------------------------- the pool


def service_container(pool: Pool) -> tuple[str, str] | None:
    """The running service container's loopback address (its published port) and id."""
    client = pool.engine.client()
    try:
        for container in client.containers.list(filters=MANAGED):
            for binding in (
                container.attrs["NetworkSettings"]["Ports"].get(f"{IMAGE_PORT}/tcp") or []
            ):
                return f"http://127.0.0.1:{binding['HostPort']}", str(container.id)
    finally:
        client.close()
    return None


def status_of(url: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        return httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT_S).status_code
    except httpx.HTTPError:
        return None


def wait_for_service(pool: Pool, worker: Process) -> tuple[str, str]:
    """Wait until the worker's container answers ``/health`` directly; its address and id."""

    def answering() -> tuple[str, str] | None:
        if worker.popen is not None and worker.popen.poll() is not None:
            raise BenchFailed(f"rma-worker exited; it said:\n{worker.output()[-3000:]}")
        found = service_container(pool)
        return found if found is not None and status_of(found[0] + "/health") == 200 else None

    try:
        return wait_until(answering, SERVICE_START_TIMEOUT_S, "the service's container", 0.1)
    except WaitTimedOut as exc:
        raise BenchFailed(f"{exc}; rma-worker said:\n{worker.output()[-3000:]}") from None


def check_answerer(mode: str, base: str, headers: dict[str, str], container_id: str) -> None:
    """Make sure ``base`` reaches the pool's container, not one of another engine.

    Private dockerds started side by side share ``docker0``, so containers of two engines
    can get the same address, and one engine's port proxy can then reach the other's.
    """
    try:
        response = httpx.get(base + ECHO_PATH, headers=headers, timeout=10)
        hostname = EchoReply.parse(response.text).hostname
    except (httpx.HTTPError, ValueError) as exc:
        raise BenchFailed(f"{mode}: GET {base}{ECHO_PATH} failed: {exc}") from None
    if hostname != container_id[:12]:
        raise BenchFailed(
            f"{mode}: {base} is answered by container {hostname}, not by the pool's "
            f"{container_id[:12]}: another Docker engine on this machine has a container "
            "at the same address on the shared docker0 bridge; run the bench when it is gone"
        )


def create_api_key(pool: Pool) -> str:
    coordinator = pool.coordinator
    response = httpx.post(
        f"{coordinator.url}/api/admin/api-keys",
        headers={"Authorization": f"Bearer {coordinator.admin_token}"},
        json={"name": "bench"},
        timeout=10,
    )
    if response.status_code not in (200, 201):
        raise BenchFailed(
            f"POST /api/admin/api-keys answered {response.status_code}: {response.text[:300]}"
        )
    return str(response.json()["key"])


def wait_for_relay(pool: Pool, key: str, worker: Process) -> None:
    url = f"{pool.coordinator.url}/api/service/{SERVICE}/health"
    headers = {"Authorization": f"Bearer {key}"}
    last: list[str] = ["no answer"]

    def answering() -> bool:
        try:
            response = httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError as exc:
            last[0] = repr(exc)
            return False
        last[0] = f"{response.status_code} {response.text[:300]}"
        return response.status_code == 200

    try:
        wait_until(answering, RELAY_READY_TIMEOUT_S, f"GET {url} to answer 200", 0.2)
    except WaitTimedOut as exc:
        raise BenchFailed(
            f"{exc}; its last answer: {last[0]}\n"
            f"coordinator said:\n{pool.coordinator.output()[-2000:]}\n"
            f"rma-worker said:\n{worker.output()[-2000:]}"
        ) from None


# --------------------------------------------------------------------------- measuring


def describe(mode: str, result: LoadResult) -> str:
    problems = result.errors + result.non_2xx
    return (
        f"{mode:<8} {result.throughput:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  errors {problems}"
        + (f" ({result.first_error})" if problems else "")
    )


async def measure(
    urls: dict[str, str],
    headers: dict[str, dict[str, str]],
    args: argparse.Namespace,
    meter: CpuMeter,
) -> list[Row]:
    rows = []
    for concurrency in args.concurrency:
        row = Row(concurrency)
        rows.append(row)
        for number in range(1, args.rounds + 1):
            order = [mode for mode in MODES if mode in urls]
            if number % 2 == 0:
                order.reverse()
            for mode in order:
                result = await run_load(
                    urls[mode],
                    concurrency=concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    headers=headers[mode],
                    at_measure_start=meter.start,
                )
                row.rounds[mode].append(Round(result, meter.used()))
                print(f"  c={concurrency:<3} round {number} {describe(mode, result)}", flush=True)
    return rows


# --------------------------------------------------------------------------- reporting


def _figures(result: LoadResult | None) -> str:
    if result is None:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    return f"{result.p50_ms:8.2f} {result.p99_ms:8.2f} {result.throughput:8.0f}"


def print_table(rows: list[Row], direct_only: bool) -> None:
    print()
    print(f"{'':5} {'direct':^26}   {'relayed':^26}")
    print(
        f"{'conc':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}   {'p50 ms':>8} {'p99 ms':>8} "
        f"{'req/s':>8} {'added p50':>10} {'thr ratio':>10}  "
        f"{f'p50+<={TARGET_ADDED_P50_MS:g}ms':>12} {f'ratio>={TARGET_THROUGHPUT_RATIO:.0%}':>11}"
    )
    for row in rows:
        line = f"{row.concurrency:>5} {_figures(row.median('direct'))}   "
        line += _figures(row.median("relayed"))
        judged = verdict(row)
        if judged is not None:
            line += (
                f" {judged.added_p50_ms:>7.2f} ms {judged.ratio:>10.1%}  "
                f"{'PASS' if judged.latency_ok else 'FAIL':>12} "
                f"{'PASS' if judged.throughput_ok else 'FAIL':>11}"
            )
        print(line)
    notes = []
    for row in rows:
        for mode in MODES:
            results = [one.result for one in row.rounds[mode]]
            problems = [r for r in results if r.errors or r.non_2xx]
            if problems:
                count = sum(r.errors + r.non_2xx for r in problems)
                notes.append(
                    f"c={row.concurrency} {mode}: {count} failed requests, first: "
                    f"{problems[0].first_error}"
                )
            picked = row.median(mode)
            stalled = picked.count_at_least_ms(STALL_MS) if picked is not None else 0
            if picked is not None and stalled:
                notes.append(
                    f"c={row.concurrency} {mode}: {stalled} of {picked.ok} answers took >= "
                    f"{STALL_MS / 1000:g} s (busybox httpd listens with a backlog of 9; a "
                    "connect whose SYN it dropped is sent again after 1 s)"
                )
    relayed = [(row.concurrency, row.median_round("relayed")) for row in rows]
    cpu = [
        f"c={concurrency}: "
        + ", ".join(f"{name} {us:.0f} us" for name, us in picked.cpu_us_per_request().items())
        for concurrency, picked in relayed
        if picked is not None
    ]
    if cpu:
        print("\nCPU per relayed request (median round): " + "; ".join(cpu))
    if notes:
        print("\n" + "\n".join(notes))
    if direct_only:
        print("\n--direct-only: the relay was not measured, so there is no verdict")


def document(
    rows: list[Row], args: argparse.Namespace, urls: dict[str, str], machine: dict[str, Any]
) -> dict[str, Any]:
    summary = []
    for row in rows:
        judged = verdict(row)
        entry: dict[str, Any] = {"concurrency": row.concurrency}
        for mode in MODES:
            picked = row.median_round(mode)
            entry[mode] = picked.summary() if picked is not None else None
            entry[f"{mode}_rounds"] = [one.summary() for one in row.rounds[mode]]
        if judged is not None:
            entry.update(
                added_p50_ms=judged.added_p50_ms,
                throughput_ratio=judged.ratio,
                latency_pass=judged.latency_ok,
                throughput_pass=judged.throughput_ok,
            )
        summary.append(entry)
    return {
        "machine": machine,
        "settings": {
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "path": args.path,
            "direct_only": args.direct_only,
            "urls": urls,
        },
        "targets": {
            "added_p50_ms": TARGET_ADDED_P50_MS,
            "throughput_ratio": TARGET_THROUGHPUT_RATIO,
        },
        "rows": summary,
    }


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, root: Path) -> tuple[list[Row], dict[str, str]]:
    with running_pool(root / "pool", heartbeat_interval=HEARTBEAT_S) as pool:
        worker = worker_process("bench-worker", pool.coordinator.url, root)
        worker.env["DOCKER_HOST"] = pool.engine.host
        try:
            worker.start()
            started = time.monotonic()
            direct, container_id = wait_for_service(pool, worker)
            print(
                f"service container answering at {direct} after {time.monotonic() - started:.1f} s",
                flush=True,
            )
            bases = {"direct": direct}
            headers: dict[str, dict[str, str]] = {"direct": {}}
            if not args.direct_only:
                key = create_api_key(pool)
                started = time.monotonic()
                wait_for_relay(pool, key, worker)
                print(
                    f"relay answering at {pool.coordinator.url} after "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
                bases["relayed"] = f"{pool.coordinator.url}/api/service/{SERVICE}"
                headers["relayed"] = {"Authorization": f"Bearer {key}"}
            urls = {mode: base + args.path for mode, base in bases.items()}
            for mode, url in urls.items():
                check_answerer(mode, bases[mode], headers[mode], container_id)
                if status_of(url, headers[mode]) != 200:
                    raise BenchFailed(f"{mode}: GET {url} does not answer 200")
            assert worker.popen is not None and pool.coordinator.popen is not None
            meter = CpuMeter(
                {"coordinator": pool.coordinator.popen.pid, "worker": worker.popen.pid}
            )
            return asyncio.run(measure(urls, headers, args, meter)), urls
        finally:
            worker.stop()


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every process the bench started is stopped;
    # a second one must not cut that short.
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", default="1,8,32", help="comma-separated connection counts (1,8,32)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode (3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (1)")
    parser.add_argument("--path", default="/index.html", help="the path asked (/index.html)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    parser.add_argument(
        "--direct-only", action="store_true", help="measure the container directly only"
    )
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR", help="keep the pool's logs in this new folder"
    )
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(part) for part in args.concurrency.split(",") if part]
    except ValueError:
        parser.error("--concurrency takes numbers separated by commas, e.g. 1,8,32")
    if not args.concurrency or any(c < 1 for c in args.concurrency):
        parser.error("--concurrency needs connection counts >= 1")
    if args.rounds < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--rounds must be >= 1, --seconds > 0, --warmup >= 0")
    if not args.path.startswith("/"):
        parser.error("--path must start with /")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    with tempfile.TemporaryDirectory(prefix="rma-relay-bench-") as tmp:
        root = args.keep_logs or Path(tmp)
        try:
            rows, urls = run(args, root)
        except (BenchFailed, WaitTimedOut) as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        except pytest.fail.Exception as exc:  # the fixtures' way of saying a tool is missing
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: stopped everything the bench started", file=sys.stderr)
            return 130
    print_table(rows, args.direct_only)
    machine = machine_info()
    print(
        f"\nmachine: {machine['usable_cores']} usable cores ({machine['cpu_model']}), "
        f"{machine['implementation']} {machine['python']}; {args.rounds} round(s) x "
        f"{args.seconds:g} s (+{args.warmup:g} s warm-up) per mode and concurrency; "
        "client, coordinator, worker and container share the machine"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(document(rows, args, urls, machine), indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
