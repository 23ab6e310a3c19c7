"""The agent is the headless engine: none of its modules may pull in Qt."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import desktop_app.agent


def test_no_agent_module_imports_qt() -> None:
    modules = [
        info.name
        for info in pkgutil.walk_packages(desktop_app.agent.__path__, "desktop_app.agent.")
    ]
    assert "desktop_app.agent.contribution" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "", f"Qt imported by the agent: {result.stdout}"
