"""installers/macos/build.sh, run here on Linux against fake macOS tools.

codesign, hdiutil, xcrun, ditto and xattr exist only on macOS, so small stand-ins first on
PATH record every command line the script runs (and hdiutil lists the folder it was asked to
image). The script runs for real against a fake ``RMA Compute.app`` whose binaries carry
Mach-O magic numbers, so what is checked is its own logic: what it signs, in which order,
with which options, what goes on the disk image, and when it notarizes or refuses to.
What Apple's tools then do with those commands is only checked by the hosted CI workflow.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLERS = REPO / "installers"
SCRIPT = INSTALLERS / "macos" / "build.sh"
ENTITLEMENTS = INSTALLERS / "macos" / "entitlements.plist"

APP_NAME = "RMA Compute.app"
IDENTITY = "Developer ID Application: RMA Test (TEAM123456)"
MACHO_64 = bytes.fromhex("cffaedfe") + bytes(28)  # MH_MAGIC_64, as stored little-endian
UNIVERSAL = bytes.fromhex("cafebabe") + bytes(28)  # FAT_MAGIC, stored big-endian

# Each fake appends "name<TAB>arg<TAB>arg..." to $FAKE_LOG.
_RECORD = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } \\
    >>"$FAKE_LOG"
"""

FAKES = {
    "codesign": _RECORD,
    "xattr": _RECORD,
    "ditto": _RECORD + 'cp -a "$1" "$2"\n',
    # `hdiutil create ... -srcfolder DIR ... OUT`: lists DIR (it is gone when the script ends)
    # and creates OUT.
    "hdiutil": _RECORD
    + """[ "$1" = create ] || exit 0
previous=""; source=""; output=""
for argument in "$@"; do
    [ "$previous" = -srcfolder ] && source=$argument
    previous=$argument; output=$argument
done
for entry in "$source"/* "$source"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=$(basename "$entry")
    if [ -L "$entry" ]; then echo "$name -> $(readlink "$entry")"
    elif [ -d "$entry" ]; then echo "$name/"
    else echo "$name"; fi
done >"$FAKE_LOG.staging"
[ -f "$source/RMA Compute.app/Contents/MacOS/rma-compute" ] && echo copied >>"$FAKE_LOG.app"
: >"$output"
""",
    # notarytool answers with the verdict in $FAKE_NOTARY_STATUS (default Accepted).
    "xcrun": _RECORD
    + """if [ "$1 $2" = "notarytool submit" ]; then
    printf '{"id": "fake-submission", "status": "%s", "message": "Processing complete"}\\n' \\
        "${FAKE_NOTARY_STATUS:-Accepted}"
fi
""",
}

# Stands in for $PYTHON when the freeze is not skipped: `-m PyInstaller` records its command
# line and working folder and builds a fake app in --distpath; anything else is real Python.
FAKE_PYTHON = (
    _RECORD.replace('"$(basename "$0")"', "python")
    + f"""if [ "$1 $2" = "-m PyInstaller" ]; then
    pwd >>"$FAKE_LOG.cwd"
    previous=""
    for argument in "$@"; do
        [ "$previous" = --distpath ] && dist=$argument
        previous=$argument
    done
    mkdir -p "$dist/RMA Compute.app/Contents/MacOS"
    printf '\\317\\372\\355\\376' >"$dist/RMA Compute.app/Contents/MacOS/rma-compute"
    exit 0
fi
exec {sys.executable} "$@"
"""
)

SIGNING_VARIABLES = (
    "MACOS_SIGN_IDENTITY",
    "MACOS_NOTARY_PROFILE",
    "APPLE_ID",
    "APPLE_TEAM_ID",
    "APPLE_APP_PASSWORD",
    "RMA_BUILD_COORDINATOR_URL",
    "FAKE_NOTARY_STATUS",
)


@dataclass
class Build:
    result: subprocess.CompletedProcess[str]
    calls: list[list[str]]
    log: Path
    dmg: Path

    def of(self, tool: str) -> list[list[str]]:
        return [call[1:] for call in self.calls if call[0] == tool]

    def signed(self) -> list[list[str]]:
        """codesign calls that sign (not --verify), in order."""
        return [call for call in self.of("codesign") if "--sign" in call]

    def index(self, tool: str, *arguments: str) -> int:
        for position, call in enumerate(self.calls):
            if call[0] == tool and all(argument in call for argument in arguments):
                return position
        raise AssertionError(f"no {tool} call with {arguments}: {self.calls}")


