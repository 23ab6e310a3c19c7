"""Resident memory and CPU of tray apps on a real X desktop, next to an empty tray app.

Each subject is launched in turn, in the same run, on the same Xvfb + trayer desktop
(``tests/fixtures/x_desktop.py``). The bench waits for its tray icon to appear in trayer's
panel, lets it settle (``--settle``, 5 s), then samples it every ``--interval`` (1 s) for
``--seconds`` (60 s), then stops it (SIGTERM to its process group, SIGKILL after 5 s) and
waits for its icon to leave before the next subject starts.

The first subject is always ``empty``: ``bench/empty_tray_app.py``, the smallest honest
PySide6 tray app (QApplication, an svg icon, a four-item context menu). Other subjects come
from the command line:

- ``--subject NAME=COMMAND``: the command, split like a shell would (``shlex.split``) and
  run from the repository root with the desktop's environment (``DISPLAY``, a private
  session bus, ``QT_QPA_PLATFORM=xcb``);
- ``--env NAME:KEY=VALUE`` (repeatable): extra environment for that subject only, e.g. a
  private ``HOME`` / ``XDG_CONFIG_HOME`` or a coordinator URL;
- ``--wm-class NAME=CLASS``: the ``WM_CLASS`` of its tray icon (Qt: the application name);
  without it, the first new icon in the tray is taken as the subject's.

Whatever else a subject needs (a coordinator, a Docker engine, a volunteer's settings) the
caller starts and points it to through ``--env`` before running the bench. For example, the
tray app idle and contributing (the lead adds these)::

    .venv/bin/python bench/tray_footprint.py --seconds 60 --json /tmp/tray.json \\
        --subject idle=".venv/bin/rma-desktop" --wm-class idle=rma-desktop \\
        --env idle:HOME=/tmp/rma-idle \\
        --subject contributing=".venv/bin/rma-desktop" --wm-class contributing=rma-desktop \\
        --env contributing:HOME=/tmp/rma-contributing

What is measured, per sample, over the subject's process and all its descendants:

- RSS and USS (``psutil`` ``memory_full_info``; USS is the memory freed if the process tree
  exited, RSS also counts shared libraries, and counts pages shared between the tree's
  processes once per process). USS falls while other processes map the same libraries
  (another Python + Qt app, a test run): measure on a quiet machine;
- CPU: user + system CPU time used by the tree since the previous sample, divided by the
  wall time between the samples, as a percentage of one core. A child that starts and exits
  between two samples is missed;
- "X+tray CPU": the same for Xvfb plus trayer, i.e. the drawing the subject makes the X
  server and the tray do (the desktop is otherwise idle).

The table shows the median and max RSS, the median USS, the mean CPU over the window (total
CPU time over total wall time) and the busiest 1-s sample, the seconds from launch to the
tray icon appearing, and RSS (median) relative to ``empty``. ``--json PATH`` writes every
sample and the summary. Absolute figures depend on the machine and Qt build; compare
subjects from the same run.

    .venv/bin/python bench/tray_footprint.py [--seconds 60] [--subject NAME=COMMAND ...]

``--with-pool`` does all of that for ``rma-desktop`` itself: it starts a private Docker
engine, a loopback registry holding a small HTTP service image, and an ``rma-coordinator``
whose catalogue assigns that service to every worker, then measures two more subjects:
``rma-desktop contributing`` (joined; the service's container runs) and ``rma-desktop
paused`` (joined, contribution switched off: registered, no container). Run as root (the
private dockerd)::

    .venv/bin/python bench/tray_footprint.py --with-pool --seconds 60 --settle 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.waiting import wait_until  # noqa: E402
from tests.fixtures.x_desktop import (  # noqa: E402
    SCREEN,
    MissingTool,
    XDesktop,
    running_x_desktop,
    stop_process,
)

EMPTY_APP = REPO / "bench" / "empty_tray_app.py"
MIB = 1024 * 1024


@dataclass
class Subject:
    name: str
    command: list[str]
    wm_class: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    t: float
    """Seconds since the measurement started."""
    processes: int
    rss: int
    uss: int
    pss: int
    cpu_percent: float
    """CPU time of the subject's tree since the previous sample, % of one core."""
    desktop_cpu_percent: float
    """The same for Xvfb + trayer."""


