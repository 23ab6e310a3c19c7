"""Fixtures shared by the whole suite; the real-service fixtures live in tests/fixtures/.

With ``RMA_FORBID_SKIPS=1`` (set by ``.ci/test``) the run fails if any test skipped,
except tests marked ``gpu``: Docker, the X server and the browser are installed in CI, so
a test that needs them and skipped hides a broken set-up.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fixtures.docker_engine",
    "tests.fixtures.coordinator",
    "tests.fixtures.container_images",
    "tests.fixtures.postgres",
    "tests.fixtures.x_desktop",
    "tests.fixtures.browser",
]

_forbidden_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "gpu" not in report.keywords:
        _forbidden_skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("RMA_FORBID_SKIPS") == "1" and _forbidden_skips:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("RMA_FORBID_SKIPS") == "1" and _forbidden_skips:
        terminalreporter.section("skipped tests are failures here")
        terminalreporter.write_line(
            "Only tests marked 'gpu' may skip; these skipped (install what they need):"
        )
        for nodeid in _forbidden_skips:
            terminalreporter.write_line(f"  {nodeid}")
