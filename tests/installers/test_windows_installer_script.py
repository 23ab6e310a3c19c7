r"""installers/windows/rma-compute.iss, read here against the app's own code.

ISCC (Inno Setup's compiler) runs only on Windows, so this reads the script as data: its
[Setup] directives, its section entries and the constants and procedures of its [Code], and
checks what must agree with the app: the start-at-login value the app itself writes and
reads (desktop_app/agent/autostart), the data folder it uses (desktop_app/agent/paths.py),
``--quit`` before files are replaced or removed, the icon, and the file build.ps1 expects.
Whether ISCC compiles it and the result installs is checked by the hosted CI workflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import pytest

from desktop_app.agent.autostart.command import AUTOSTART_FLAG, launch_command
from desktop_app.agent.autostart.windows_registry import (
    RUN_KEY_PATH,
    RUN_VALUE_NAME,
    STARTUP_APPROVED_KEY_PATH,
    WindowsRunKeyAutostart,
)
from desktop_app.agent.paths import APP_AUTHOR, APP_NAME

REPO = Path(__file__).resolve().parents[2]
ISS = REPO / "installers" / "windows" / "rma-compute.iss"
BUILD_PS1 = REPO / "installers" / "windows" / "build.ps1"

# Where {autopf}\RMA Compute lands for a volunteer under PrivilegesRequired=lowest.
INSTALL_DIR = r"C:\Users\Volunteer\AppData\Local\Programs\RMA Compute"


@dataclass
class InnoScript:
    """The parts of an Inno Setup script these tests read, with ISPP string defines expanded."""

    defines: dict[str, str] = field(default_factory=dict)
    setup: dict[str, str] = field(default_factory=dict)
    entries: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    code: str = ""

    def entry(self, section: str, **match: str) -> dict[str, str]:
        found = [
            entry
            for entry in self.entries.get(section, [])
            if all(entry.get(key) == value for key, value in match.items())
        ]
        assert len(found) == 1, f"[{section}] entries matching {match}: {found}"
        return found[0]

    def constant(self, name: str) -> str:
        match = re.search(rf"^\s*{name}\s*=\s*'((?:[^']|'')*)'\s*;", self.code, re.MULTILINE)
        assert match, f"[Code] has no constant {name}"
        return match.group(1).replace("''", "'")

    def routine(self, name: str) -> str:
        """The text of a [Code] procedure or function, from its header to its final end;."""
        match = re.search(
            rf"^(?:procedure|function)\s+{name}\b.*?^end;", self.code, re.MULTILINE | re.DOTALL
        )
        assert match, f"[Code] has no procedure or function {name}"
        return match.group(0)


def _expand(text: str, defines: dict[str, str]) -> str:
    return re.sub(r"\{#(\w+)\}", lambda match: defines.get(match.group(1), match.group(0)), text)


def _split_entry(line: str) -> dict[str, str]:
    """One entry line into its parameters; quoted values lose their quotes, "" becomes "."""
    entry: dict[str, str] = {}
    for part in re.findall(r'(?:[^;"]|"(?:[^"]|"")*")+', line):
        key, _, value = part.partition(":")
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1].replace('""', '"')
        entry[key.strip()] = value
    return entry


def parse_inno_script(text: str) -> InnoScript:
    """Parse as ISCC would with no /D defines: ``#ifdef`` blocks are skipped, as is ``#if``."""
    script = InnoScript()
    section = ""
    skipping: list[bool] = []
    code_lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        # Preprocessor lines (not Pascal's #13#10 character codes).
        directive = re.match(r"#\s*(ifdef|ifndef|if|endif|define|error)\b\s*(.*)", stripped)
        if directive:
            keyword, rest = directive.groups()
            if keyword == "ifdef":
                skipping.append(rest.split()[0] not in script.defines)
            elif keyword == "ifndef":
                skipping.append(rest.split()[0] in script.defines)
            elif keyword == "if":
                skipping.append(True)  # only the version guard, whose body is #error
            elif keyword == "endif":
                skipping.pop()
            elif keyword == "define" and not any(skipping):
                name, _, value = rest.partition(" ")
                literal = re.fullmatch(r'"([^"]*)"', value.strip())
                if literal:
                    script.defines[name] = literal.group(1)
                else:  # an expression such as AddBackslash(SourcePath) + "..\.."
                    script.defines.setdefault(name, f"<{name}>")
            continue
        if any(skipping):
            continue
        header = re.fullmatch(r"\[(\w+)\]", stripped)
        if header:
            section = header.group(1).lower()
            continue
        if section == "code":
            code_lines.append(_expand(line, script.defines))
            continue
        if not stripped or stripped.startswith(";"):
            continue
        expanded = _expand(stripped, script.defines)
        if section == "setup":
            key, _, value = expanded.partition("=")
            script.setup[key.strip()] = value.strip()
        else:
            script.entries.setdefault(section, []).append(_split_entry(expanded))
    script.code = "\n".join(code_lines)
    return script


