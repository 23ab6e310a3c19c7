"""``rma-desktop --self-test``: what a support person asks a volunteer to run.

It prints, line by line as it finds them: the version and how the app was installed, the
operating system, whether every bundled module loads, Qt's platform and whether there is a
system tray, the hardware, Docker, the pool's address and whether the pool answers, the
settings, where the worker's secret is kept, start at login and the log folder. The same
report is saved as ``self-test.txt`` in the log folder, so a volunteer can send the file.

It changes nothing but that file: a damaged settings file is reported, not moved aside, and
no worker id is created. Qt is tried in a child process (:mod:`desktop_app.ui.qt_probe`),
because Qt ends the whole process when it cannot reach a display, and the report must still
be written.

The exit status is 0 when the report was made, whatever it found about this computer; it
is 1 when the app itself is broken (a module it should carry does not load), so a build's
smoke test fails on a bad freeze.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from desktop_app import __version__
from desktop_app.agent.autostart import AutostartError, create_autostart
from desktop_app.agent.bundle import (
    BACKEND_PACKAGES,
    BuildConfig,
    is_frozen,
    lazy_modules,
    load_build_config,
)
from desktop_app.agent.credentials import default_credential_store
from desktop_app.agent.hardware import CapabilityProbe, ProbeReport
from desktop_app.agent.paths import AppPaths
from desktop_app.agent.presentation import describe_docker, describe_hardware, describe_tier
from desktop_app.agent.settings import SettingsStore

SELF_TEST_FLAG = "--self-test"
QT_PROBE_FLAG = "--qt-probe"
"""Hidden: the child process that starts Qt and prints what it found as one JSON line."""
REPORT_FILE = "self-test.txt"
QT_PROBE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 5.0
LABEL_WIDTH = 16
_SYSTEM_LIBRARY_MISSING = "cannot open shared object file"
"""What the Linux loader says when a system library (libEGL, libGL…) is not installed."""


@dataclass(frozen=True)
class QtFacts:
    """What the Qt child process found."""

    version: str | None = None
    platform: str | None = None
    tray: bool = False
    screens: int = 0
    problem: str | None = None
    """Why Qt could not be asked; None when it answered."""


@dataclass
class Report:
    """The report's lines, passed on to the outputs as they come."""

    outputs: list[IO[str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What this computer lacks (no Docker, no tray…): reported, not a failure."""
    broken: list[str] = field(default_factory=list)
    """What is wrong with the app itself: the exit status is 1."""

    def add(self, label: str, text: str) -> None:
        """Add one ``label: text`` line (continuation lines of ``text`` are indented)."""
        first, *rest = text.splitlines() or [""]
        line = f"{label + ':':<{LABEL_WIDTH}} {first}".rstrip()
        self.write(line)
        for more in rest:
            self.write(f"{'':<{LABEL_WIDTH}} {more}".rstrip())

    def write(self, line: str) -> None:
        """Add a line as it is."""
        self.lines.append(line)
        for output in self.outputs:
            with contextlib.suppress(OSError, ValueError):  # a closed console must not stop it
                output.write(line + "\n")
                output.flush()

    def text(self) -> str:
        """The whole report."""
        return "\n".join(self.lines) + "\n"


@dataclass
class SelfTestInputs:
    """Everything the self-test reads, so tests can give their own."""

    paths: AppPaths
    environ: Mapping[str, str]
    build: BuildConfig
    probe: Callable[[Path], ProbeReport]
    qt: Callable[[], QtFacts]
    pool_health: Callable[[str], str]
    """GET the pool's /health; returns words for the report. Never raises."""
    import_module: Callable[[str], object] = importlib.import_module
    frozen: bool = False
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def run(inputs: SelfTestInputs, report: Report) -> Report:
    """Make the report; each line reaches ``report``'s outputs as soon as it is known."""
    report.write(f"RMA Compute self-test, {inputs.now():%Y-%m-%d %H:%M:%S %Z}")
    _about_the_app(inputs, report)
    _bundled_modules(inputs, report)
    _qt(inputs, report)
    _hardware_and_docker(inputs, report)
    _pool_and_settings(inputs, report)
    _credentials_and_login(inputs, report)
    report.add("Log folder", str(inputs.paths.log_dir))
    if report.broken:
        report.add("Result", "BROKEN: " + "; ".join(report.broken))
    elif report.problems:
        report.add("Result", "the app works; to contribute, fix: " + "; ".join(report.problems))
    else:
        report.add("Result", "OK: everything the app needs is here")
    return report


def _about_the_app(inputs: SelfTestInputs, report: Report) -> None:
    if inputs.frozen:
        built = inputs.build.built_at
        when = f", built {built:%Y-%m-%d %H:%M} UTC" if built else ""
        report.add("Version", f"{__version__} (installed app{when})")
        report.add("Program", sys.executable)
    else:
        report.add("Version", f"{__version__} (Python package)")
        report.add("Program", f"{sys.executable} -m desktop_app")
    report.add(
        "System",
        f"{platform.system()} {platform.release()} ({platform.machine()}), "
        f"Python {platform.python_version()}",
    )


def backend_modules(packages: Sequence[str] = BACKEND_PACKAGES) -> list[str]:
    """Every module of the per-OS backend packages (the frozen app must carry them all)."""
    names: list[str] = []
    for package in packages:
        module = importlib.import_module(package)
        names.append(package)
        names.extend(
            info.name
            for info in pkgutil.iter_modules(getattr(module, "__path__", []), package + ".")
        )
    return names


def _bundled_modules(inputs: SelfTestInputs, report: Report) -> None:
    try:
        names = list(dict.fromkeys([*lazy_modules(), *backend_modules()]))
    except ImportError as exc:
        names = list(lazy_modules())
        report.broken.append(f"a backend package does not load ({exc})")
    missing: list[str] = []
    system_libraries: list[str] = []
    for name in names:
        try:
            inputs.import_module(name)
        except Exception as exc:  # any failure to import is what this line reports
            if _SYSTEM_LIBRARY_MISSING in str(exc):  # the computer's fault, not the build's
                system_libraries.append(f"{name} ({exc})")
            else:
                missing.append(f"{name} ({type(exc).__name__}: {exc})")
    if missing:
        report.add("Bundled parts", "MISSING:\n" + "\n".join(missing))
        report.broken.append(f"{len(missing)} bundled module(s) do not load")
    elif system_libraries:
        report.add("Bundled parts", "need system libraries:\n" + "\n".join(system_libraries))
        report.problems.append("this computer lacks a system library the app needs")
    else:
        report.add("Bundled parts", f"all {len(names)} modules load")


def _qt(inputs: SelfTestInputs, report: Report) -> None:
    facts = inputs.qt()
    if facts.problem is not None:
        report.add("Qt", f"could not start: {facts.problem}")
        report.add("System tray", "unknown (Qt could not start)")
        report.problems.append("the app cannot open its windows here")
        return
    report.add("Qt", f"{facts.version}, platform {facts.platform}, {facts.screens} screen(s)")
    if facts.tray:
        report.add("System tray", "available")
    else:
        report.add("System tray", "not available; the app shows its window instead")


def _hardware_and_docker(inputs: SelfTestInputs, report: Report) -> None:
    disk = inputs.paths.state_dir if inputs.paths.state_dir.exists() else Path.home()
    probed = inputs.probe(disk)
    capabilities = probed.capabilities
    for line in describe_hardware(capabilities):
        if line.label != "Docker":
            report.add(line.label, line.text)
    report.add("Tier", describe_tier(capabilities))
    docker = capabilities.docker
    report.add("Docker", describe_docker(docker))
    if docker is None or not docker.usable:
        report.problems.append("Docker is not usable")
    for note in probed.notes:
        if docker is None or note != docker.message:
            report.add("Note", note)


def _pool_and_settings(inputs: SelfTestInputs, report: Report) -> None:
    store = SettingsStore(inputs.paths.config_dir)
    settings, problem = store.peek()
    url, source = settings.coordinator_and_source(inputs.environ, inputs.build.coordinator_url)
    report.add("Pool", f"{url} ({source})")
    answer = inputs.pool_health(url)
    report.add("Pool answers", answer)
    if not answer.startswith("yes"):
        report.problems.append("the pool does not answer")
    if problem is not None:
        report.add(
            "Settings",
            f"{store.path}: cannot be used, {problem}. The app will keep it aside and "
            "start with the defaults.",
        )
    elif not store.path.exists():
        report.add("Settings", f"none yet (the app has not been set up); {store.path}")
    else:
        state = "joined the pool" if settings.joined else "not joined yet"
        if settings.joined:
            state += ", contributing" if settings.contributing else ", paused by the volunteer"
        report.add("Settings", f"{state}; {store.path}")


def _credentials_and_login(inputs: SelfTestInputs, report: Report) -> None:
    try:
        store = default_credential_store(inputs.paths.state_dir)
        report.add("Worker secret", f"kept in {store.description}")
    except Exception as exc:  # a broken keyring must not end the report
        report.add("Worker secret", f"no store is usable ({type(exc).__name__}: {exc})")
        report.problems.append("the worker's secret cannot be kept")
    try:
        autostart = create_autostart()
        if not autostart.available:
            report.add("Start at login", f"not offered ({autostart.description})")
        else:
            state = "on" if autostart.is_enabled() else "off"
            report.add("Start at login", f"{state} ({autostart.description})")
    except (AutostartError, OSError) as exc:
        report.add("Start at login", f"cannot be checked: {exc}")


# -- the real inputs -------------------------------------------------------------------------


def qt_probe_command(frozen: bool | None = None) -> list[str]:
    """How to start the Qt child: the frozen app itself, or this interpreter."""
    frozen = is_frozen() if frozen is None else frozen
    if frozen:
        return [sys.executable, QT_PROBE_FLAG]
    return [sys.executable, "-m", "desktop_app", QT_PROBE_FLAG]


def ask_qt(command: Sequence[str] | None = None, timeout_s: float = QT_PROBE_TIMEOUT_S) -> QtFacts:
    """Start Qt in a child process and read what it found."""
    try:
        done = subprocess.run(
            list(command or qt_probe_command()),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return QtFacts(problem=f"Qt did not answer within {timeout_s:.0f} s")
    except OSError as exc:
        return QtFacts(problem=f"could not start {command or qt_probe_command()}: {exc}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                data: dict[str, Any] = json.loads(line)
                return QtFacts(
                    version=str(data["version"]),
                    platform=str(data["platform"]),
                    tray=bool(data["tray"]),
                    screens=int(data["screens"]),
                )
            except (ValueError, KeyError, TypeError):
                break
    return QtFacts(problem=qt_failure(done.stderr, done.returncode))


# What Qt prints when it cannot start, most telling first; its other lines can mislead (it
# names libxcb-cursor0 whenever the xcb plugin fails, even when the display is the cause).
_QT_FAILURE_MARKERS = ("could not connect to display", "failed to start because", "error")


def qt_failure(stderr: str, returncode: int) -> str:
    """The most telling line of what a failed Qt start printed."""
    said = [line.strip() for line in stderr.splitlines() if line.strip()]
    for marker in _QT_FAILURE_MARKERS:
        for line in said:
            if marker in line.lower():
                return line.removeprefix("qt.qpa.xcb: ")
    return said[-1] if said else f"it ended with exit status {returncode}"


def pool_health(url: str, timeout_s: float = POOL_TIMEOUT_S) -> str:
    """Ask the pool's ``/health``; words for the report."""
    started = time.perf_counter()
    try:
        response = httpx.get(f"{url}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"no: {type(exc).__name__}: {exc}" if str(exc) else f"no: {type(exc).__name__}"
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return f"no: HTTP {response.status_code} from {url}/health"
    try:
        body = response.json()
        version = f"coordinator {body['version']}, protocol {body['protocol_version']}"
    except (ValueError, KeyError, TypeError):
        return f"no: {url}/health did not answer as a pool does"
    return f"yes, {version}, in {elapsed_ms:.0f} ms"


def real_inputs(paths: AppPaths | None = None) -> SelfTestInputs:
    """The inputs of a real run on this computer."""
    probe = CapabilityProbe()
    return SelfTestInputs(
        paths=paths or AppPaths.for_user(),
        environ=os.environ,
        build=load_build_config(),
        probe=probe.probe,
        qt=ask_qt,
        pool_health=pool_health,
        frozen=is_frozen(),
    )


@contextlib.contextmanager
def _console() -> Iterator[IO[str] | None]:
    """Where to print: stdout, or on Windows the console a windowed app was started from.

    A windowed (no console) frozen app has no ``sys.stdout``. Started from a terminal on
    Windows, it can attach to that terminal's console; started by a program with pipes, it
    writes to the standard output handle it was given.
    """
    if sys.stdout is not None:
        yield sys.stdout
        return
    stream = _windows_console() if sys.platform == "win32" else None
    try:
        yield stream
    finally:
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _windows_console() -> IO[str] | None:  # pragma: no cover - Windows only
    import ctypes
    import msvcrt

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    std_output_handle = -11
    handle = kernel32.GetStdHandle(std_output_handle)
    if handle not in (0, -1, None):
        with contextlib.suppress(OSError):  # not a usable handle: try the parent's console
            descriptor = msvcrt.open_osfhandle(handle, os.O_WRONLY)  # type: ignore[attr-defined]
            return open(descriptor, "w", encoding="utf-8", closefd=False)
    attach_parent_process = -1
    if kernel32.AttachConsole(attach_parent_process):
        try:
            return open("CONOUT$", "w", encoding="utf-8")
        except OSError:
            return None
    return None


def build_parser() -> argparse.ArgumentParser:
    """The self-test's command line (``rma-desktop --self-test [--report FILE]``)."""
    parser = argparse.ArgumentParser(
        prog="rma-desktop --self-test",
        description="Check this computer and the app, and print a report for support.",
    )
    parser.add_argument(SELF_TEST_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--report", type=Path, help="also write the report to this file (and print its path)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the self-test; 0 when the report was made, 1 when the app itself is broken."""
    args, _ignored = build_parser().parse_known_args(argv)
    paths = AppPaths.for_user()
    with _console() as console:
        report = Report(outputs=[console] if console is not None else [])
        run(real_inputs(paths), report)
        targets = [paths.log_dir / REPORT_FILE, *([args.report] if args.report else [])]
        for path, error in _save(report, targets):
            report.write(f"Saved as {path}" if error is None else f"Not saved as {path}: {error}")
    return 1 if report.broken else 0


def _save(report: Report, targets: Sequence[Path]) -> list[tuple[Path, str | None]]:
    results: list[tuple[Path, str | None]] = []
    for path in targets:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_text(report.text(), encoding="utf-8")
            results.append((path, None))
        except OSError as exc:
            results.append((path, str(exc)))
    return results
