"""The launch agent property list, written for real under a temporary home."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from desktop_app.agent.autostart import AutostartError, LaunchdAutostart

COMMAND = ["/Applications/RMA Compute.app/Contents/MacOS/rma-compute", "--autostart"]


def test_enable_writes_a_launch_agent_that_runs_the_command_at_login(tmp_path: Path) -> None:
    autostart = LaunchdAutostart(COMMAND, tmp_path)

    autostart.enable()

    assert autostart.path == tmp_path / "Library" / "LaunchAgents" / "rma-desktop.plist"
    job = plistlib.loads(autostart.path.read_bytes())
    assert job == {
        "Label": "rma-desktop",
        "ProgramArguments": COMMAND,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
    }
    assert autostart.path.read_bytes().startswith(b"<?xml")
    assert autostart.path.stat().st_mode & 0o777 == 0o644
    assert autostart.is_enabled()
    assert autostart.description == f"a launch agent in {tmp_path / 'Library' / 'LaunchAgents'}"


def test_enable_is_idempotent_and_rewrites_an_old_command(tmp_path: Path) -> None:
    LaunchdAutostart(["/old/rma-desktop"], tmp_path).enable()
    autostart = LaunchdAutostart(COMMAND, tmp_path)

    autostart.enable()
    autostart.enable()

    assert plistlib.loads(autostart.path.read_bytes())["ProgramArguments"] == COMMAND
    assert [path.name for path in autostart.path.parent.iterdir()] == ["rma-desktop.plist"]


def test_disable_removes_it_and_is_idempotent(tmp_path: Path) -> None:
    autostart = LaunchdAutostart(COMMAND, tmp_path)
    autostart.disable()
    autostart.enable()

    autostart.disable()
    autostart.disable()

    assert not autostart.path.exists()
    assert not autostart.is_enabled()


def test_a_disabled_job_is_not_enabled(tmp_path: Path) -> None:
    autostart = LaunchdAutostart(COMMAND, tmp_path)
    autostart.enable()
    autostart.path.write_bytes(plistlib.dumps({**autostart.job(), "Disabled": True}))

    assert not autostart.is_enabled()


@pytest.mark.parametrize("content", [b"not a plist", b"<?xml version='1.0'?><plist><dict>"])
def test_a_corrupt_file_is_not_enabled_and_enable_replaces_it(
    tmp_path: Path, content: bytes
) -> None:
    autostart = LaunchdAutostart(COMMAND, tmp_path)
    autostart.path.parent.mkdir(parents=True)
    autostart.path.write_bytes(content)

    assert not autostart.is_enabled()
    autostart.enable()
    assert autostart.is_enabled()


def test_a_folder_that_cannot_be_written_is_a_plain_error(tmp_path: Path) -> None:
    (tmp_path / "Library").mkdir()
    (tmp_path / "Library" / "LaunchAgents").write_text("a file where the folder should be")

    with pytest.raises(AutostartError) as caught:
        LaunchdAutostart(COMMAND, tmp_path).enable()

    assert "could not be set to start at login" in str(caught.value)


def test_the_constructor_touches_nothing(tmp_path: Path) -> None:
    LaunchdAutostart(COMMAND, tmp_path / "home")

    assert not (tmp_path / "home").exists()
