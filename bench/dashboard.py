"""How fast the admin dashboard is in a real browser, next to the raw API it draws.

One ``rma-coordinator`` process (the built-in catalogue, heartbeats every hour so the
workers stay online unattended) and Debian's chromium through Playwright, as in the
``browser`` tests (``tests/fixtures/browser.py``). For each size in ``--workers``
(``10,1000,3000``) the bench registers workers through the real ``POST
/api/worker/register`` (``tests/e2e/simulated_workers.py``; no agents behind them) until
the registry holds that many, then measures ``--runs`` times (5):

- **raw fetch**: from the signed-in page, ``fetch('/api/admin/workers?limit=5000')`` and
  ``response.json()``; the baseline, taken in the same run and the same browser.
- **cold load**: a new browser context (empty cache) that signed in through ``POST
  /api/admin/session``, so it holds only the session cookie, opens ``/admin``: from the
  start of the navigation to ``body[data-ready="1"]``, with the layout that follows forced,
  so the rows are laid out.
- **refresh**: the same page with ``?refresh=1000``: from the start of a poll (the first
  ``/api/admin/`` request after the previous refresh) to the page raising
  ``body[data-refreshes]``, again with layout forced. Split into the requests (poll start
  to the last response's end) and the rest (parsing, rendering, layout).

Times come from the page's own clock (``performance.now()``, Resource Timing), recorded by
a script added before the page's own. The table shows medians, the JSON payload of
``/api/admin/workers?limit=5000`` and the bytes one refresh transfers, and the ratio of
the cold load to the raw fetch. Browser, coordinator and bench share the machine; compare
rows of the same run::

    .venv/bin/python bench/dashboard.py [--workers 10,1000,3000] [--runs 5] [--json PATH]

Exit status: 0 when it measured, 1 when a step failed, 2 when chromium or Playwright is
missing, 130 when interrupted. The coordinator is stopped on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.heartbeats import machine_info  # noqa: E402
from tests.e2e.processes import CoordinatorProcess  # noqa: E402
from tests.e2e.simulated_workers import register_workers  # noqa: E402
from tests.fixtures.browser import DESKTOP_VIEWPORT, MissingBrowser, launch_chromium  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

HEARTBEAT_S = 3600.0
WORKERS_PATH = "/api/admin/workers?limit=5000"
REFRESH_MS = 1000
PAGE_TIMEOUT_MS = 60_000
REFRESH_CYCLES = 5
"""Refreshes measured per run, after the first one (which may be the initial render)."""

# Runs before the page's own scripts. A MutationObserver callback runs once the script
# that changed the attribute has finished its task; reading offsetHeight there forces the
# style and layout of what it rendered, so the time includes laying out the rows.
RECORDER = """
performance.setResourceTimingBufferSize(100000);
window.__bench = {ready: null, refreshes: []};
new MutationObserver(() => {
    const body = document.body;
    if (!body) return;
    void body.offsetHeight;
    const now = performance.now();
    if (body.dataset.ready === '1' && window.__bench.ready === null) window.__bench.ready = now;
    const count = Number(body.dataset.refreshes || 0);
    const seen = window.__bench.refreshes;
    if (count && (!seen.length || seen[seen.length - 1][0] !== count)) seen.push([count, now]);
}).observe(document, {subtree: true, attributes: true,
                      attributeFilter: ['data-ready', 'data-refreshes']});
