"""What starts the tray app at login, and the desktop-entry quoting of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop_app.agent.autostart import (
    AUTOSTART_FLAG,
    AutostartError,
    desktop_exec_value,
    launch_command,
    parse_desktop_exec_value,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


# -- launch_command ------------------------------------------------------------------------------


def test_frozen_app_starts_itself_with_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "RMA Compute" / "rma-compute")

    command = launch_command(frozen=True, executable="RMA Compute/rma-compute", argv0="")

    assert command == [str(tmp_path / "RMA Compute" / "rma-compute"), AUTOSTART_FLAG]


def test_pip_install_prefers_the_console_script_beside_the_interpreter(tmp_path: Path) -> None:
    python = touch(tmp_path / "venv" / "bin" / "python")
    script = touch(tmp_path / "venv" / "bin" / "rma-desktop")

    command = launch_command(frozen=False, executable=str(python), argv0="", platform="linux")

    assert command == [str(script), AUTOSTART_FLAG]


def test_pip_install_uses_the_script_it_was_started_from(tmp_path: Path) -> None:
    # `pip install --user`: the interpreter is the system's, the script in ~/.local/bin.
    python = touch(tmp_path / "usr" / "bin" / "python3")
    script = touch(tmp_path / "home" / ".local" / "bin" / "rma-desktop")

    command = launch_command(
        frozen=False, executable=str(python), argv0=str(script), platform="linux"
    )

    assert command == [str(script), AUTOSTART_FLAG]


def test_pip_install_without_a_script_runs_the_package(tmp_path: Path) -> None:
    python = touch(tmp_path / "venv" / "bin" / "python")
    other_program = touch(tmp_path / "venv" / "bin" / "pytest")

    command = launch_command(
        frozen=False, executable=str(python), argv0=str(other_program), platform="linux"
    )

    assert command == [str(python), "-m", "desktop_app", AUTOSTART_FLAG]


def test_a_virtual_environment_interpreter_is_not_resolved_to_the_system_one(
    tmp_path: Path,
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)

    command = launch_command(frozen=False, executable=str(python), argv0="", platform="linux")

    assert command[0] == str(python)


def test_windows_prefers_pythonw_so_no_console_window_stays_open(tmp_path: Path) -> None:
    scripts = tmp_path / "venv" / "Scripts"
    python = touch(scripts / "python.exe")
    pythonw = touch(scripts / "pythonw.exe")
    touch(scripts / "rma-desktop.exe")

    command = launch_command(frozen=False, executable=str(python), argv0="", platform="win32")

    assert command == [str(pythonw), "-m", "desktop_app", AUTOSTART_FLAG]


def test_windows_without_pythonw_finds_the_script_in_scripts(tmp_path: Path) -> None:
    python = touch(tmp_path / "Python311" / "python.exe")
    script = touch(tmp_path / "Python311" / "Scripts" / "rma-desktop.exe")

    command = launch_command(frozen=False, executable=str(python), argv0="", platform="win32")

    assert command == [str(script), AUTOSTART_FLAG]


def test_windows_without_script_or_pythonw_runs_the_package(tmp_path: Path) -> None:
    python = touch(tmp_path / "Python311" / "python.exe")

    command = launch_command(frozen=False, executable=str(python), argv0="", platform="win32")

    assert command == [str(python), "-m", "desktop_app", AUTOSTART_FLAG]


def test_an_unknown_interpreter_is_a_plain_error() -> None:
    with pytest.raises(AutostartError) as caught:
        launch_command(frozen=False, executable="", argv0="")

    assert "which program to start" in str(caught.value)


def test_the_defaults_describe_this_process() -> None:
    command = launch_command()

    assert command[-1] == AUTOSTART_FLAG
    assert os.path.isabs(command[0])


def test_python_dash_m_desktop_app_runs_the_tray_apps_main() -> None:
    # The fallback command; main is stood in for, so this checks __main__, not the UI.
    code = (
        "import runpy, sys, desktop_app.main\n"
        "desktop_app.main.main = lambda argv=None: print('main', sys.argv[1:]) or 7\n"
        "runpy.run_module('desktop_app', run_name='__main__', alter_sys=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, AUTOSTART_FLAG],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
    )

    assert result.stdout == f"main ['{AUTOSTART_FLAG}']\n", result.stderr
    assert result.returncode == 7


# -- the Exec key --------------------------------------------------------------------------------

AWKWARD_ARGUMENTS = [
    "plain",
    "with space",
    "",
    "$HOME",
    "`id`",
    'say "hi"',
    "it's",
    "back\\slash",
    "trailing\\",
    "100%",
    "%u",
    "tab\there",
    "new\nline",
    "~/not-home",
    "a;b|c&d>e<f*g?h#i(j)",
    "unicode é ✓",
]


def test_simple_arguments_are_written_as_they_are() -> None:
    assert desktop_exec_value(["/usr/bin/rma-desktop", "--autostart"]) == (
        "/usr/bin/rma-desktop --autostart"
    )


def test_reserved_characters_are_quoted_and_escaped_twice() -> None:
    # Exec quoting gives "a\\b" and "\$x"; the key-file layer then doubles each backslash.
    assert desktop_exec_value(["/opt/My App/run", "a\\b", "$x", "50%"]) == (
        '"/opt/My App/run" "a\\\\\\\\b" "\\\\$x" 50%%'
    )


def test_awkward_arguments_round_trip() -> None:
    command = ["/opt/RMA Compute/rma-compute", *AWKWARD_ARGUMENTS]

    value = desktop_exec_value(command)

    assert "\n" not in value and "\t" not in value
    assert parse_desktop_exec_value(value) == command


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0")), min_size=1))
def test_any_command_round_trips(command: list[str]) -> None:
    assert parse_desktop_exec_value(desktop_exec_value(command)) == command


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("run %f", "field code"),
        ("run $HOME", "inside quotes"),
        ('run "open', "not closed"),
        ('run "a"b"', "not closed"),
        ('"a$b"', "escaped inside quotes"),
        ("", "empty"),
    ],
)
def test_values_that_are_not_plain_command_lines_are_refused(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_desktop_exec_value(value)


def test_an_empty_command_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="empty"):
        desktop_exec_value([])
