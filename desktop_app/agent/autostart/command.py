"""The command that starts the tray app at login, and how each autostart format spells it.

:func:`launch_command` decides *what* to run (the frozen app, the ``rma-desktop`` script or
``python -m desktop_app``); :func:`desktop_exec_value` and :func:`parse_desktop_exec_value`
write and read it in a desktop entry's ``Exec`` key. The Windows Run key takes
``subprocess.list2cmdline(command)`` and launchd takes the list as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop_app.agent.bundle import is_frozen

from .base import AutostartError

AUTOSTART_FLAG = "--autostart"
"""Appended to the command: the app starts quietly in the tray, without opening its window."""

SCRIPT_NAME = "rma-desktop"
"""The tray app's console script (``[project.scripts]`` in ``pyproject.toml``)."""

# Desktop Entry Specification 1.5, "The Exec key": an argument holding any of these must be
# quoted; inside the quotes, the characters in _EXEC_ESCAPED_IN_QUOTES take a backslash.
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
_EXEC_ESCAPED_IN_QUOTES = frozenset('"`$\\')

# The key-file layer under it ("Possible value types": string values).
_STRING_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_STRING_UNESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def launch_command(
    *,
    frozen: bool | None = None,
    executable: str | None = None,
    argv0: str | None = None,
    platform: str = sys.platform,
) -> list[str]:
    """The command, with absolute paths, that starts the tray app at login.

    In the order tried:

    1. Frozen by PyInstaller: the app's own executable.
    2. On Windows, ``pythonw.exe -m desktop_app`` when ``pythonw.exe`` is beside the
       interpreter: pip's ``rma-desktop.exe`` is a console launcher, and started at login
       it would keep a terminal window open for as long as the app runs.
    3. The ``rma-desktop`` script beside the interpreter (a virtual environment's ``bin``, or
       ``Scripts`` on Windows), or the one this process was started from (``argv0``, e.g. a
       ``pip install --user`` script in ``~/.local/bin``).
    4. ``python -m desktop_app``.

    Paths are made absolute but symlinks are kept: a virtual environment's ``python`` is a
    symlink to the system interpreter, and resolving it would lose the environment.

    Args:
        frozen: Whether this is a frozen app; None reads ``sys.frozen``.
        executable: The interpreter, or the frozen app; None reads ``sys.executable``.
        argv0: How this process was started; None reads ``sys.argv[0]``.
        platform: ``sys.platform`` of the machine the command is for.

    Returns:
        The program and its arguments, ending with :data:`AUTOSTART_FLAG`.

    Raises:
        AutostartError: The interpreter's path is unknown (an embedded Python).
    """
    if frozen is None:
        frozen = is_frozen()
    if executable is None:
        executable = sys.executable
    if argv0 is None:
        argv0 = sys.argv[0] if sys.argv else ""
    if not executable:
        raise AutostartError(
            "RMA Compute Pool cannot tell which program to start at login, because Python "
            "does not report where it is installed. Start it at login with your system's "
            "settings instead."
        )
    program = Path(os.path.abspath(executable))
    if frozen:
        return [str(program), AUTOSTART_FLAG]
    windows = platform == "win32"
    if windows:
        pythonw = program.with_name("pythonw.exe")
        if pythonw.is_file():
            return [str(pythonw), "-m", "desktop_app", AUTOSTART_FLAG]
    script = _console_script(program, argv0, windows=windows)
    if script is not None:
        return [str(script), AUTOSTART_FLAG]
    return [str(program), "-m", "desktop_app", AUTOSTART_FLAG]


