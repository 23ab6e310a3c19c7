"""The Linux installers, built and installed for real.

The module builds the one-folder app with PyInstaller and the ``.deb`` and tarball with
``installers/linux/build.sh`` (once, about two minutes), preset with a pool address on a
free port. Then, in order:

1. the ``.deb``'s metadata, files and desktop entry;
2. ``dpkg -i`` on this machine (CI's machine is a throwaway; it needs root or ``sudo -n``),
   and the installed ``rma-desktop --self-test`` on an X desktop with a tray, against a
   real coordinator at the built-in address;
3. the installed app on that desktop: its tray icon (screenshot), joining the pool at the
   built-in address and running the pool's container on a real Docker engine, then
   ``rma-desktop --quit`` (what the Windows uninstaller runs) stopping app and container;
4. removing the package while the app contributes: ``prerm`` stops the app, which stops
   its containers, and the files are gone;
5. the portable tarball: unpacked into a folder with spaces in its name, its self-test, and
   ``add-to-menu.sh`` writing a valid desktop entry that starts exactly that program.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from desktop_app import __version__
from desktop_app.agent.autostart.command import parse_desktop_exec_value
from tests.e2e.processes import (
    CoordinatorProcess,
    Process,
    volunteer_env,
    web_service_coordinator,
    write_settings,
)
from tests.fixtures.container_images import LocalRegistry
from tests.fixtures.coordinator import free_port, wait_until
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.x_desktop import TrayIcon, Window, XDesktop

BUILD_TIMEOUT_S = 900
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.docker,
    pytest.mark.desktop,
    pytest.mark.installer,
    # The first test waits for the build (about two minutes here, more on a slow machine).
    pytest.mark.timeout(BUILD_TIMEOUT_S + 180),
]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
PACKAGE = "rma-compute"
INSTALLED_APP = Path("/opt/rma-compute/rma-compute")
COMMAND = Path("/usr/bin/rma-desktop")
APP_CLASS = "rma-desktop"
SERVICE = "web"
MANAGED = {"label": ["org.rma.managed=true", f"org.rma.service={SERVICE}"]}
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
MIN_WINDOW_WIDTH = 200


@dataclass(frozen=True)
class Installers:
    deb: Path
    tarball: Path
    pool_port: int
    build_log: str

    @property
    def pool_url(self) -> str:
        return f"http://127.0.0.1:{self.pool_port}"


def as_root(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command as root: directly in CI (root), else through passwordless sudo."""
    command = list(args) if os.geteuid() == 0 else ["sudo", "-n", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} failed ({done.returncode}); installing a package needs root or "
        f"passwordless sudo:\n{done.stdout}\n{done.stderr}"
    )
    return done


def package_status() -> str:
    """dpkg's state of the package: ``installed``, ``not-installed``, ``half-configured``…"""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "not-installed"


def package_installed() -> bool:
    return package_status() == "installed"