@pytest.fixture(scope="module")
def iss() -> InnoScript:
    return parse_inno_script(ISS.read_text(encoding="utf-8"))


def test_installs_for_the_volunteer_only_without_admin_rights(iss: InnoScript) -> None:
    assert iss.setup["PrivilegesRequired"] == "lowest"
    # An elevated "for all users" mode would write the Run value into the admin's registry.
    assert "PrivilegesRequiredOverridesAllowed" not in iss.setup
    assert iss.setup["DefaultDirName"].startswith(("{autopf}\\", "{localappdata}\\"))


def test_app_id_is_a_fixed_guid(iss: InnoScript) -> None:
    # "{{" is Inno's escaped brace: the id is {GUID}, which upgrades and uninstalls key on.
    assert re.fullmatch(r"\{\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", iss.setup["AppId"])
    assert iss.setup["AppName"] == "RMA Compute"
    assert iss.setup["AppPublisher"] == "RMA"


def test_start_at_login_value_is_the_one_the_app_writes(iss: InnoScript) -> None:
    entry = iss.entry("registry", ValueName=RUN_VALUE_NAME, ValueType="string")
    assert entry["Root"] == "HKCU"
    assert entry["Subkey"] == RUN_KEY_PATH
    assert entry["Tasks"] == "autostart"

    # What the frozen app puts after its own path when it enables start at login itself.
    program, *arguments = launch_command(
        frozen=True, executable=r"C:\X\rma-compute.exe", platform="win32"
    )
    assert program.endswith("rma-compute.exe")
    assert arguments == [AUTOSTART_FLAG]
    installed = str(PureWindowsPath(INSTALL_DIR, "rma-compute.exe"))
    written_by_app = WindowsRunKeyAutostart([installed, *arguments]).command_line()

    assert entry["ValueData"].replace("{app}", INSTALL_DIR) == written_by_app
    assert entry["ValueData"] == f'"{{app}}\\rma-compute.exe" {AUTOSTART_FLAG}'


def test_start_at_login_clears_a_task_manager_switch_off_as_the_app_does(
    iss: InnoScript,
) -> None:
    entry = iss.entry("registry", Subkey=STARTUP_APPROVED_KEY_PATH)
    assert entry["Root"] == "HKCU"
    assert entry["ValueName"] == RUN_VALUE_NAME
    assert entry["ValueType"] == "none"
    assert "deletevalue" in entry["Flags"].split()
    assert entry["Tasks"] == "autostart"


def test_start_at_login_task_is_offered_checked_on_a_first_install(iss: InnoScript) -> None:
    task = iss.entry("tasks", Name="autostart")
    assert "sign in" in task["Description"]
    assert "unchecked" not in task.get("Flags", "").split()
    assert task["Check"] == "not IsUpgrade"
    assert "HKCU, UninstallKey" in iss.routine("IsUpgrade")
    guid = iss.defines["AppGuid"]
    assert f"CurrentVersion\\Uninstall\\{{' + '{guid}' + '}}_is1'" in iss.routine("UninstallKey")


def test_code_constants_match_the_app(iss: InnoScript) -> None:
    assert iss.constant("RunKey") == RUN_KEY_PATH
    assert iss.constant("StartupApprovedKey") == STARTUP_APPROVED_KEY_PATH
    assert iss.constant("RunValueName") == RUN_VALUE_NAME
    assert iss.constant("QuitFlag") == "--quit"
    # platformdirs' folder on Windows: %LOCALAPPDATA%\<author>\<name>.
    assert iss.constant("DataDirName") == f"{APP_AUTHOR}\\{APP_NAME}"


def test_the_installed_app_is_asked_to_quit_and_waited_for(iss: InnoScript) -> None:
    stop = iss.routine("StopRunningApp")
    exec_call = re.search(r"Exec\((.*?)\)", stop, re.DOTALL)
    assert exec_call
    assert "QuitFlag" in exec_call.group(1)
    assert "ewWaitUntilTerminated" in exec_call.group(1)
    assert "ResultCode <> 0" in stop, "a failed --quit must not count as stopped"


