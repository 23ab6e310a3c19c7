"""Heartbeat throughput and latency against a real uvicorn coordinator.

Starts the coordinator (``create_app``) in a child process under ``uvicorn.run``, with one
extra route, ``POST /bench/noop`` (async, no body model, returns ``{}``), registers many
simulated workers through the real register endpoint, then drives ``POST
/api/worker/heartbeat`` and ``POST /bench/noop`` from a cheap raw asyncio HTTP/1.1
keep-alive client. Both endpoints get byte-for-byte the same request headers and body, on
the same server, in the same run, in alternating rounds (noop, heartbeat, noop, heartbeat,
...) so that drift hits both equally. Each row is the median round by throughput (the
lower middle round for an even number of rounds), with that round's latencies.

    .venv/bin/python bench/heartbeats.py
    .venv/bin/python bench/heartbeats.py --concurrency-sweep 1,8,32 --json /tmp/hb.json

The script always exits 0 when it could measure (it is a measurement, not a test); it
exits 1 when the server could not be started or a phase could not run at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HEARTBEAT_PATH = "/api/worker/heartbeat"
NOOP_PATH = "/bench/noop"
TARGET_RATIO = 0.70
TARGET_P99_MS = 50.0
TARGET_CONNECTIONS = 32
SERVER_START_TIMEOUT = 60.0
PHASE_GRACE = 20.0
"""Seconds a phase may overrun its duration (a stuck request) before it is abandoned."""

ADMIN_TOKEN_ENV = "RMA_BENCH_ADMIN_TOKEN"


# --------------------------------------------------------------------------- the server


def serve(port: int, data_dir: str) -> None:
    """Run the coordinator plus the no-op route under uvicorn (in the child process)."""
    import uvicorn

    from coordinator.app import create_app
    from coordinator.settings import CoordinatorSettings

    parent = os.getppid()

    def die_with_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=die_with_parent, name="bench-parent-watch", daemon=True).start()

    settings = CoordinatorSettings(
        data_dir=Path(data_dir),
        admin_token=os.environ[ADMIN_TOKEN_ENV],
        heartbeat_interval=30,
        log_level="WARNING",
    )
    app = create_app(settings)

    @app.post(NOOP_PATH, include_in_schema=False)
    async def noop():  # no return annotation: no response model, on purpose
        return {}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **{ADMIN_TOKEN_ENV: secrets.token_urlsafe(24)[:32]})
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), data_dir],
        env=env,
        start_new_session=True,  # Ctrl-C reaches only us; we stop the server ourselves
    )


def wait_healthy(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before it was up")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {url} within {SERVER_START_TIMEOUT:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)  # uvicorn's graceful stop: runs the lifespan exit
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the server process (all threads), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class Worker:
    worker_id: str
    token: str


def register_workers(port: int, count: int) -> list[Worker]:
    """Register ``count`` workers through the real endpoint, each with its own token."""
    import httpx

    from shared import PROTOCOL_VERSION

    workers: list[Worker] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for index in range(count):
            response = client.post(
                "/api/worker/register",
                json={
                    "capabilities": {"cpu_cores": 4, "ram": "8GB"},
                    "name": f"bench-worker-{index}",
                    "agent_version": "bench",
                    "protocol_version": PROTOCOL_VERSION,
                },
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"registering worker {index} failed: {response.status_code} {response.text}"
                )
            body = response.json()
            workers.append(Worker(body["worker_id"], body["worker_token"]))
    return workers


def request_bytes(port: int, path: str, worker: Worker, load: float) -> bytes:
    body = json.dumps({"worker_id": worker.worker_id, "current_load": load}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {worker.token}\r\n"
        "Content-Type: application/json\r\n"
        "User-Agent: rma-bench\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- the client


class BadResponse(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_end = head.index(b"\r\n")
    parts = head[:status_end].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise BadResponse(f"bad status line {head[:status_end]!r}")
    status = int(parts[1])
    length = None
    for line in head[status_end + 2 : -4].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            break
    if length is None:
        raise BadResponse("response without Content-Length")
    body = await reader.readexactly(length) if length else b""
    return status, body


@dataclass
class Connection:
    port: int
    requests: list[bytes]
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    next_index: int = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class ConnectionTally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    last_done: float = 0.0


async def drive(conn: Connection, deadline: float, tally: ConnectionTally) -> None:
    """Send requests one at a time on ``conn`` until ``deadline``; latencies in seconds."""
    perf_counter = time.perf_counter
    requests = conn.requests
    count = len(requests)
    latencies = tally.latencies
    index = conn.next_index
    while perf_counter() < deadline:
        if conn.writer is None:
            try:
                await conn.open()
            except OSError as exc:
                tally.errors += 1
                tally.first_error = tally.first_error or f"connect: {exc!r}"
                await asyncio.sleep(0.05)
                continue
        assert conn.reader is not None and conn.writer is not None
        data = requests[index]
        index = index + 1 if index + 1 < count else 0
        started = perf_counter()
        try:
            conn.writer.write(data)
            status, body = await read_response(conn.reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, BadResponse) as e:
            tally.errors += 1
            tally.first_error = tally.first_error or repr(e)
            conn.close()
            continue
        done = perf_counter()
        if status == 200:
            latencies.append(done - started)
        else:
            tally.errors += 1
            tally.first_error = tally.first_error or f"HTTP {status}: {body[:200]!r}"
        tally.last_done = done
    conn.next_index = index


@dataclass
class PhaseResult:
    endpoint: str
    connections: int
    round: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float | None
    server_cpu_us_per_request: float | None
    first_error: str | None


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def run_phase(
    conns: list[Connection], seconds: float, server_pid: int
) -> tuple[float, list[ConnectionTally], float | None]:
    tallies = [ConnectionTally() for _ in conns]
    cpu_before = server_cpu_seconds(server_pid)
    start = time.perf_counter()
    deadline = start + seconds
    tasks = [
        asyncio.ensure_future(drive(conn, deadline, tally))
        for conn, tally in zip(conns, tallies, strict=True)
    ]
    done, pending = await asyncio.wait(tasks, timeout=seconds + PHASE_GRACE)
    for task in pending:
        task.cancel()
    for conn, task in zip(conns, tasks, strict=True):
        if task in pending:
            conn.close()  # its in-flight request is abandoned
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # surface bugs in the client itself
    end = max([t.last_done for t in tallies] + [deadline])
    cpu_after = server_cpu_seconds(server_pid)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    for tally in tallies:
        if pending and tally.first_error is None and not tally.latencies:
            tally.first_error = "request did not finish"
    return end - start, tallies, cpu


async def measure_endpoint(
    port: int,
    path: str,
    workers: list[Worker],
    connections: int,
    warmup: float,
    seconds: float,
    round_number: int,
    server_pid: int,
) -> PhaseResult:
    shares: list[list[bytes]] = [[] for _ in range(connections)]
    for index, worker in enumerate(workers):
        shares[index % connections].append(request_bytes(port, path, worker, (index % 100) / 100))
    for index, share in enumerate(shares):  # more connections than workers: reuse workers
        if not share:
            share.append(request_bytes(port, path, workers[index % len(workers)], 0.5))
    conns = [Connection(port, share) for share in shares]
    try:
        await asyncio.gather(*(conn.open() for conn in conns))
        if warmup > 0:
            await run_phase(conns, warmup, server_pid)
        elapsed, tallies, cpu = await run_phase(conns, seconds, server_pid)
    finally:
        for conn in conns:
            conn.close()
    latencies = sorted(latency for tally in tallies for latency in tally.latencies)
    errors = sum(tally.errors for tally in tallies)
    first_error = next((t.first_error for t in tallies if t.first_error), None)
    ok = len(latencies)
    return PhaseResult(
        endpoint="heartbeat" if path == HEARTBEAT_PATH else "noop",
        connections=connections,
        round=round_number,
        seconds=elapsed,
        requests=ok,
        errors=errors,
        rps=ok / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p90_ms=percentile(latencies, 0.90) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else 0.0,
        server_cpu_s=cpu,
        server_cpu_us_per_request=(cpu / ok * 1e6) if cpu is not None and ok else None,
        first_error=first_error,
    )


async def sanity_check(port: int, worker: Worker) -> None:
    """One heartbeat and one no-op, answered 200 with the expected bodies."""
    conn = Connection(port, [])
    await conn.open()
    assert conn.reader is not None and conn.writer is not None
    try:
        for path, must_contain in ((HEARTBEAT_PATH, b'"status":"ok"'), (NOOP_PATH, b"{}")):
            conn.writer.write(request_bytes(port, path, worker, 0.5))
            status, body = await asyncio.wait_for(read_response(conn.reader), 10)
            if status != 200 or must_contain not in body:
                raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
    finally:
        conn.close()


async def run_benchmark(
    port: int, workers: list[Worker], args: argparse.Namespace, server_pid: int
) -> list[PhaseResult]:
    await sanity_check(port, workers[0])
    results: list[PhaseResult] = []
    for connections in args.concurrency:
        for round_number in range(1, args.rounds + 1):
            for path in (NOOP_PATH, HEARTBEAT_PATH):
                result = await measure_endpoint(
                    port,
                    path,
                    workers,
                    connections,
                    args.warmup,
                    args.seconds,
                    round_number,
                    server_pid,
                )
                results.append(result)
                print(
                    f"  c={connections:<3} round {round_number} {result.endpoint:<9} "
                    f"{result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}",
                    flush=True,
                )
    return results


# --------------------------------------------------------------------------- reporting


def median_round(results: list[PhaseResult]) -> PhaseResult:
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    # The agent's own reader (/proc/cpuinfo, sysctl or the registry, per OS).
    from desktop_app.agent.hardware.host import read_cpu_model

    cpu_model = read_cpu_model(platform.system())
    versions = {}
    for module in ("uvicorn", "uvloop", "httptools", "fastapi", "starlette", "pydantic"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:
            versions[module] = None
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def report(results: list[PhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    print()
    print(
        f"{'endpoint':<10} {'conns':>5} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>7} {'srv CPU us/req':>15}"
    )
    summary: dict[int, dict[str, Any]] = {}
    for connections in args.concurrency:
        rows = {}
        for endpoint in ("noop", "heartbeat"):
            picked = median_round(
                [r for r in results if r.connections == connections and r.endpoint == endpoint]
            )
            rows[endpoint] = picked
            cpu = (
                f"{picked.server_cpu_us_per_request:15.0f}"
                if picked.server_cpu_us_per_request is not None
                else f"{'?':>15}"
            )
            print(
                f"{endpoint:<10} {connections:>5} {picked.rps:>11.0f} {picked.p50_ms:>8.2f} "
                f"{picked.p99_ms:>8.2f} {picked.max_ms:>8.2f} {picked.errors:>7} {cpu}"
            )
        ratio = rows["heartbeat"].rps / rows["noop"].rps if rows["noop"].rps else 0.0
        summary[connections] = {
            "noop": asdict(rows["noop"]),
            "heartbeat": asdict(rows["heartbeat"]),
            "ratio": ratio,
        }
    print()
    for connections, entry in summary.items():
        heartbeat = entry["heartbeat"]
        ratio_ok = entry["ratio"] >= TARGET_RATIO
        p99_ok = heartbeat["p99_ms"] < TARGET_P99_MS
        errors_ok = heartbeat["errors"] == 0 and entry["noop"]["errors"] == 0
        verdict = "PASS" if ratio_ok and p99_ok and errors_ok else "FAIL"
        marker = "  <- acceptance point" if connections == TARGET_CONNECTIONS else ""
        print(
            f"c={connections}: heartbeat/no-op throughput {entry['ratio'] * 100:.1f}% "
            f"(target >= {TARGET_RATIO * 100:.0f}%: {'ok' if ratio_ok else 'MISSED'}), "
            f"heartbeat p99 {heartbeat['p99_ms']:.2f} ms "
            f"(target < {TARGET_P99_MS:.0f} ms: {'ok' if p99_ok else 'MISSED'}), "
            f"errors {'none' if errors_ok else 'SOME'} -> {verdict}{marker}"
        )
        for endpoint in ("noop", "heartbeat"):
            if entry[endpoint]["first_error"]:
                print(f"    first {endpoint} error: {entry[endpoint]['first_error']}")
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    print(
        f"\nmachine: {machine['usable_cores']} usable cores ({machine['cores']} online, "
        f"{machine['cpu_model']}), {machine['implementation']} {machine['python']}, "
        f"{machine['platform']}\n{packages}\n"
        f"workers {args.workers}, {args.rounds} rounds x {args.seconds:g} s measured "
        f"(+{args.warmup:g} s warm-up) per endpoint; client and server share the machine"
    )
    if TARGET_CONNECTIONS not in args.concurrency:
        print(f"(the acceptance targets are defined at {TARGET_CONNECTIONS} connections)")
    return {
        "machine": machine,
        "settings": {
            "workers": args.workers,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
        },
        "targets": {
            "ratio": TARGET_RATIO,
            "p99_ms": TARGET_P99_MS,
            "connections": TARGET_CONNECTIONS,
        },
        "summary": {str(k): v for k, v in summary.items()},
        "rounds": [asdict(r) for r in results],
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=500, help="simulated workers (500)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--concurrency-sweep",
        metavar="LIST",
        help="comma-separated connection counts, e.g. 1,8,32 (overrides --connections)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per endpoint (2)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--pause-before",
        type=float,
        default=0.0,
        metavar="S",
        help="print the server pid and wait S seconds before measuring (to attach a profiler)",
    )
    args = parser.parse_args(argv)
    if args.concurrency_sweep:
        args.concurrency = [int(part) for part in args.concurrency_sweep.split(",") if part]
    else:
        args.concurrency = [args.connections]
    if args.workers < 1 or args.rounds < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--workers and --rounds must be >= 1, --seconds > 0, --warmup >= 0")
    if any(c < 1 for c in args.concurrency):
        parser.error("connection counts must be >= 1")
    return args


def run_client(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _interrupt(_signum: int, _frame: Any) -> None:
    os.kill(os.getpid(), signal.SIGINT)  # handled like Ctrl-C, also inside the event loop


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the server on kill, as on Ctrl-C
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rma-bench-") as data_dir:
        server = start_server(port, data_dir)
        try:
            wait_healthy(port, server)
            started = time.perf_counter()
            workers = register_workers(port, args.workers)
            print(
                f"server pid {server.pid} on 127.0.0.1:{port}; registered {len(workers)} "
                f"workers in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            if args.pause_before > 0:
                print(f"pausing {args.pause_before:g} s before measuring", flush=True)
                time.sleep(args.pause_before)
            results = run_client(run_benchmark(port, workers, args, server.pid))
            if server.poll() is not None:
                print(f"the server exited with {server.returncode} during the run")
                return 1
            document = report(results, args)
            if args.json:
                args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
                print(f"results written to {args.json}")
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            stop_server(server)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(main())
