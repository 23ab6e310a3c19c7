"""installers/linux/debian_depends.py: the .deb's Depends, from real ELF files and dpkg."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "installers" / "linux" / "debian_depends.py"
spec = importlib.util.spec_from_file_location("debian_depends", SCRIPT)
assert spec is not None and spec.loader is not None
debian_depends = importlib.util.module_from_spec(spec)
spec.loader.exec_module(debian_depends)


def test_a_program_that_needs_only_the_c_library(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy("/usr/bin/true", bundle / "true")
    (bundle / "notes.txt").write_text("not an ELF file")
    assert debian_depends.elf_files(bundle) == [bundle / "true"]
    depends = debian_depends.depends(bundle)
    assert depends.startswith("libc6 (>= 2."), depends
    assert depends.count(",") == 0, depends


def test_a_library_the_bundle_ships_is_not_a_dependency(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy("/usr/bin/true", bundle / "true")
    needed, _ = debian_depends.needed_from_system(bundle)
    assert "libc.so.6" in needed
    (bundle / "libc.so.6").write_bytes(Path("/lib/x86_64-linux-gnu/libc.so.6").read_bytes()[:64])
    needed, _ = debian_depends.needed_from_system(bundle)
    assert "libc.so.6" not in needed


def fake_dpkg_query(tmp_path: Path, output: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "dpkg-query"
    tool.write_text(f"#!/bin/sh\ncat <<'OUT'\n{output}\nOUT\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_diversions_and_multilib_copies_are_not_taken_for_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dpkg_query(
        tmp_path,
        "local diversion from: /usr/lib/x86_64-linux-gnu/libfoo.so.1\n"
        "diversion by libfoo-shim from: /usr/lib/x86_64-linux-gnu/libfoo.so.1\n"
        "libfoo1-i386: /usr/lib32/libfoo.so.1\n"
        "libfoo1:amd64, libfoo1:i386: /usr/lib/x86_64-linux-gnu/libfoo.so.1",
        monkeypatch,
    )
    assert debian_depends.package_of("libfoo.so.1", "x86_64-linux-gnu") == "libfoo1"


def test_a_library_no_package_provides_stops_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dpkg_query(
        tmp_path, "dpkg-query: no path found matching pattern */libnope.so.1", monkeypatch
    )
    needed = r"libnope\.so\.1 is needed by the bundle"
    with pytest.raises(debian_depends.DependsError, match=needed):
        debian_depends.package_of("libnope.so.1", "x86_64-linux-gnu")