def test_install_and_upgrade_stop_the_running_app_first(iss: InnoScript) -> None:
    prepare = iss.routine("PrepareToInstall")
    assert "StopRunningApp(ExpandConstant('{app}')" in prepare
    # Stop, and change nothing, unless the volunteer chooses to go on.
    assert "IDNO) <> IDYES then" in prepare
    assert "Result := Problem" in prepare


def test_uninstall_stops_the_app_then_clears_start_at_login(iss: InnoScript) -> None:
    steps = iss.routine("CurUninstallStepChanged")
    mutex_check = steps.index("CurUninstallStep = usAppMutexCheck")
    uninstall = steps.index("CurUninstallStep = usUninstall")
    assert mutex_check < steps.index("StopRunningApp(ExpandConstant('{app}')") < uninstall
    assert mutex_check < steps.index("Abort;") < uninstall
    assert uninstall < steps.index("RemoveStartAtLogin")
    # Removed whether or not the installer's task wrote it: the app may have.
    assert "WizardIsTaskSelected" not in iss.code
    remove = iss.routine("RemoveStartAtLogin")
    assert "RegDeleteValue(HKCU, RunKey, RunValueName)" in remove
    assert "RegDeleteValue(HKCU, StartupApprovedKey, RunValueName)" in remove
    # No uninsdeletevalue either, so the [Code] above is the one place that removes it.
    run_value = iss.entry("registry", ValueName=RUN_VALUE_NAME, ValueType="string")
    assert "Flags" not in run_value


def test_uninstall_keeps_the_volunteers_data_unless_asked(iss: InnoScript) -> None:
    steps = iss.routine("CurUninstallStepChanged")
    assert re.search(r"usPostUninstall\)\s+and\s+not\s+UninstallSilent", steps)
    offer = iss.routine("OfferToDeleteData")
    # "No" is the default button and the answer under /SUPPRESSMSGBOXES.
    assert "MB_YESNO or MB_DEFBUTTON2, IDNO) = IDYES then" in offer
    assert offer.index("= IDYES then") < offer.index("DelTree(")
    assert "uninstalldelete" not in iss.entries, "nothing may delete data unasked"


def test_icons_and_executable(iss: InnoScript) -> None:
    icon = iss.setup["SetupIconFile"]
    assert icon.startswith("<RepoRoot>\\")
    assert (REPO / PureWindowsPath(icon.removeprefix("<RepoRoot>\\")).as_posix()).is_file()
    assert iss.setup["UninstallDisplayIcon"] == "{app}\\rma-compute.exe"
    shortcut = iss.entry("icons", Filename="{app}\\rma-compute.exe")
    assert shortcut["Name"] == "{autoprograms}\\RMA Compute"


def test_launch_after_install_is_offered_but_never_on_silent_installs(iss: InnoScript) -> None:
    run = iss.entry("run", Filename="{app}\\rma-compute.exe")
    assert {"postinstall", "nowait", "skipifsilent"} <= set(run["Flags"].split())
    assert "Parameters" not in run


def test_packages_the_whole_one_folder_build(iss: InnoScript) -> None:
    files = iss.entry("files", DestDir="{app}")
    assert files["Source"] == "<SourceDir>\\*"
    assert {"recursesubdirs", "createallsubdirs", "ignoreversion"} <= set(files["Flags"].split())
    # An upgrade must not keep modules of the previous version.
    iss.entry("installdelete", Type="filesandordirs", Name="{app}\\_internal")


def test_setup_file_name_is_the_one_build_ps1_expects(iss: InnoScript) -> None:
    assert iss.setup["OutputBaseFilename"] == "rma-compute-0.0.0-windows-setup"
    assert iss.setup["OutputBaseFilename"].replace("0.0.0", "$version") in BUILD_PS1.read_text()
    for define in ("AppVersion", "NumericVersion", "SourceDir", "OutputDir", "SignToolName"):
        assert f"/D{define}=" in BUILD_PS1.read_text(), f"build.ps1 does not pass {define}"


def test_signing_only_when_build_ps1_defines_a_sign_tool(iss: InnoScript) -> None:
    assert "SignTool" not in iss.setup
    signed = parse_inno_script(
        ISS.read_text(encoding="utf-8").replace(
            "#define RepoRoot", '#define SignToolName "x"\n#define RepoRoot', 1
        )
    )
    assert signed.setup["SignTool"] == "x"
    assert signed.setup["SignedUninstaller"] == "yes"


def test_parser_reads_doubled_quotes_like_inno() -> None:
    entry = _split_entry('Name: "a"; ValueData: """{app}\\x.exe"" --y"; Flags: one two')
    assert entry == {"Name": "a", "ValueData": '"{app}\\x.exe" --y', "Flags": "one two"}
