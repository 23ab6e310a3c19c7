"""The ``Depends`` of the ``.deb``: the system libraries the frozen app needs but does not carry.

PyInstaller copies most shared libraries into the bundle. What it leaves out (the C library,
the GL/EGL and Wayland client libraries the GPU driver provides, ``libxcb``) must come from
the system. This reads every ELF file in the bundle (``readelf``), keeps the ``NEEDED``
libraries that the bundle does not ship, finds the Debian package of each on the build
machine (``dpkg -S``), and requires ``libc6`` at least at the newest ``GLIBC_`` symbol
version any bundled file uses, so the package refuses to install where the app could not run.

Usage: python3 debian_depends.py BUNDLE_DIR    (prints one line, the Depends value)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

_ELF_MAGIC = b"\x7fELF"
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(?P<name>[^\]]+)\]")
_GLIBC = re.compile(r"GLIBC_(?P<version>\d+(?:\.\d+)+)")
_C_LIBRARY_PACKAGES = {"libc6", "libc6-amd64", "libc6-i386"}


class DependsError(RuntimeError):
    """A library's package cannot be found; the message names it."""


def elf_files(bundle: Path) -> list[Path]:
    """Every ELF file under ``bundle`` (the program, extension modules, shared libraries)."""
    found = []
    for folder, _dirs, files in os.walk(bundle):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            with path.open("rb") as handle:
                if handle.read(4) == _ELF_MAGIC:
                    found.append(path)
    return sorted(found)


def _readelf(*args: str) -> str:
    return subprocess.run(
        ["readelf", "--wide", *args], capture_output=True, text=True, check=True
    ).stdout


def needed_from_system(bundle: Path) -> tuple[set[str], tuple[int, ...]]:
    """The sonames needed but not shipped, and the newest GLIBC symbol version used."""
    elves = elf_files(bundle)
    shipped = {path.name for path in bundle.rglob("*.so*")}
    needed: set[str] = set()
    newest: tuple[int, ...] = (0,)
    for path in elves:
        needed.update(match["name"] for match in _NEEDED.finditer(_readelf("--dynamic", str(path))))
        for match in _GLIBC.finditer(_readelf("--version-info", str(path))):
            newest = max(newest, tuple(int(part) for part in match["version"].split(".")))
    return needed - shipped, newest


# "libfoo1:amd64, libfoo1:i386: /usr/lib/x86_64-linux-gnu/libfoo.so.1"; other lines
# ("diversion by …", "local diversion from: …") are not package lines.
_SEARCH_LINE = re.compile(
    r"^(?P<packages>[a-z0-9][a-z0-9+.-]+(?::[a-z0-9]+)?(?:, [a-z0-9][a-z0-9+.-]+(?::[a-z0-9]+)?)*)"
    r": (?P<path>/.+)$"
)


def host_multiarch() -> str:
    """The host's multiarch folder name, e.g. ``x86_64-linux-gnu``."""
    done = subprocess.run(
        ["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True, check=False
    )
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    return str(sysconfig.get_config_var("MULTIARCH") or "")


def package_of(soname: str, multiarch: str) -> str:
    """The Debian package that installed ``soname`` for this machine's architecture."""
    done = subprocess.run(
        ["dpkg-query", "--search", f"*/{soname}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    candidates: list[tuple[bool, str]] = []
    for line in done.stdout.splitlines():
        match = _SEARCH_LINE.match(line)
        if match is None or Path(match["path"]).name != soname:
            continue
        # "libfoo1:amd64, libfoo1:i386" -> "libfoo1"
        package = match["packages"].split(",")[0].strip().split(":")[0]
        # The host architecture's copy, not a multilib one (libc6-i386 in /lib32).
        candidates.append((f"/{multiarch}/" in match["path"], package))
    if candidates:
        return max(candidates, key=lambda candidate: candidate[0])[1]
    raise DependsError(
        f"{soname} is needed by the bundle, but no installed Debian package provides it; "
        "install it from a package, or make PyInstaller bundle it"
    )


def depends(bundle: Path) -> str:
    """The ``Depends`` value for the bundle in ``bundle``."""
    sonames, glibc = needed_from_system(bundle)
    multiarch = host_multiarch()
    packages = {package_of(soname, multiarch) for soname in sonames}
    versioned = []
    for package in sorted(packages):
        if package in _C_LIBRARY_PACKAGES and glibc > (0,):
            versioned.append(f"{package} (>= {'.'.join(map(str, glibc))})")
        else:
            versioned.append(package)
    return ", ".join(versioned)


if __name__ == "__main__":
    try:
        print(depends(Path(sys.argv[1])))
    except (DependsError, subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"debian_depends.py: {exc}")
