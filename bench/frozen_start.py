"""Seconds from launch to the tray icon: the frozen app next to the pip-installed one.

Three subjects start in turn, in the same run, on the same Xvfb + trayer desktop
(``tests/fixtures/x_desktop.py``), ``--runs`` times each, interleaved so that the machine's
noise falls on all of them alike:

- ``empty``: ``bench/empty_tray_app.py``, the smallest PySide6 tray app, from the venv
  (the floor: Python and Qt starting, nothing of ours);
- ``pip``: ``.venv/bin/rma-desktop``, the app as ``pip install`` gives it;
- ``frozen``: the PyInstaller one-folder app (``--app``, default ``dist/rma-compute/rma-compute``;
  ``--build`` freezes it first into a temporary folder with ``build.spec``).

Each launch gets a fresh home holding the settings of a volunteer who joined and paused
(so the app starts straight into the tray, and no Docker engine or pool is needed), and
the time is taken from ``Popen`` to the icon's window appearing in trayer's panel. Then the
app is stopped (SIGTERM) and its icon must leave before the next launch.

**Cold** runs drop the kernel's page cache first (``/proc/sys/vm/drop_caches``, root
only), so every file is read from disk as after a reboot; **warm** runs follow at once,
as when the volunteer starts it a second time. Without root only warm runs are made, and
the table says so.

    .venv/bin/python bench/frozen_start.py --build --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.processes import volunteer_env, write_settings  # noqa: E402
from tests.fixtures.waiting import wait_until  # noqa: E402
from tests.fixtures.x_desktop import XDesktop, running_x_desktop, stop_process  # noqa: E402

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
BIN = Path(sys.executable).parent


def can_drop_caches() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> None:
    os.sync()
    DROP_CACHES.write_text("3\n")


def freeze(into: Path) -> Path:
    print(f"==> freezing the app with build.spec into {into}", flush=True)
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(into / "dist"),
            "--workpath",
            str(into / "build"),
            str(REPO / "build.spec"),
        ],
        check=True,
        cwd=REPO,
    )
    print(f"    built in {time.monotonic() - started:.0f} s", flush=True)
    return into / "dist" / "rma-compute" / "rma-compute"


def fresh_home(root: Path) -> dict[str, str]:
    home = Path(tempfile.mkdtemp(dir=root))
    write_settings(home / "config", {"joined": True, "contributing": False})
    return {
        **volunteer_env(home),
        # Nothing answers here: the app keeps trying in the background, as offline.
        "RMA_COORDINATOR_URL": "http://127.0.0.1:9",
        "DOCKER_HOST": f"unix://{home}/no-docker.sock",
    }


def launch_to_icon(desktop: XDesktop, command: list[str], env: dict[str, str]) -> float:
    before = {icon.id for icon in desktop.tray_icons()}
    started = time.monotonic()
    process = desktop.spawn(command, extra_env=env, cwd=REPO)
    try:
        desktop.wait_for_tray_icon(None, timeout=120, exclude_ids=before, process=process)
        return time.monotonic() - started
    finally:
        stop_process(process)
        with contextlib.suppress(TimeoutError):
            wait_until(
                lambda: not [i for i in desktop.tray_icons() if i.id not in before],
                10,
                "the icon to leave the tray",
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--app", type=Path, default=REPO / "dist" / "rma-compute" / "rma-compute")
    parser.add_argument("--build", action="store_true", help="freeze the app first (~1 min)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="frozen-start-") as tmp:
        root = Path(tmp)
        app = freeze(root / "freeze") if args.build else args.app
        if not app.is_file():
            raise SystemExit(f"no frozen app at {app}; pass --build or --app PATH")
        subjects = {
            "empty": [sys.executable, str(REPO / "bench" / "empty_tray_app.py")],
            "pip": [str(BIN / "rma-desktop")],
            "frozen": [str(app)],
        }
        cold = can_drop_caches()
        modes = ("cold", "warm") if cold else ("warm",)
        times: dict[tuple[str, str], list[float]] = {}
        with running_x_desktop(root / "desktop") as desktop:
            for run in range(1, args.runs + 1):
                for name, command in subjects.items():
                    for mode in modes:
                        if mode == "cold":
                            drop_caches()
                        seconds = launch_to_icon(desktop, command, fresh_home(root))
                        times.setdefault((name, mode), []).append(seconds)
                        print(f"run {run} {name:<7} {mode}: {seconds:.2f} s", flush=True)

    print()
    print(f"Launch to tray icon, median of {args.runs} runs (min-max), seconds")
    header = f"{'subject':<8}" + "".join(f"{mode:>22}" for mode in modes)
    header += "".join(f"{mode + ' / empty':>14}" for mode in modes)
    print(header)
    print("-" * len(header))
    medians = {key: statistics.median(values) for key, values in times.items()}
    for name in subjects:
        row = f"{name:<8}"
        for mode in modes:
            values = times[(name, mode)]
            row += f"{medians[(name, mode)]:>10.2f} ({min(values):.2f}-{max(values):.2f})"
        for mode in modes:
            row += f"{medians[(name, mode)] / medians[('empty', mode)]:>14.2f}"
        print(row)
    for mode in modes:
        ratio = medians[("frozen", mode)] / medians[("pip", mode)]
        print(f"frozen / pip, {mode}: {ratio:.2f}")
    if not cold:
        print("(not root: the page cache could not be dropped, so only warm starts were timed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
