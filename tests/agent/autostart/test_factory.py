"""The backend chosen for each platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_app.agent.autostart import (
    AutostartError,
    LaunchdAutostart,
    NullAutostart,
    WindowsRunKeyAutostart,
    XdgDesktopAutostart,
    create_autostart,
)

COMMAND = ["/usr/bin/rma-desktop", "--autostart"]


@pytest.mark.parametrize("platform", ["linux", "freebsd14", "openbsd7", "netbsd10", "dragonfly6"])
def test_linux_and_bsd_get_an_xdg_entry_in_the_config_home(tmp_path: Path, platform: str) -> None:
    autostart = create_autostart(platform=platform, environ={}, home=tmp_path, command=COMMAND)

    assert isinstance(autostart, XdgDesktopAutostart)
    assert autostart.path == tmp_path / ".config" / "autostart" / "rma-desktop.desktop"


def test_xdg_config_home_is_respected(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_CONFIG_DIRS": str(tmp_path / "etc")}

    autostart = create_autostart(
        platform="linux", environ=environ, home=tmp_path / "home", command=COMMAND
    )
    autostart.enable()

    assert isinstance(autostart, XdgDesktopAutostart)
    assert autostart.path == tmp_path / "cfg" / "autostart" / "rma-desktop.desktop"
    assert autostart.path.is_file()


def test_a_relative_xdg_config_home_is_ignored_as_the_spec_says(tmp_path: Path) -> None:
    autostart = create_autostart(
        platform="linux", environ={"XDG_CONFIG_HOME": "cfg"}, home=tmp_path, command=COMMAND
    )

    assert isinstance(autostart, XdgDesktopAutostart)
    assert autostart.path.parent == tmp_path / ".config" / "autostart"


def test_xdg_config_dirs_are_where_a_system_entry_is_looked_for(tmp_path: Path) -> None:
    system = tmp_path / "etc" / "xdg"
    XdgDesktopAutostart(COMMAND, system).enable()

    autostart = create_autostart(
        platform="linux",
        environ={"XDG_CONFIG_DIRS": f"relative:{system}"},
        home=tmp_path / "home",
        command=COMMAND,
    )

    assert autostart.is_enabled()


def test_macos_gets_a_launch_agent_in_the_home(tmp_path: Path) -> None:
    autostart = create_autostart(platform="darwin", environ={}, home=tmp_path, command=COMMAND)

    assert isinstance(autostart, LaunchdAutostart)
    assert autostart.path == tmp_path / "Library" / "LaunchAgents" / "rma-desktop.plist"


def test_windows_gets_the_run_key(tmp_path: Path) -> None:
    autostart = create_autostart(platform="win32", environ={}, home=tmp_path, command=COMMAND)

    assert isinstance(autostart, WindowsRunKeyAutostart)
    assert autostart.command_line() == "/usr/bin/rma-desktop --autostart"


@pytest.mark.parametrize("platform", ["sunos5", "aix", "cygwin", "emscripten"])
def test_anything_else_gets_a_null_backend_that_says_why(tmp_path: Path, platform: str) -> None:
    autostart = create_autostart(platform=platform, environ={}, home=tmp_path, command=COMMAND)

    assert isinstance(autostart, NullAutostart)
    assert not autostart.available
    assert not autostart.is_enabled()
    autostart.disable()
    with pytest.raises(AutostartError) as caught:
        autostart.enable()
    reason = f"Starting RMA Compute Pool at login is not available on {platform}."
    assert str(caught.value) == reason
    assert caught.value.title == "Start at login unavailable"
    assert autostart.description == reason
    assert list(tmp_path.iterdir()) == []


def test_without_a_command_it_uses_this_processs_launch_command(tmp_path: Path) -> None:
    autostart = create_autostart(platform="linux", environ={}, home=tmp_path)
    autostart.enable()

    assert isinstance(autostart, XdgDesktopAutostart)
    assert "--autostart" in autostart.path.read_text()


def test_the_defaults_pick_the_backend_for_this_machine() -> None:
    # No I/O: only built, never enabled, so the real home is left alone.
    assert isinstance(create_autostart(), XdgDesktopAutostart)
