"""``rma-desktop --self-test``: the report, its exit status, and the real probes it uses."""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from desktop_app import __version__, self_test
from desktop_app.agent.bundle import BuildConfig
from desktop_app.agent.hardware import ProbeReport
from desktop_app.agent.paths import AppPaths
from desktop_app.self_test import (
    QtFacts,
    Report,
    SelfTestInputs,
    ask_qt,
    pool_health,
    qt_failure,
    qt_probe_command,
    run,
)
from shared import DockerInfo, WorkerCapabilities
from tests.fixtures.coordinator import LiveCoordinator, free_port

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GIB = 1024**3
HEALTHY_POOL = f"yes, coordinator {__version__}, protocol 1, in 4 ms"
# What Qt 6.12 printed here when its xcb plugin could not reach the display.
QT_NO_DISPLAY = """qt.qpa.xcb: could not connect to display :77
qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb \
platform plugin.
qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.
This application failed to start because no Qt platform plugin could be initialized.

Available platform plugins are: minimal, linuxfb, offscreen, xcb, wayland.
"""


def capabilities(docker: DockerInfo) -> WorkerCapabilities:
    return WorkerCapabilities(
        cpu_cores=8,
        cpu_physical_cores=4,
        cpu_model="Test CPU",
        ram=16 * GIB,
        storage=100 * GIB,
        os="Linux",
        docker=docker,
    )


def make_inputs(tmp_path: Path, **changes: object) -> SelfTestInputs:
    docker = DockerInfo(usable=True, status="running", version="28.2.2")
    inputs = SelfTestInputs(
        paths=AppPaths.under(tmp_path / "home"),
        environ={},
        build=BuildConfig("https://built.example.org", NOW),
        probe=lambda _disk: ProbeReport(capabilities(docker), []),
        qt=lambda: QtFacts("6.12.0", "xcb", tray=True, screens=1),
        pool_health=lambda _url: HEALTHY_POOL,
        frozen=True,
        now=lambda: NOW,
    )
    for name, value in changes.items():
        setattr(inputs, name, value)
    return inputs


def lines_of(report: Report) -> dict[str, str]:
    """The report's ``label: text`` lines by label (the first of each)."""
    found: dict[str, str] = {}
    for line in report.lines:
        label, sep, text = line.partition(":")
        if sep and not line.startswith(" "):
            found.setdefault(label, text.strip())
    return found


def test_a_healthy_installed_app_reports_everything_and_passes(tmp_path: Path) -> None:
    printed = io.StringIO()
    report = run(make_inputs(tmp_path), Report(outputs=[printed]))
    lines = lines_of(report)
    assert lines["Version"] == f"{__version__} (installed app, built 2026-11-22 12:00 UTC)"
    assert lines["Program"] == sys.executable
    assert lines["Bundled parts"].startswith("all ") and "modules load" in lines["Bundled parts"]
    assert lines["Qt"] == "6.12.0, platform xcb, 1 screen(s)"
    assert lines["System tray"] == "available"
    assert lines["Processor"] == "Test CPU — 8 threads on 4 cores"
    assert lines["Memory"] == "16.0 GiB"
    assert lines["Docker"] == "running (version 28.2.2)"
    assert lines["Pool"] == "https://built.example.org (built into this app)"
    assert lines["Pool answers"] == HEALTHY_POOL
    assert lines["Settings"].startswith("none yet")
    assert lines["Log folder"] == str(tmp_path / "home" / "logs")
    assert lines["Result"] == "OK: everything the app needs is here"
    assert not report.broken and not report.problems
    # Each line reached the output as it was found, in order.
    assert printed.getvalue() == report.text()


def test_what_this_computer_lacks_is_reported_but_is_not_a_failure(tmp_path: Path) -> None:
    docker = DockerInfo(
        usable=False, status="not_running", message="The Docker engine is not running."
    )
    report = run(
        make_inputs(
            tmp_path,
            probe=lambda _disk: ProbeReport(capabilities(docker), ["No NVIDIA driver found."]),
            qt=lambda: QtFacts(problem="could not connect to display :77"),
            pool_health=lambda _url: "no: ConnectError: connection refused",
            frozen=False,
            build=BuildConfig(),
            environ={"RMA_COORDINATOR_URL": "http://10.1.2.3:8080"},
        ),
        Report(),
    )
    lines = lines_of(report)
    assert lines["Version"] == f"{__version__} (Python package)"
    assert lines["Qt"] == "could not start: could not connect to display :77"
    assert lines["Docker"] == "The Docker engine is not running."
    assert lines["Note"] == "No NVIDIA driver found."  # Docker's own message is not repeated
    assert lines["Pool"] == "http://10.1.2.3:8080 (RMA_COORDINATOR_URL)"
    assert not report.broken
    assert report.problems == [
        "the app cannot open its windows here",
        "Docker is not usable",
        "the pool does not answer",
    ]
    assert lines["Result"].startswith("the app works; to contribute, fix: the app cannot open")


def test_a_module_the_build_left_out_makes_the_app_broken(tmp_path: Path) -> None:
    def import_module(name: str) -> object:
        if name == "jeepney.io.blocking":
            raise ModuleNotFoundError("No module named 'jeepney'")
        return object()

    report = run(make_inputs(tmp_path, import_module=import_module), Report())
    text = report.text()
    assert "MISSING:" in text
    assert "jeepney.io.blocking (ModuleNotFoundError: No module named 'jeepney')" in text
    assert report.broken == ["1 bundled module(s) do not load"]
    assert lines_of(report)["Result"].startswith("BROKEN: ")