def _console_script(interpreter: Path, argv0: str, *, windows: bool) -> Path | None:
    if windows:
        # A venv keeps python.exe in Scripts; a full install keeps it one level up.
        candidates = [
            interpreter.parent / f"{SCRIPT_NAME}.exe",
            interpreter.parent / "Scripts" / f"{SCRIPT_NAME}.exe",
        ]
    else:
        candidates = [interpreter.parent / SCRIPT_NAME]
    if argv0:
        started_from = Path(os.path.abspath(argv0))
        name = started_from.name.lower() if windows else started_from.name
        if name in (SCRIPT_NAME, f"{SCRIPT_NAME}.exe"):
            candidates.append(started_from)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def desktop_exec_value(command: Sequence[str]) -> str:
    r"""``command`` as the value of a desktop entry's ``Exec`` key, ready to write to the file.

    Two layers of escaping, as the Desktop Entry Specification stacks them: each argument is
    quoted by the ``Exec`` rules (double quotes around any argument with a reserved character,
    a backslash before ``"``, a backtick, ``$`` and ``\`` inside them, and ``%%`` for every
    ``%``), then the line is escaped as a key-file string (``\\``, ``\n``, ``\t``, ``\r``).
    Desktop sessions undo both and hand the arguments to ``exec`` unchanged.

    Args:
        command: The program and its arguments.

    Returns:
        The value, without the ``Exec=`` prefix.

    Raises:
        ValueError: The command is empty or an argument holds a NUL character.
    """
    if not command:
        raise ValueError("the command is empty")
    if any("\0" in argument for argument in command):
        raise ValueError("a desktop entry cannot hold a NUL character")
    return escape_desktop_string(" ".join(_quote_exec_argument(argument) for argument in command))


def escape_desktop_string(text: str) -> str:
    r"""``text`` as a desktop entry's string value (``\\``, ``\n``, ``\t``, ``\r`` escaped).

    Args:
        text: Any text without NUL characters.

    Returns:
        The value, without the ``Key=`` prefix.
    """
    return "".join(_STRING_ESCAPES.get(character, character) for character in text)


def _quote_exec_argument(argument: str) -> str:
    # %% is needed inside quotes too: launchers expand field codes before they split the line.
    if argument and not _EXEC_RESERVED.intersection(argument):
        return argument.replace("%", "%%")
    quoted = "".join(
        "\\" + character if character in _EXEC_ESCAPED_IN_QUOTES else character
        for character in argument
    )
    return '"' + quoted.replace("%", "%%") + '"'


def parse_desktop_exec_value(value: str) -> list[str]:
    """The arguments of a desktop entry's ``Exec`` value, as a launcher would run them.

    The inverse of :func:`desktop_exec_value`, and strict: a field code (``%f``, ``%u``…) or
    an unquoted reserved character is an error rather than guessed at.

    Args:
        value: The value as it stands in the file, without the ``Exec=`` prefix.

    Returns:
        The program and its arguments.

    Raises:
        ValueError: The value is not a plain quoted command line.
    """
    line = _unescape_string(value)
    arguments: list[str] = []
    current: list[str] = []
    in_argument = False
    in_quotes = False
    index = 0
    while index < len(line):
        character = line[index]
        following = line[index + 1] if index + 1 < len(line) else ""
        if character == "%":
            if following != "%":
                raise ValueError(f"field code %{following} at {index} is not supported")
            current.append("%")
            in_argument = True
            index += 2
            continue
        if in_quotes:
            if character == '"':
                in_quotes = False
            elif character == "\\" and following in _EXEC_ESCAPED_IN_QUOTES:
                current.append(following)
                index += 1
            elif character in _EXEC_ESCAPED_IN_QUOTES:
                raise ValueError(f"{character!r} at {index} must be escaped inside quotes")
            else:
                current.append(character)
        elif character == " ":
            if in_argument:
                arguments.append("".join(current))
                current, in_argument = [], False
        elif character == '"':
            in_quotes = in_argument = True
        elif character in _EXEC_RESERVED:
            raise ValueError(f"{character!r} at {index} must be inside quotes")
        else:
            current.append(character)
            in_argument = True
        index += 1
    if in_quotes:
        raise ValueError("a quoted argument is not closed")
    if in_argument:
        arguments.append("".join(current))
    if not arguments:
        raise ValueError("the command is empty")
    return arguments


def _unescape_string(value: str) -> str:
    characters: list[str] = []
    index = 0
    while index < len(value):
        character = value[index]
        if character == "\\" and index + 1 < len(value):
            escaped = value[index + 1]
            if escaped not in _STRING_UNESCAPES:
                raise ValueError(f"unknown escape \\{escaped} at {index}")
            characters.append(_STRING_UNESCAPES[escaped])
            index += 2
            continue
        characters.append(character)
        index += 1
    return "".join(characters)