@pytest.fixture(scope="module")
def installers(tmp_path_factory: pytest.TempPathFactory) -> Installers:
    """Freeze the app and build the .deb and the tarball, preset with a free port's address."""
    root = tmp_path_factory.mktemp("installers")
    port = free_port()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "RMA_BUILD_DIR": str(root),
        "RMA_BUILD_COORDINATOR_URL": f"http://127.0.0.1:{port}",
    }
    done = subprocess.run(
        ["bash", str(REPO / "installers" / "linux" / "build.sh"), "--out", str(root / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    debs = list((root / "out").glob("*.deb"))
    tarballs = list((root / "out").glob("*.tar.gz"))
    assert len(debs) == 1 and len(tarballs) == 1, log
    return Installers(debs[0], tarballs[0], port, log)


@pytest.fixture(scope="module")
def installed(installers: Installers) -> Iterator[Installers]:
    """The .deb installed on this machine with dpkg; purged afterwards, even half-installed."""
    assert package_status() == "not-installed", f"{PACKAGE} is on this machine; purge it first"
    try:
        as_root("dpkg", "-i", str(installers.deb))
        yield installers
    finally:
        if package_status() != "not-installed":
            as_root("dpkg", "--purge", PACKAGE)


def field(deb: Path, name: str) -> str:
    done = subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def desktop_keys(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def pool(tmp_path: Path, installers: Installers, registry: LocalRegistry) -> CoordinatorProcess:
    """A coordinator with the web service, at the address the app was built with."""
    return web_service_coordinator(tmp_path, registry.image, SERVICE, port=installers.pool_port)


def managed_containers(engine: DockerEngine) -> list[Any]:
    client = engine.client()
    try:
        return list(client.containers.list(all=True, filters=MANAGED, ignore_removed=True))
    finally:
        client.close()


def service_running(coordinator: CoordinatorProcess) -> bool:
    for worker in coordinator.workers().values():
        for container in worker.get("containers", []):
            if container["service"] == SERVICE and container["state"] == "running":
                return True
    return False


@dataclass
class Contributing:
    coordinator: CoordinatorProcess
    home: Path
    app: subprocess.Popen[bytes]
    icon: TrayIcon

    def quit(self, desktop: XDesktop, engine: DockerEngine) -> subprocess.CompletedProcess[str]:
        """``rma-desktop --quit``, as an uninstaller runs it."""
        return subprocess.run(
            [str(COMMAND), "--quit"],
            capture_output=True,
            text=True,
            env={**desktop.env, **volunteer_env(self.home), "DOCKER_HOST": engine.host},
            timeout=150,
            check=False,
        )


def contributing_app(
    tmp_path: Path,
    installers: Installers,
    registry: LocalRegistry,
    engine: DockerEngine,
    desktop: XDesktop,
    processes: list[Process],
) -> Contributing:
    """The installed app of a volunteer who joined, running the pool's service in the tray.

    It is started as the desktop entry would, without ``RMA_COORDINATOR_URL``: the pool's
    address must come from the build.
    """
    coordinator = pool(tmp_path, installers, registry)
    processes.append(coordinator.start())
    home = tmp_path / "home"
    write_settings(home / "config", {"joined": True, "rules": {"busy_pause": False}})
    env = {**volunteer_env(home), "DOCKER_HOST": engine.host}
    app = desktop.spawn([str(COMMAND), "--credential-store", "file"], extra_env=env)
    icon = desktop.wait_for_tray_icon(APP_CLASS, timeout=60, process=app)
    wait_until(
        lambda: service_running(coordinator),
        120,
        f"the installed app to run the pool's service; it said:\n{desktop.log_tail(app, 60)}",
    )
    assert len(managed_containers(engine)) == 1
    return Contributing(coordinator, home, app, icon)


# -- 1. the package ------------------------------------------------------------------------------


def test_deb_metadata_files_and_desktop_entry(installers: Installers, tmp_path: Path) -> None:
    deb = installers.deb
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert deb.name == f"{PACKAGE}_{__version__}_{arch}.deb"
    assert field(deb, "Package") == PACKAGE
    assert field(deb, "Version") == __version__
    assert field(deb, "Architecture") == arch
    assert field(deb, "Maintainer")
    assert field(deb, "Description").startswith("give this computer's spare power")
    depends = field(deb, "Depends")
    assert depends.startswith("libc6 (>= 2."), depends
    assert "libxcb1" in depends and "libgl1" in depends, depends
    assert "docker.io" in field(deb, "Recommends")
    assert int(field(deb, "Installed-Size")) > 50_000  # KiB: Qt and Python are in it

    # Every declared dependency is installable here (the test machine is Debian too).
    simulate = subprocess.run(
        ["apt-get", "install", "--simulate", "--no-install-recommends", str(deb)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr

    unpacked = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "--raw-extract", str(deb), str(unpacked)], check=True)
    program = unpacked / "opt" / "rma-compute" / "rma-compute"
    assert program.is_file() and os.access(program, os.X_OK)
    link = unpacked / "usr" / "bin" / "rma-desktop"
    assert link.is_symlink() and os.readlink(link) == "../../opt/rma-compute/rma-compute"
    config = json.loads((program.parent / "_internal" / "build-config.json").read_text())
    assert config["coordinator_url"] == installers.pool_url
    licenses = program.parent / "_internal" / "licenses"
    assert {"LGPL-3.0.txt", "GPL-3.0.txt", "Python-LICENSE.txt", "README.txt"} <= {
        path.name for path in licenses.iterdir()
    }
    for size in ICON_SIZES:
        icon = unpacked / f"usr/share/icons/hicolor/{size}x{size}/apps/rma-desktop.png"
        assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", icon
    assert (unpacked / "usr/share/icons/hicolor/scalable/apps/rma-desktop.svg").is_file()
    assert "License: MIT" in (unpacked / "usr/share/doc/rma-compute/copyright").read_text()
    assert not (unpacked / "etc").exists()  # start at login is the volunteer's choice
    prerm = unpacked / "DEBIAN" / "prerm"
    assert os.access(prerm, os.X_OK)
    subprocess.run(["sh", "-n", str(prerm)], check=True)

    entry = unpacked / "usr/share/applications/rma-desktop.desktop"
    validate = subprocess.run(
        ["desktop-file-validate", str(entry)], capture_output=True, text=True, check=False
    )
    assert validate.returncode == 0 and not validate.stdout.strip(), validate.stdout
    keys = desktop_keys(entry.read_text())
    assert keys["Type"] == "Application" and keys["Name"] == "RMA Compute"
    assert parse_desktop_exec_value(keys["Exec"]) == ["rma-desktop", "--show"]
    assert keys["Icon"] == "rma-desktop" and keys["Terminal"] == "false"
    # The window manager class the app's windows have, so docks group them with the entry.
    assert keys["StartupWMClass"] == APP_CLASS


# -- 2. installed, and its self-test ------------------------------------------------------------


def test_installed_self_test_on_a_desktop(
    installed: Installers,
    x_desktop: XDesktop,
    local_registry: LocalRegistry,
    docker_engine: DockerEngine,
    processes: list[Process],
    tmp_path: Path,
) -> None:
    assert INSTALLED_APP.is_file() and COMMAND.resolve() == INSTALLED_APP
    entry = Path("/usr/share/applications/rma-desktop.desktop")
    assert entry.is_file()
    processes.append(pool(tmp_path, installed, local_registry).start())

    report = tmp_path / "report.txt"
    env = {**volunteer_env(tmp_path / "home"), "DOCKER_HOST": docker_engine.host}
    done = subprocess.run(
        [str(COMMAND), "--self-test", "--report", str(report)],
        capture_output=True,
        text=True,
        env={**x_desktop.env, **env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout
    assert f"{__version__} (installed app, built " in printed
    assert f"Program:         {INSTALLED_APP}" in printed
    assert "Bundled parts:   all " in printed and "MISSING" not in printed
    assert "platform xcb" in printed
    assert "System tray:     available" in printed
    assert "Processor:" in printed and "Memory:" in printed
    assert "Docker:          running (version " in printed
    assert f"Pool:            {installed.pool_url} (built into this app)" in printed
    assert f"Pool answers:    yes, coordinator {__version__}" in printed
    assert report.read_text() in printed + "\n"
    saved = tmp_path / "home" / "state" / "RMA Compute" / "log" / "self-test.txt"
    assert saved.read_text() == report.read_text()

    # First start, as from the menu: the first-run window offers the built-in pool.
    app = x_desktop.spawn([str(COMMAND), "--show"], extra_env=env)
    x_desktop.wait_for_tray_icon(APP_CLASS, timeout=60, process=app)

    def main_window() -> Window | None:
        found = x_desktop.find_windows("^RMA Compute$", wm_class=APP_CLASS)
        return next((window for window in found if window.width > MIN_WINDOW_WIDTH), None)

    window = wait_until(main_window, 30, "the first-run window")
    wait_until(
        lambda: "Checked this computer" in x_desktop.log_tail(app, 200), 30, "the first-run check"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    x_desktop.screenshot(
        SCREENSHOTS / "installed-first-run.png",
        crop=(window.x, window.y, window.width, window.height),
    )
    app.terminate()
    assert app.wait(timeout=30) == 0, x_desktop.log_tail(app, 60)


# -- 3. the installed app in the tray, joining at the built-in address, and --quit -----------------


def test_installed_app_contributes_and_quits_for_an_uninstaller(
    installed: Installers,
    x_desktop: XDesktop,
    local_registry: LocalRegistry,
    docker_engine: DockerEngine,
    processes: list[Process],
    tmp_path: Path,
) -> None:
    running = contributing_app(
        tmp_path, installed, local_registry, docker_engine, x_desktop, processes
    )
    app, icon = running.app, running.icon
    time.sleep(1)  # the icon turns green with the snapshot that follows the container's start
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    left = max(0, icon.x - 40)
    x_desktop.screenshot(
        SCREENSHOTS / "installed-tray.png",
        crop=(left, 0, icon.x + icon.width + 10 - left, icon.y + icon.height + 10),
    )

    quit_ = running.quit(x_desktop, docker_engine)
    assert quit_.returncode == 0, quit_.stdout + quit_.stderr
    assert "Asked RMA Compute to stop the pool's containers and quit" in quit_.stdout
    assert "RMA Compute has quit." in quit_.stdout
    assert app.wait(timeout=10) == 0, x_desktop.log_tail(app, 60)
    assert managed_containers(docker_engine) == []
    wait_until(lambda: running.coordinator.workers() == {}, 15, "the worker to leave the pool")

    # Nothing running: --quit still answers 0 and says what it found.
    again = running.quit(x_desktop, docker_engine)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "None of the pool's containers were left running." in again.stdout


# -- 4. removing the package while the app contributes -----------------------------------------


def test_removing_the_package_stops_the_app_and_its_containers(
    installed: Installers,
    x_desktop: XDesktop,
    local_registry: LocalRegistry,
    docker_engine: DockerEngine,
    processes: list[Process],
    tmp_path: Path,
) -> None:
    app = contributing_app(
        tmp_path, installed, local_registry, docker_engine, x_desktop, processes
    ).app

    removal = as_root("dpkg", "--remove", PACKAGE)
    assert "Stopping RMA Compute" in removal.stdout, removal.stdout
    assert app.wait(timeout=5) == 0, x_desktop.log_tail(app, 60)
    assert managed_containers(docker_engine) == []
    assert not package_installed()
    assert not INSTALLED_APP.exists() and not COMMAND.exists()
    assert not Path("/usr/share/applications/rma-desktop.desktop").exists()


# -- 5. the portable tarball -------------------------------------------------------------------


def test_portable_tarball_runs_where_it_is_unpacked(installers: Installers, tmp_path: Path) -> None:
    folder = tmp_path / "My Apps $HOME"
    folder.mkdir()
    with tarfile.open(installers.tarball) as archive:
        names = archive.getnames()
        top = {name.split("/")[0] for name in names}
        assert top == {installers.tarball.name.removesuffix(".tar.gz")}
        archive.extractall(folder, filter="data")
    unpacked = folder / top.pop()
    program = unpacked / "rma-compute"
    assert {"README.txt", "COPYRIGHT", "add-to-menu.sh", "share", "_internal"} <= {
        path.name for path in unpacked.iterdir()
    }

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RMA_")},
        **volunteer_env(tmp_path / "home"),
        "QT_QPA_PLATFORM": "offscreen",
    }
    done = subprocess.run(
        [str(program), "--self-test"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Program:         {program}" in done.stdout
    assert f"Pool:            {installers.pool_url} (built into this app)" in done.stdout

    added = subprocess.run(
        [str(unpacked / "add-to-menu.sh")], capture_output=True, text=True, env=env, check=False
    )
    assert added.returncode == 0, added.stdout + added.stderr
    entry = tmp_path / "home" / "data" / "applications" / "rma-desktop.desktop"
    keys = desktop_keys(entry.read_text())
    assert parse_desktop_exec_value(keys["Exec"]) == [str(program), "--show"]
    assert keys["TryExec"] == str(program).replace("\\", "\\\\")
    icon = tmp_path / "home" / "data" / "icons" / "hicolor" / "48x48" / "apps" / "rma-desktop.png"
    assert icon.is_file()
    removed = subprocess.run(
        [str(unpacked / "add-to-menu.sh"), "--remove"], env=env, capture_output=True, check=False
    )
    assert removed.returncode == 0 and not entry.exists() and not icon.exists()