@dataclass
class Result:
    name: str
    command: list[str]
    env_keys: list[str]
    wm_class: str | None
    icon_after_s: float | None = None
    samples: list[Sample] = field(default_factory=list)
    cpu_mean_percent: float | None = None
    desktop_cpu_mean_percent: float | None = None
    error: str | None = None

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {}
        rss = [s.rss / MIB for s in self.samples]
        uss = [s.uss / MIB for s in self.samples]
        pss = [s.pss / MIB for s in self.samples]
        return {
            "rss_mib_median": statistics.median(rss),
            "rss_mib_max": max(rss),
            "uss_mib_median": statistics.median(uss),
            "uss_mib_max": max(uss),
            "pss_mib_median": statistics.median(pss),
            "cpu_percent_mean": self.cpu_mean_percent,
            "cpu_percent_max_1s": max(s.cpu_percent for s in self.samples),
            "desktop_cpu_percent_mean": self.desktop_cpu_mean_percent,
            "processes_max": max(s.processes for s in self.samples),
            "icon_after_s": self.icon_after_s,
        }


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class TreeMeter:
    """Memory and cumulative CPU time of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._cpu: dict[tuple[int, float], float] = {}

    def read(self) -> tuple[int, int, int, int, float]:
        """(processes, rss, uss, pss, CPU seconds since the previous read)."""
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            processes = []
        rss = uss = pss = 0
        cpu_delta = 0.0
        seen: dict[tuple[int, float], float] = {}
        for process in processes:
            try:
                with process.oneshot():
                    memory = process.memory_full_info()
                    key = (process.pid, process.create_time())
                    cpu = _cpu_seconds(process)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            rss += memory.rss
            uss += memory.uss
            pss += getattr(memory, "pss", 0)
            seen[key] = cpu
            cpu_delta += cpu - self._cpu.get(key, 0.0)  # a new process: all of its time
        self._cpu = seen
        return len(seen), rss, uss, pss, cpu_delta


class CpuMeter:
    """Cumulative CPU time of a fixed set of processes (the desktop's own)."""

    def __init__(self, pids: list[int]) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self._last = self._total()

    def _total(self) -> float:
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += _cpu_seconds(process)
        return total

    def delta(self) -> float:
        now = self._total()
        delta, self._last = now - self._last, now
        return delta


def measure(desktop: XDesktop, subject: Subject, args: argparse.Namespace, log_dir: Path) -> Result:
    result = Result(
        name=subject.name,
        command=subject.command,
        env_keys=sorted(subject.env),
        wm_class=subject.wm_class,
    )
    known_icons = {icon.id for icon in desktop.tray_icons()}
    log_path = log_dir / f"{subject.name}.log"
    print(f"==> {subject.name}: {shlex.join(subject.command)}", flush=True)
    launched = time.monotonic()
    process = desktop.spawn(subject.command, log_path=log_path, extra_env=subject.env, cwd=REPO)
    try:
        try:
            icon = desktop.wait_for_tray_icon(
                subject.wm_class,
                timeout=args.startup_timeout,
                exclude_ids=known_icons,
                process=process,
            )
        except (TimeoutError, RuntimeError) as exc:
            result.error = str(exc)
            return result
        result.icon_after_s = time.monotonic() - launched
        print(
            f"    icon {icon.wm_instance}/{icon.wm_class} after {result.icon_after_s:.2f} s; "
            f"settling {args.settle:g} s, then measuring {args.seconds:g} s",
            flush=True,
        )
        time.sleep(args.settle)

        tree = TreeMeter(process.pid)
        desktop_cpu = CpuMeter(
            [pid for name, pid in desktop.service_pids.items() if name in ("Xvfb", "trayer")]
        )
        tree.read()  # the CPU baseline
        desktop_cpu.delta()
        start = previous = time.monotonic()
        total_cpu = total_desktop_cpu = 0.0
        count = max(1, round(args.seconds / args.interval))
        for index in range(1, count + 1):
            # The sampling cadence: sleep to the next tick, measured from the start.
            time.sleep(max(0.0, start + index * args.interval - time.monotonic()))
            processes, rss, uss, pss, cpu = tree.read()
            x_cpu = desktop_cpu.delta()
            now = time.monotonic()
            wall = now - previous
            previous = now
            if process.poll() is not None:
                result.error = (
                    f"exited with status {process.returncode} while being measured; "
                    f"its log ends:\n{desktop.log_tail(process)}"
                )
                return result
            total_cpu += cpu
            total_desktop_cpu += x_cpu
            result.samples.append(
                Sample(
                    t=now - start,
                    processes=processes,
                    rss=rss,
                    uss=uss,
                    pss=pss,
                    cpu_percent=100.0 * cpu / wall,
                    desktop_cpu_percent=100.0 * x_cpu / wall,
                )
            )
        elapsed = previous - start
        result.cpu_mean_percent = 100.0 * total_cpu / elapsed
        result.desktop_cpu_mean_percent = 100.0 * total_desktop_cpu / elapsed
        return result
    finally:
        stop_process(process)
        with contextlib.suppress(TimeoutError):
            wait_until(
                lambda: not [i for i in desktop.tray_icons() if i.id not in known_icons],
                10,
                f"{subject.name}'s icon to leave the tray",
            )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(results: list[Result]) -> None:
    baseline = results[0].summary().get("rss_mib_median") if results else None
    header = (
        f"{'subject':<16} {'procs':>5} {'RSS MiB med':>11} {'RSS MiB max':>11} "
        f"{'USS MiB med':>11} {'CPU% mean':>9} {'CPU% max 1s':>11} {'X+tray CPU%':>11} "
        f"{'icon s':>6} {'RSS/empty':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for result in results:
        if result.error is not None:
            print(f"{result.name:<16} FAILED: {result.error.splitlines()[0]}")
            continue
        s = result.summary()
        rss = s["rss_mib_median"]
        ratio = rss / baseline if rss is not None and baseline else None
        print(
            f"{result.name:<16} {int(s['processes_max'] or 0):>5} {_fmt(rss):>11} "
            f"{_fmt(s['rss_mib_max']):>11} {_fmt(s['uss_mib_median']):>11} "
            f"{_fmt(s['cpu_percent_mean'], 2):>9} {_fmt(s['cpu_percent_max_1s'], 2):>11} "
            f"{_fmt(s['desktop_cpu_percent_mean'], 2):>11} {_fmt(s['icon_after_s'], 2):>6} "
            f"{_fmt(ratio, 2):>9}"
        )
    print()
    print(
        "RSS/USS: summed over the subject's process tree; CPU: % of one core over the window "
        "(mean) and the busiest 1-s sample; X+tray: Xvfb and trayer's CPU while it ran."
    )


def _split_pair(text: str, separator: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition(separator)
    if not sep or not name or not value:
        raise SystemExit(f"{option} expects NAME{separator}VALUE, got {text!r}")
    return name, value


def parse_subjects(args: argparse.Namespace) -> list[Subject]:
    subjects = [Subject("empty", [sys.executable, str(EMPTY_APP)], wm_class="empty_tray_app")]
    for text in args.subject:
        name, command = _split_pair(text, "=", "--subject")
        if any(s.name == name for s in subjects):
            raise SystemExit(f"--subject: {name!r} given twice (or it is the baseline's name)")
        subjects.append(Subject(name, shlex.split(command)))
    by_name = {s.name: s for s in subjects}
    for text in args.wm_class:
        name, wm_class = _split_pair(text, "=", "--wm-class")
        if name not in by_name:
            raise SystemExit(f"--wm-class: no subject named {name!r}")
        by_name[name].wm_class = wm_class
    for text in args.env:
        name, assignment = _split_pair(text, ":", "--env")
        key, value = _split_pair(assignment, "=", "--env")
        if name not in by_name:
            raise SystemExit(f"--env: no subject named {name!r}")
        by_name[name].env[key] = value
    return subjects


@contextlib.contextmanager
def pool_subjects(root: Path) -> Iterator[list[Subject]]:
    """A real pool for rma-desktop: private dockerd, loopback registry, a coordinator."""
    from bench._pool import COORDINATOR_HEARTBEAT_S, running_pool
    from tests.e2e.processes import write_settings

    # The coordinator's default heartbeat interval, as a volunteer's app would see.
    with running_pool(root, heartbeat_interval=COORDINATOR_HEARTBEAT_S) as pool:
        subjects = []
        for name, settings in (
            ("rma-desktop contributing", {"joined": True}),
            ("rma-desktop paused", {"joined": True, "contributing": False}),
        ):
            home = root / name.replace(" ", "-")
            write_settings(home / "config", settings)
            subjects.append(
                Subject(
                    name,
                    [
                        str(Path(sys.executable).with_name("rma-desktop")),
                        "--credential-store",
                        "file",
                    ],
                    wm_class="rma-desktop",
                    env={
                        "XDG_CONFIG_HOME": str(home / "config"),
                        "XDG_STATE_HOME": str(home / "state"),
                        "XDG_CACHE_HOME": str(home / "cache"),
                        "RMA_COORDINATOR_URL": pool.coordinator.url,
                        "DOCKER_HOST": pool.engine.host,
                    },
                )
            )
        yield subjects


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per subject")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after the icon appears")
    parser.add_argument(
        "--startup-timeout", type=float, default=60.0, help="max seconds until the icon appears"
    )
    parser.add_argument(
        "--subject",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="another tray app to measure (shell-split); repeatable",
    )
    parser.add_argument(
        "--wm-class",
        action="append",
        default=[],
        metavar="NAME=CLASS",
        help="the WM_CLASS of that subject's tray icon (default: the first new icon)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="an environment variable for one subject; repeatable",
    )
    parser.add_argument(
        "--with-pool",
        action="store_true",
        help="also measure rma-desktop contributing and paused, against a real coordinator "
        "and Docker engine started by the bench",
    )
    parser.add_argument("--json", type=Path, help="write samples and summaries here")
    parser.add_argument("--keep-logs", type=Path, help="keep the subjects' logs in this folder")
    args = parser.parse_args()
    if args.seconds <= 0 or args.interval <= 0:
        parser.error("--seconds and --interval must be positive")
    subjects = parse_subjects(args)

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="rma-tray-") as tmp, contextlib.ExitStack() as stack:
        log_dir = args.keep_logs or Path(tmp) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        if args.with_pool:
            subjects += stack.enter_context(pool_subjects(Path(tmp) / "pool"))
        try:
            with running_x_desktop(Path(tmp) / "desktop") as desktop:
                print(f"desktop {desktop.display} ({SCREEN}, trayer); logs in {log_dir}")
                for subject in subjects:
                    result = measure(desktop, subject, args, log_dir)
                    if result.error is not None:
                        print(f"    FAILED: {result.error}", file=sys.stderr)
                    results.append(result)
        except MissingTool as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    print_table(results)
    if args.json is not None:
        report: dict[str, Any] = {
            "seconds": args.seconds,
            "interval": args.interval,
            "settle": args.settle,
            "screen": SCREEN,
            "python": platform.python_version(),
            "pyside6": _pyside_version(),
            "machine": platform.platform(),
            "cpus": psutil.cpu_count(),
            "subjects": [
                {
                    **{k: v for k, v in asdict(r).items() if k != "samples"},
                    "summary": r.summary(),
                    "samples": [asdict(s) for s in r.samples],
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if any(r.error is not None for r in results) else 0


def _pyside_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("PySide6")
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
