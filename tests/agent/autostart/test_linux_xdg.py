"""The XDG autostart entry, written for real in a temporary config folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app.agent.autostart import (
    Autostart,
    AutostartError,
    XdgDesktopAutostart,
    parse_desktop_exec_value,
)

COMMAND = ["/opt/RMA Compute/rma-compute", "--autostart"]


def entry_keys(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:])


def unescape_string(value: str) -> str:
    """The key-file string layer, undone independently of the code under test."""
    escapes = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    out, index = [], 0
    while index < len(value):
        if value[index] == "\\":
            out.append(escapes[value[index + 1]])
            index += 2
        else:
            out.append(value[index])
            index += 1
    return "".join(out)


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config home"  # a space, as in some real home folders


def test_enable_writes_a_valid_desktop_entry(config_home: Path) -> None:
    autostart = XdgDesktopAutostart(COMMAND, config_home)

    autostart.enable()

    assert autostart.path == config_home / "autostart" / "rma-desktop.desktop"
    keys = entry_keys(autostart.path)
    assert keys["Type"] == "Application"
    assert keys["Name"] == "RMA Compute Pool"
    assert keys["Icon"] == "rma-desktop"
    assert keys["Terminal"] == "false"
    assert keys["StartupNotify"] == "false"
    assert keys["X-GNOME-Autostart-enabled"] == "true"
    assert keys["Comment"] and keys["Categories"]
    assert parse_desktop_exec_value(keys["Exec"]) == COMMAND
    assert autostart.is_enabled()
    assert autostart.description == f"an autostart entry in {config_home / 'autostart'}"


def test_the_entry_passes_desktop_file_validate(config_home: Path) -> None:
    validator = shutil.which("desktop-file-validate")
    assert validator, "desktop-file-validate is missing: apt-get install desktop-file-utils"
    awkward = [sys.executable, "-c", "print('$HOME `x` \"q\" \\\\ 100%')", "tab\there"]
    autostart = XdgDesktopAutostart(awkward, config_home)
    autostart.enable()

    result = subprocess.run(
        [validator, str(autostart.path)], capture_output=True, text=True, timeout=10, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""  # not even a warning or a hint


def test_the_exec_line_runs_the_command_exactly(config_home: Path, tmp_path: Path) -> None:
    # What a session does with Exec: undo the key-file escapes and %%, then run it as sh does.
    marker = tmp_path / "it ran" / "argv.json"
    marker.parent.mkdir()
    awkward = ["$HOME", "`id`", 'say "hi"', "it's", "back\\slash", "100%", "new\nline", ""]
    program = (
        "import json, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(json.dumps(sys.argv[2:]))"
    )
    autostart = XdgDesktopAutostart(
        [sys.executable, "-c", program, str(marker), *awkward], config_home
    )
    autostart.enable()

    line = unescape_string(entry_keys(autostart.path)["Exec"]).replace("%%", "%")
    subprocess.run(["sh", "-c", line], check=True, timeout=30)

    assert json.loads(marker.read_text()) == awkward


def test_enable_is_idempotent_and_rewrites_an_old_command(config_home: Path) -> None:
    XdgDesktopAutostart(["/old/path/rma-desktop"], config_home).enable()
    autostart = XdgDesktopAutostart(COMMAND, config_home)

    autostart.enable()
    autostart.enable()

    assert parse_desktop_exec_value(entry_keys(autostart.path)["Exec"]) == COMMAND
    assert [path.name for path in autostart.path.parent.iterdir()] == ["rma-desktop.desktop"]


def test_disable_removes_the_entry_and_is_idempotent(config_home: Path) -> None:
    autostart = XdgDesktopAutostart(COMMAND, config_home)
    autostart.disable()  # nothing there yet
    autostart.enable()

    autostart.disable()
    autostart.disable()

    assert not autostart.path.exists()
    assert not autostart.is_enabled()


@pytest.mark.parametrize(
    "switch_off", ["Hidden=true", "X-GNOME-Autostart-enabled=false", "Hidden = true"]
)
def test_an_entry_switched_off_by_the_session_is_not_enabled(
    config_home: Path, switch_off: str
) -> None:
    autostart = XdgDesktopAutostart(COMMAND, config_home)
    autostart.enable()
    text = autostart.path.read_text().replace("X-GNOME-Autostart-enabled=true\n", "")
    autostart.path.write_text(text + switch_off + "\n")

    assert not autostart.is_enabled()

    autostart.enable()  # turning it on again writes a clean entry
    assert autostart.is_enabled()


def test_keys_in_other_groups_do_not_count(config_home: Path) -> None:
    autostart = XdgDesktopAutostart(COMMAND, config_home)
    autostart.enable()
    with autostart.path.open("a") as file:
        file.write("\n[Desktop Action quit]\nName=Quit\nExec=true\nHidden=true\n")

    assert autostart.is_enabled()


def test_a_system_entry_counts_and_disable_masks_it(config_home: Path, tmp_path: Path) -> None:
    system = tmp_path / "etc" / "xdg"
    XdgDesktopAutostart(COMMAND, system).enable()  # as a package would install it
    autostart = XdgDesktopAutostart(COMMAND, config_home, config_dirs=[system])
    assert autostart.is_enabled()

    autostart.disable()

    assert entry_keys(autostart.path)["Hidden"] == "true"
    assert not autostart.is_enabled()
    autostart.enable()
    assert "Hidden" not in entry_keys(autostart.path)
    assert autostart.is_enabled()


def test_a_config_folder_that_cannot_be_written_is_a_plain_error(config_home: Path) -> None:
    config_home.mkdir()
    (config_home / "autostart").write_text("a file where the folder should be")
    autostart = XdgDesktopAutostart(COMMAND, config_home)

    with pytest.raises(AutostartError) as caught:
        autostart.enable()

    assert str(caught.value).startswith("RMA Compute Pool could not be set to start at login")


def test_the_constructor_touches_nothing(tmp_path: Path) -> None:
    autostart: Autostart = XdgDesktopAutostart(COMMAND, tmp_path / "missing")

    assert autostart.available
    assert not autostart.is_enabled()
    assert not (tmp_path / "missing").exists()