def test_a_system_library_the_computer_lacks_is_its_problem_not_a_broken_build(
    tmp_path: Path,
) -> None:
    def import_module(name: str) -> object:
        if name == "desktop_app.ui.app":
            raise ImportError("libEGL.so.1: cannot open shared object file: No such file")
        return object()

    report = run(make_inputs(tmp_path, import_module=import_module), Report())
    assert lines_of(report)["Bundled parts"] == "need system libraries:"
    assert "desktop_app.ui.app (libEGL.so.1: cannot open shared object file" in report.text()
    assert not report.broken
    assert report.problems == ["this computer lacks a system library the app needs"]


def test_a_damaged_settings_file_is_reported_and_left_where_it_is(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path)
    inputs.paths.config_dir.mkdir(parents=True)
    settings = inputs.paths.config_dir / "settings.json"
    settings.write_text("{half a file")
    lines = lines_of(run(inputs, Report()))
    assert "cannot be used, it is damaged" in lines["Settings"]
    assert settings.read_text() == "{half a file"
    assert [path.name for path in inputs.paths.config_dir.iterdir()] == ["settings.json"]

    settings.write_text('{"joined": true, "contributing": false, "coordinator_url": "http://a.b"}')
    lines = lines_of(run(inputs, Report()))
    assert lines["Settings"].startswith("joined the pool, paused by the volunteer;")
    assert lines["Pool"] == "http://a.b (your setting)"


def test_qt_failures_are_told_by_their_most_telling_line() -> None:
    assert qt_failure(QT_NO_DISPLAY, -6) == "could not connect to display :77"
    without_display_line = QT_NO_DISPLAY.split("\n", 1)[1]
    assert qt_failure(without_display_line, -6).startswith(
        "This application failed to start because no Qt platform plugin"
    )
    assert qt_failure("", 3) == "it ended with exit status 3"


def test_the_qt_child_reports_the_platform_and_the_tray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    facts = ask_qt()
    assert facts.problem is None, facts
    assert facts.platform == "offscreen" and facts.screens == 1 and facts.tray is False
    assert facts.version and facts.version.startswith("6.")


def test_a_qt_that_cannot_reach_a_display_is_reported_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", f":{free_port() % 1000 + 500}")  # no X server there
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    facts = ask_qt()
    assert facts.problem is not None and "could not connect to display" in facts.problem


def test_the_qt_child_is_the_app_itself_when_frozen() -> None:
    assert qt_probe_command(frozen=True) == [sys.executable, "--qt-probe"]
    assert qt_probe_command(frozen=False) == [sys.executable, "-m", "desktop_app", "--qt-probe"]


class _NotAPool(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>a captive portal</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def not_a_pool() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAPool)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pool_health_against_a_real_coordinator_and_what_is_not_one(
    live_coordinator: LiveCoordinator, not_a_pool: str
) -> None:
    answer = pool_health(live_coordinator.url)
    assert answer.startswith(f"yes, coordinator {__version__}, protocol "), answer
    assert pool_health(not_a_pool) == f"no: {not_a_pool}/health did not answer as a pool does"
    closed = pool_health(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    assert closed.startswith("no: ConnectError"), closed


def test_the_command_prints_saves_and_exits_0(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RMA_")},
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "QT_QPA_PLATFORM": "offscreen",
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "RMA_COORDINATOR_URL": f"http://127.0.0.1:{free_port()}",
    }
    report = tmp_path / "out" / "report.txt"
    done = subprocess.run(
        [sys.executable, "-m", "desktop_app", "--self-test", "--report", str(report)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("RMA Compute self-test, ")
    assert "Qt:              6." in done.stdout and "platform offscreen" in done.stdout
    assert "Docker:" in done.stdout and "Pool answers:    no: ConnectError" in done.stdout
    assert report.read_text() in done.stdout
    saved = home / "state" / "RMA Compute" / "log" / "self-test.txt"
    assert f"Saved as {saved}" in done.stdout and f"Saved as {report}" in done.stdout
    assert saved.read_text() == report.read_text()
    # It changed nothing else: no settings, no worker id, no credentials.
    assert not (home / "config" / "RMA Compute").exists()
    assert [path.name for path in (home / "state" / "RMA Compute").iterdir()] == ["log"]


def test_without_a_console_the_report_is_still_saved_and_broken_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A windowed frozen app (Windows, macOS from Finder) has no sys.stdout.
    paths = AppPaths.under(tmp_path / "home")
    monkeypatch.setattr(self_test.AppPaths, "for_user", classmethod(lambda cls: paths))
    monkeypatch.setattr(self_test, "real_inputs", lambda p: make_inputs(tmp_path))
    monkeypatch.setattr(sys, "stdout", None)
    assert self_test.main(["--self-test"]) == 0
    assert "Result:          OK" in (paths.log_dir / "self-test.txt").read_text()

    def broken(p: AppPaths) -> SelfTestInputs:
        inputs = make_inputs(tmp_path)
        inputs.import_module = lambda name: (_ for _ in ()).throw(ImportError(name))
        return inputs

    monkeypatch.setattr(self_test, "real_inputs", broken)
    assert self_test.main(["--self-test"]) == 1
    assert "BROKEN" in (paths.log_dir / "self-test.txt").read_text()