"""

RAW_FETCH = """async (path) => {
    const start = performance.now();
    const response = await fetch(path, {credentials: 'same-origin'});
    const body = await response.json();
    const took = performance.now() - start;
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return [took, body.workers.length];
}"""

# Each refresh: the earliest /api/admin/ request that started after the previous refresh
# (the poll's start), the latest end among those requests, and the bytes they carried.
REFRESH_CYCLES_JS = """() => {
    const marks = window.__bench.refreshes;
    const requests = performance.getEntriesByType('resource')
        .filter(entry => entry.name.includes('/api/admin/'));
    const cycles = [];
    for (let i = 1; i < marks.length; i++) {
        const [previous, end] = [marks[i - 1][1], marks[i][1]];
        const inCycle = requests.filter(r => r.startTime >= previous && r.startTime < end);
        if (!inCycle.length) continue;
        cycles.push({
            start: Math.min(...inCycle.map(r => r.startTime)),
            fetched: Math.max(...inCycle.map(r => r.responseEnd)),
            end,
            bytes: inCycle.reduce((sum, r) => sum + r.decodedBodySize, 0),
            requests: inCycle.length,
        });
    }
    return cycles;
}"""


# The cold load's parts: until the first data request starts (HTML, CSS, script, the session
# check), the data requests (until the last one's end), and the rest (parse, render, layout).
COLD_PARTS_JS = """() => {
    const ready = window.__bench.ready;
    const data = performance.getEntriesByType('resource').filter(entry =>
        entry.name.includes('/api/admin/') && !entry.name.includes('/api/admin/session') &&
        entry.startTime < ready);
    if (!data.length) return null;
    const start = Math.min(...data.map(r => r.startTime));
    const fetched = Math.max(...data.map(r => r.responseEnd));
    return {boot: start, data: fetched - start, rest: ready - fetched};
}"""


class BenchFailed(RuntimeError):
    """A step could not be done; the message says which."""


@dataclass
class Row:
    workers: int
    payload_bytes: int
    raw_fetch_ms: list[float] = field(default_factory=list)
    cold_load_ms: list[float] = field(default_factory=list)
    cold_boot_ms: list[float] = field(default_factory=list)
    cold_data_ms: list[float] = field(default_factory=list)
    cold_render_ms: list[float] = field(default_factory=list)
    refresh_ms: list[float] = field(default_factory=list)
    refresh_fetch_ms: list[float] = field(default_factory=list)
    refresh_render_ms: list[float] = field(default_factory=list)
    refresh_bytes: list[int] = field(default_factory=list)
    refresh_requests: list[int] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = getattr(self, name)
        return float(statistics.median(values)) if values else float("nan")


def signed_in_context(browser: Browser, coordinator: CoordinatorProcess) -> BrowserContext:
    """A fresh context holding only the dashboard's session cookie."""
    context = browser.new_context(base_url=coordinator.url, viewport=DESKTOP_VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    answer = context.request.post("/api/admin/session", data={"token": coordinator.admin_token})
    if answer.status != 200:
        raise BenchFailed(f"signing in failed: {answer.status} {answer.text()}")
    context.add_init_script(RECORDER)
    return context


def wait_ready(page: Page) -> float:
    page.wait_for_function("() => window.__bench && window.__bench.ready !== null")
    return float(page.evaluate("window.__bench.ready"))


def measure_once(browser: Browser, coordinator: CoordinatorProcess, row: Row) -> None:
    # Cold: a new context, so nothing is cached; the page loads without a refresh going.
    context = signed_in_context(browser, coordinator)
    try:
        page = context.new_page()
        page.goto("/admin")
        row.cold_load_ms.append(wait_ready(page))
        parts = page.evaluate(COLD_PARTS_JS)
        if parts is None:
            raise BenchFailed("the page was ready without any /api/admin/ data request")
        row.cold_boot_ms.append(parts["boot"])
        row.cold_data_ms.append(parts["data"])
        row.cold_render_ms.append(parts["rest"])
    finally:
        context.close()

    context = signed_in_context(browser, coordinator)
    try:
        page = context.new_page()
        page.goto(f"/admin?refresh={REFRESH_MS}")
        wait_ready(page)
        took, listed = page.evaluate(RAW_FETCH, WORKERS_PATH)
        if listed != row.workers:
            raise BenchFailed(f"{WORKERS_PATH} listed {listed} workers, not {row.workers}")
        row.raw_fetch_ms.append(float(took))
        page.wait_for_function("n => window.__bench.refreshes.length >= n", arg=REFRESH_CYCLES + 2)
        cycles = page.evaluate(REFRESH_CYCLES_JS)[-REFRESH_CYCLES:]
        if not cycles:
            raise BenchFailed("the page refreshed without any /api/admin/ request")
        for cycle in cycles:
            row.refresh_ms.append(cycle["end"] - cycle["start"])
            row.refresh_fetch_ms.append(cycle["fetched"] - cycle["start"])
            row.refresh_render_ms.append(cycle["end"] - cycle["fetched"])
            row.refresh_bytes.append(int(cycle["bytes"]))
            row.refresh_requests.append(int(cycle["requests"]))
    finally:
        context.close()


def payload_bytes(coordinator: CoordinatorProcess, expected: int) -> int:
    response = httpx.get(
        coordinator.url + WORKERS_PATH,
        headers={"Authorization": f"Bearer {coordinator.admin_token}"},
        timeout=60,
    )
    response.raise_for_status()
    if response.json()["total"] != expected:
        raise BenchFailed(f"the registry holds {response.json()['total']}, not {expected}")
    return len(response.content)


def run(args: argparse.Namespace, root: Path) -> list[Row]:
    coordinator = CoordinatorProcess.create(
        root / "coordinator", secrets.token_urlsafe(24), HEARTBEAT_S
    )
    rows: list[Row] = []
    playwright, browser = launch_chromium()
    try:
        coordinator.start()
        registered = 0
        for size in sorted(args.workers):
            began = time.monotonic()
            register_workers(coordinator.url, size - registered, "bench", start=registered)
            print(
                f"{size} workers registered (+{size - registered} in "
                f"{time.monotonic() - began:.1f} s); measuring {args.runs} runs",
                flush=True,
            )
            registered = size
            row = Row(size, payload_bytes(coordinator, size))
            for _ in range(args.runs):
                measure_once(browser, coordinator, row)
            rows.append(row)
    finally:
        browser.close()
        playwright.stop()
        coordinator.stop()
    return rows


def print_table(rows: list[Row], runs: int) -> None:
    print()
    print(
        f"{'workers':>7} {'JSON KiB':>9} {'raw fetch':>10} {'cold load':>10} "
        f"{'(boot':>7} {'+ data':>7} {'+ rest)':>8} {'load/fetch':>10} "
        f"{'refresh':>8} {'(data':>7} {'+ rest)':>8} {'KiB/refresh':>12}"
    )
    for row in rows:
        raw, load = row.median("raw_fetch_ms"), row.median("cold_load_ms")
        print(
            f"{row.workers:>7} {row.payload_bytes / 1024:>9.1f} {raw:>8.1f}ms {load:>8.1f}ms "
            f"{row.median('cold_boot_ms'):>5.0f}ms {row.median('cold_data_ms'):>5.0f}ms "
            f"{row.median('cold_render_ms'):>6.0f}ms {load / raw:>9.1f}x "
            f"{row.median('refresh_ms'):>6.1f}ms {row.median('refresh_fetch_ms'):>5.0f}ms "
            f"{row.median('refresh_render_ms'):>6.0f}ms "
            f"{row.median('refresh_bytes') / 1024:>12.1f}"
        )
    print(
        f"\nmedians of {runs} runs ({runs * REFRESH_CYCLES} refreshes). raw fetch: "
        f"fetch('{WORKERS_PATH}') + .json() in the page, alone. cold load: navigation start "
        "to body[data-ready=1] with the rows laid out, in a new context (empty cache, session "
        "cookie only); boot = until the first data request, data = the page's four parallel "
        "/api/admin/ requests, rest = parse, render, layout. refresh: poll start to "
        "body[data-refreshes] raised, rows laid out; KiB/refresh = the bodies of its requests"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[10, 1000, 3000],
        help="registry sizes to measure, comma-separated (at most 5000: the page's limit)",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per size (default 5)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--keep-logs", type=Path, help="keep the coordinator's data and log in this folder"
    )
    return parser.parse_args(argv)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    with tempfile.TemporaryDirectory(prefix="rma-dashboard-bench-") as tmp:
        root = args.keep_logs or Path(tmp)
        try:
            rows = run(args, root)
        except MissingBrowser as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: stopped everything the bench started", file=sys.stderr)
            return 130
        except Exception as exc:  # a failed step, with what the coordinator said
            print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            log = root / "coordinator.log"
            if log.exists():
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 1
    print_table(rows, args.runs)
    machine = machine_info()
    print(
        f"machine: {machine['usable_cores']} usable cores ({machine['cpu_model']}); "
        "browser, coordinator and bench share it"
    )
    if args.json is not None:
        document = {"rows": [asdict(row) for row in rows], "machine": machine}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
