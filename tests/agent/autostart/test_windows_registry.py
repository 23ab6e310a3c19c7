"""The Run key entry, against in-memory registry keys (the real ones exist only on Windows)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from desktop_app.agent.autostart import (
    RUN_VALUE_NAME,
    AutostartError,
    WindowsRunKeyAutostart,
    WinregRunKey,
    WinregStartupApproval,
)

COMMAND = [r"C:\Program Files\RMA Compute\rma-compute.exe", "--autostart"]


class FakeRunKey:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


class FakeStartupApproval:
    def __init__(self) -> None:
        self.disabled: set[str] = set()

    def is_disabled(self, name: str) -> bool:
        return name in self.disabled

    def clear(self, name: str) -> None:
        self.disabled.discard(name)


@pytest.fixture
def run_key() -> FakeRunKey:
    return FakeRunKey()


@pytest.fixture
def approval() -> FakeStartupApproval:
    return FakeStartupApproval()


def test_enable_writes_a_quoted_command_line(
    run_key: FakeRunKey, approval: FakeStartupApproval
) -> None:
    autostart = WindowsRunKeyAutostart(COMMAND, run_key, approval)

    autostart.enable()

    assert run_key.values == {
        "RMA Compute Pool": r'"C:\Program Files\RMA Compute\rma-compute.exe" --autostart'
    }
    assert run_key.values[RUN_VALUE_NAME] == subprocess.list2cmdline(COMMAND)
    assert autostart.is_enabled()
    assert "HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run" in (
        autostart.description
    )


def test_awkward_arguments_are_quoted_as_windows_programs_split_them(
    run_key: FakeRunKey, approval: FakeStartupApproval
) -> None:
    command = [
        r"C:\Users\Jo Bloggs\venv\Scripts\pythonw.exe",
        "-m",
        "desktop_app",
        'say "hi"',
        "",
        "--autostart",
    ]

    WindowsRunKeyAutostart(command, run_key, approval).enable()

    assert run_key.values[RUN_VALUE_NAME] == (
        r'"C:\Users\Jo Bloggs\venv\Scripts\pythonw.exe" -m desktop_app "say \"hi\"" "" --autostart'
    )


def test_enable_is_idempotent_and_rewrites_an_old_command(
    run_key: FakeRunKey, approval: FakeStartupApproval
) -> None:
    run_key.values[RUN_VALUE_NAME] = r"C:\old\rma-desktop.exe"
    autostart = WindowsRunKeyAutostart(COMMAND, run_key, approval)

    autostart.enable()
    autostart.enable()

    assert run_key.values == {RUN_VALUE_NAME: autostart.command_line()}


def test_disable_removes_the_value_and_is_idempotent(
    run_key: FakeRunKey, approval: FakeStartupApproval
) -> None:
    run_key.values["Someone Else"] = "other.exe"
    autostart = WindowsRunKeyAutostart(COMMAND, run_key, approval)
    autostart.disable()
    autostart.enable()

    autostart.disable()
    autostart.disable()

    assert run_key.values == {"Someone Else": "other.exe"}
    assert not autostart.is_enabled()


def test_switched_off_in_task_manager_is_not_enabled_until_enabled_again(
    run_key: FakeRunKey, approval: FakeStartupApproval
) -> None:
    autostart = WindowsRunKeyAutostart(COMMAND, run_key, approval)
    autostart.enable()
    approval.disabled.add(RUN_VALUE_NAME)

    assert not autostart.is_enabled()

    autostart.enable()
    assert autostart.is_enabled()
    assert approval.disabled == set()


def test_the_constructor_touches_no_registry() -> None:
    autostart = WindowsRunKeyAutostart(COMMAND)  # the real winreg adapters

    assert autostart.available
    assert autostart.command_line().endswith("--autostart")


def test_the_real_registry_off_windows_is_a_plain_error() -> None:
    assert sys.platform != "win32", "this suite runs on Linux"
    with pytest.raises(AutostartError, match="only be used on Windows"):
        WinregRunKey().get(RUN_VALUE_NAME)
    with pytest.raises(AutostartError, match="only be used on Windows"):
        WinregStartupApproval().is_disabled(RUN_VALUE_NAME)
    with pytest.raises(AutostartError, match="only be used on Windows"):
        WindowsRunKeyAutostart(COMMAND).enable()