@dataclass
class Workspace:
    root: Path
    bin: Path
    dist: Path
    app: Path
    log: Path

    def run(self, *arguments: str, python: str = sys.executable, **env: str) -> Build:
        environment = {k: v for k, v in os.environ.items() if k not in SIGNING_VARIABLES}
        environment.update(
            PATH=f"{self.bin}{os.pathsep}{environment['PATH']}",
            PYTHON=python,
            RMA_DIST_DIR=str(self.dist),
            TMPDIR=str(self.root / "tmp"),
            FAKE_LOG=str(self.log),
            **env,
        )
        result = subprocess.run(
            ["bash", str(SCRIPT), *arguments],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        # The script asks the same interpreter for both.
        name = f"rma-compute-{_app_version()}-macos-{platform.machine()}.dmg"
        dmg = self.dist / "installers" / name
        return Build(result, [line.split("\t") for line in lines], self.log, dmg)


def _app_version() -> str:
    import desktop_app

    return desktop_app.__version__


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    path.chmod(mode)
    return path


def _fake_app(app: Path) -> None:
    """A PyInstaller-6-shaped bundle: code in Frameworks/, data in Resources/, links between."""
    contents = app / "Contents"
    _write(contents / "MacOS" / "rma-compute", MACHO_64, 0o755)
    _write(contents / "Info.plist", "<plist/>")
    _write(contents / "Frameworks" / "Python", UNIVERSAL, 0o755)
    _write(contents / "Frameworks" / "libssl.3.dylib", MACHO_64)
    _write(contents / "Frameworks" / "PySide6" / "QtCore.abi3.so", MACHO_64)
    _write(contents / "Frameworks" / "base_library.zip", b"PK\x03\x04")
    framework = contents / "Frameworks" / "PySide6" / "Qt" / "lib" / "QtCore.framework"
    _write(framework / "Versions" / "A" / "QtCore", MACHO_64, 0o755)
    _write(framework / "Versions" / "A" / "Resources" / "Info.plist", "<plist/>")
    (framework / "Versions" / "Current").symlink_to("A")
    (framework / "QtCore").symlink_to("Versions/Current/QtCore")
    _write(contents / "Resources" / "assets" / "icons" / "app.icns", b"icns")
    (contents / "Resources" / "PySide6").symlink_to("../Frameworks/PySide6")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    fake_bin = tmp_path / "bin"
    for name, text in FAKES.items():
        _write(fake_bin / name, text, 0o755)
    _write(fake_bin / "python", FAKE_PYTHON, 0o755)
    (tmp_path / "tmp").mkdir()
    dist = tmp_path / "dist"
    app = dist / APP_NAME
    _fake_app(app)
    return Workspace(tmp_path, fake_bin, dist, app, tmp_path / "calls.log")


def _nested(app: Path) -> dict[str, Path]:
    contents = app / "Contents"
    framework = contents / "Frameworks" / "PySide6" / "Qt" / "lib" / "QtCore.framework"
    return {
        "python": contents / "Frameworks" / "Python",
        "dylib": contents / "Frameworks" / "libssl.3.dylib",
        "extension": contents / "Frameworks" / "PySide6" / "QtCore.abi3.so",
        "framework binary": framework / "Versions" / "A" / "QtCore",
        "framework": framework,
    }


def test_without_identity_it_signs_ad_hoc_and_says_it_is_not_for_distribution(
    workspace: Workspace,
) -> None:
    build = workspace.run("--skip-freeze")

    assert build.result.returncode == 0, build.result.stderr
    assert "NOT SIGNED FOR DISTRIBUTION" in build.result.stdout
    signed = build.signed()
    assert signed, "nothing was signed"
    for call in signed:
        assert call[call.index("--sign") + 1] == "-"
        assert "--timestamp=none" in call  # Apple's timestamp service refuses ad-hoc
    assert str(build.dmg) not in {call[-1] for call in signed}, "an ad-hoc .dmg is not signed"
    assert build.of("xcrun") == [], "nothing may be notarized"
    assert build.dmg.is_file()


def test_with_identity_it_signs_inside_out_with_hardened_runtime(workspace: Workspace) -> None:
    build = workspace.run("--skip-freeze", MACOS_SIGN_IDENTITY=IDENTITY)

    assert build.result.returncode == 0, build.result.stderr
    signed = build.signed()
    for call in signed:
        assert call[call.index("--sign") + 1] == IDENTITY
        assert "--timestamp" in call
        assert "--deep" not in call, "--deep would hand the entitlements to every library"
    code = [call for call in signed if call[-1] != str(build.dmg)]
    for call in code:
        assert call[call.index("--options") + 1] == "runtime"
    targets = [call[-1] for call in code]
    nested = _nested(workspace.app)

    assert sorted(targets[:-1]) == sorted(str(path) for path in nested.values())
    assert targets[-1] == str(workspace.app), "the bundle must be signed last"
    # The framework's binary carries its signature before the framework is sealed.
    assert targets.index(str(nested["framework binary"])) < targets.index(str(nested["framework"]))
    # Entitlements belong to the app's executable, not to the libraries.
    assert code[-1][code[-1].index("--entitlements") + 1] == str(ENTITLEMENTS)
    assert all("--entitlements" not in call for call in code[:-1])
    verify = build.index("codesign", "--verify", str(workspace.app))
    assert "--deep" in build.calls[verify] and "--strict" in build.calls[verify]
    assert build.index("codesign", "--entitlements") < verify

    # The .dmg is made from the signed app, then signed itself (no hardened runtime: not code).
    assert build.index("codesign", "--verify") < build.index("hdiutil", "create")
    dmg_signing = build.index("codesign", "--sign", str(build.dmg))
    assert build.index("hdiutil", "create") < dmg_signing
    assert "--options" not in build.calls[dmg_signing]
    assert "NOT notarized" in build.result.stdout
    assert build.of("xcrun") == []


def test_disk_image_is_compressed_and_holds_the_app_and_an_applications_link(
    workspace: Workspace,
) -> None:
    build = workspace.run("--skip-freeze")

    assert build.result.returncode == 0, build.result.stderr
    [create] = [call for call in build.of("hdiutil") if call[0] == "create"]
    assert create[create.index("-format") + 1] == "UDZO"
    assert create[create.index("-volname") + 1] == "RMA Compute"
    assert create[-1] == str(build.dmg)
    staging = Path(create[create.index("-srcfolder") + 1])
    listing = Path(f"{build.log}.staging").read_text().splitlines()
    assert sorted(listing) == ["Applications -> /Applications", f"{APP_NAME}/"]
    assert Path(f"{build.log}.app").read_text() == "copied\n"
    [ditto] = build.of("ditto")
    assert ditto == [str(workspace.app), str(staging / APP_NAME)]
    assert not staging.exists(), "the staging folder is left behind"
    assert list((workspace.root / "tmp").iterdir()) == []
    # Finder metadata would make codesign refuse the bundle.
    assert build.of("xattr") == [["-cr", str(workspace.app)]]
    assert build.index("xattr") < build.index("codesign")


def test_notary_profile_submits_the_signed_dmg_and_staples_it(workspace: Workspace) -> None:
    build = workspace.run(
        "--skip-freeze", MACOS_SIGN_IDENTITY=IDENTITY, MACOS_NOTARY_PROFILE="rma-notary"
    )

    assert build.result.returncode == 0, build.result.stderr
    submit = build.index("xcrun", "notarytool", "submit")
    call = build.calls[submit]
    assert call[3] == str(build.dmg)
    assert call[call.index("--keychain-profile") + 1] == "rma-notary"
    assert "--wait" in call
    assert build.index("codesign", "--sign", str(build.dmg)) < submit
    staple = build.index("xcrun", "stapler", "staple", str(build.dmg))
    assert submit < staple < build.index("xcrun", "stapler", "validate", str(build.dmg))
    assert "signed, notarized" in build.result.stdout


def test_apple_id_credentials_are_passed_to_notarytool(workspace: Workspace) -> None:
    build = workspace.run(
        "--skip-freeze",
        MACOS_SIGN_IDENTITY=IDENTITY,
        APPLE_ID="dev@example.org",
        APPLE_TEAM_ID="TEAM123456",
        APPLE_APP_PASSWORD="abcd-efgh-ijkl-mnop",
    )

    assert build.result.returncode == 0, build.result.stderr
    call = build.calls[build.index("xcrun", "notarytool", "submit")]
    assert call[call.index("--apple-id") + 1] == "dev@example.org"
    assert call[call.index("--team-id") + 1] == "TEAM123456"
    assert call[call.index("--password") + 1] == "abcd-efgh-ijkl-mnop"
    assert "--keychain-profile" not in call
    build.index("xcrun", "stapler", "staple")


@pytest.mark.parametrize(
    "credentials",
    [
        {"MACOS_NOTARY_PROFILE": "rma-notary"},
        {"APPLE_ID": "a@example.org", "APPLE_TEAM_ID": "T", "APPLE_APP_PASSWORD": "p"},
    ],
)
def test_notarizing_an_ad_hoc_app_is_refused_before_anything_runs(
    workspace: Workspace, credentials: dict[str, str]
) -> None:
    build = workspace.run("--skip-freeze", **credentials)

    assert build.result.returncode != 0
    assert "MACOS_SIGN_IDENTITY" in build.result.stderr
    assert "ad-hoc" in build.result.stderr
    assert build.calls == [], "it signed or built before refusing"
    assert not build.dmg.exists()


def test_partial_apple_id_credentials_name_what_is_missing(workspace: Workspace) -> None:
    build = workspace.run("--skip-freeze", MACOS_SIGN_IDENTITY=IDENTITY, APPLE_ID="a@example.org")

    assert build.result.returncode != 0
    assert "missing: APPLE_TEAM_ID APPLE_APP_PASSWORD" in build.result.stderr
    assert build.calls == []


def test_a_rejected_notarization_fails_shows_apples_log_and_staples_nothing(
    workspace: Workspace,
) -> None:
    build = workspace.run(
        "--skip-freeze",
        MACOS_SIGN_IDENTITY=IDENTITY,
        MACOS_NOTARY_PROFILE="rma-notary",
        FAKE_NOTARY_STATUS="Invalid",
    )

    assert build.result.returncode != 0
    assert "status: Invalid" in build.result.stderr
    log = build.calls[build.index("xcrun", "notarytool", "log")]
    assert log[3] == "fake-submission" and "--keychain-profile" in log
    assert not [call for call in build.of("xcrun") if call[0] == "stapler"]


def test_without_skip_freeze_it_runs_pyinstaller_on_build_spec_from_the_repository(
    workspace: Workspace,
) -> None:
    shutil.rmtree(workspace.app)

    build = workspace.run(python=str(workspace.bin / "python"))

    assert build.result.returncode == 0, build.result.stderr
    [freeze] = [call for call in build.of("python") if call[:2] == ["-m", "PyInstaller"]]
    distpath = ["--distpath", str(workspace.dist)]
    assert freeze == ["-m", "PyInstaller", "--noconfirm", *distpath, "build.spec"]
    assert Path(f"{build.log}.cwd").read_text().strip() == str(REPO)
    assert build.calls[build.index("codesign", "--entitlements")][-1] == str(workspace.app)
    assert build.dmg.is_file()


def test_skip_freeze_without_a_built_app_says_so(workspace: Workspace) -> None:
    shutil.rmtree(workspace.app)

    build = workspace.run("--skip-freeze")

    assert build.result.returncode != 0
    assert f"{workspace.app} is missing" in build.result.stderr
    assert build.signed() == []


def _installer_scripts() -> list[Path]:
    """Every shell script under installers/: *.sh, and extensionless ones such as prerm."""
    scripts = []
    for path in sorted(INSTALLERS.rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb") as file:
            first_line = file.readline()
        if path.suffix == ".sh" or re.match(rb"#!\s*(\S*/)?(env\s+)?(ba)?sh\b", first_line):
            scripts.append(path)
    return scripts


def test_every_installer_shell_script_parses() -> None:
    scripts = _installer_scripts()
    assert SCRIPT in scripts
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_every_installer_shell_script_passes_shellcheck() -> None:
    # Debian's shellcheck package; .ci/run installs it. Each script's shebang picks the
    # dialect it is checked as (bash, or POSIX sh).
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck)"
    scripts = [str(script) for script in _installer_scripts()]
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
