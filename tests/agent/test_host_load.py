"""Other programs' CPU use: the arithmetic, the pool meters on fake trees, and a real container."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from desktop_app.agent.containers import ResourceLimits
from desktop_app.agent.host_load import (
    DOCKER_ENGINE_PROCESSES,
    DOCKER_VM_PROCESSES,
    CgroupPoolCpuMeter,
    OtherProgramsCpu,
    ProcessPoolCpuMeter,
    SumOfPoolCpuMeters,
    create_pool_cpu_meter,
)
from tests.agent.containers.test_runtime_docker import httpd, is_state, running_harness
from tests.fixtures.container_images import LocalRegistry
from tests.fixtures.docker_engine import DockerEngine

BUSYBOX = "/bin/busybox"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- OtherProgramsCpu --------------------------------------------------------------------


class LinuxTimes(NamedTuple):
    user: float = 0.0
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    steal: float = 0.0
    guest: float = 0.0
    guest_nice: float = 0.0


class WindowsTimes(NamedTuple):
    user: float
    system: float
    idle: float
    interrupt: float
    dpc: float


class Host:
    """Host CPU times the test moves forward by hand, on a two-core machine."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.times = LinuxTimes(user=500.0, system=100.0, idle=1300.0, iowait=10.0)

    def cpu_times(self) -> LinuxTimes:
        return self.times

    def advance(self, seconds: float, **busy: float) -> None:
        """``seconds`` of wall time on 2 cores; ``busy`` says where CPU seconds went, the
        rest of the 2 x ``seconds`` is idle."""
        self.clock.now += seconds
        spent = {kind: getattr(self.times, kind) + value for kind, value in busy.items()}
        idle = 2 * seconds - sum(v for k, v in busy.items() if k not in ("guest", "guest_nice"))
        self.times = self.times._replace(idle=self.times.idle + idle, **spent)


class FakePool:
    def __init__(self, seconds: float | None = 0.0) -> None:
        self.seconds = seconds

    def cpu_seconds(self) -> float | None:
        return self.seconds


def sampler(host: Host, pool: FakePool | None) -> OtherProgramsCpu:
    return OtherProgramsCpu(pool, cpu_times=host.cpu_times, clock=host.clock, cpu_count=lambda: 2)


def test_first_sample_is_none_then_the_pools_use_is_left_out() -> None:
    host, pool = Host(), FakePool(50.0)
    other = sampler(host, pool)
    assert other.sample() is None
    host.advance(1.0, user=1.0, system=0.2)  # 1.2 of 2 CPU seconds busy
    pool.seconds = 50.5  # of which the pool's containers used 0.5
    assert other.sample() == pytest.approx(35.0)
    host.advance(1.0, user=0.4)
    pool.seconds = 50.9
    assert other.sample() == pytest.approx(0.0)


def test_without_a_pool_all_busy_time_is_other_programs() -> None:
    host = Host()
    other = sampler(host, None)
    other.sample()
    host.advance(2.0, user=2.0, system=0.4)
    assert other.sample() == pytest.approx(60.0)


def test_iowait_and_idle_are_not_busy_but_steal_is() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    host.advance(1.0, iowait=0.5, steal=0.5)
    assert other.sample() == pytest.approx(25.0)


def test_guest_time_is_not_counted_twice() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    # Linux counts a VM's time in user as well as in guest.
    host.advance(1.0, user=1.0, guest=1.0)
    assert other.sample() == pytest.approx(50.0)


def test_windows_fields() -> None:
    times = [
        WindowsTimes(user=10.0, system=5.0, idle=100.0, interrupt=1.0, dpc=1.0),
        WindowsTimes(user=11.0, system=5.5, idle=102.0, interrupt=1.25, dpc=1.25),
    ]
    clock = Clock()
    other = OtherProgramsCpu(
        FakePool(), cpu_times=lambda: times[0], clock=clock, cpu_count=lambda: 2
    )
    other.sample()
    times.pop(0)
    clock.now += 2.0
    assert other.sample() == pytest.approx(2.0 / 4.0 * 100)


def test_pool_use_above_the_busy_time_clamps_at_zero() -> None:
    host, pool = Host(), FakePool(0.0)
    other = sampler(host, pool)
    other.sample()
    host.advance(1.0, user=0.5)
    pool.seconds = 0.7  # read a moment later than the host's times
    assert other.sample() == 0.0


def test_a_fully_busy_host_without_pool_is_100() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    host.advance(1.0, user=1.5, system=0.5)
    assert other.sample() == pytest.approx(100.0)


def test_counters_going_back_start_afresh() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    host.clock.now += 2.0
    host.times = LinuxTimes(user=1.0, system=1.0, idle=10.0)  # counters restarted
    assert other.sample() is None
    host.advance(1.0, user=1.0)
    assert other.sample() == pytest.approx(50.0)


def test_one_counter_stepping_back_a_little_is_ignored() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    host.advance(1.0, user=1.0)
    host.times = host.times._replace(iowait=host.times.iowait - 0.01)
    assert other.sample() == pytest.approx(50.0, abs=0.5)


def test_a_jump_beyond_what_the_cores_can_do_starts_afresh() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    host.clock.now += 2.0
    host.times = host.times._replace(idle=host.times.idle + 3600.0)  # resumed from sleep
    assert other.sample() is None
    host.advance(1.0, user=0.5)
    assert other.sample() == pytest.approx(25.0)


def test_too_soon_to_tell_keeps_the_span_going() -> None:
    host = Host()
    other = sampler(host, FakePool())
    other.sample()
    assert other.sample() is None  # no CPU time passed
    host.advance(1.0, user=1.0)
    assert other.sample() == pytest.approx(50.0)


def test_unknown_pool_use_is_unknown_until_two_readings_of_it() -> None:
    host, pool = Host(), FakePool(1.0)
    other = sampler(host, pool)
    other.sample()
    host.advance(1.0, user=1.0)
    pool.seconds = None
    assert other.sample() is None
    host.advance(1.0, user=1.0)
    pool.seconds = 2.0
    assert other.sample() is None  # no earlier reading of the pool to compare with
    host.advance(1.0, user=1.0)
    pool.seconds = 2.5
    assert other.sample() == pytest.approx(25.0)


def test_a_pool_total_going_back_starts_afresh() -> None:
    host, pool = Host(), FakePool(10.0)
    other = sampler(host, pool)
    other.sample()
    host.advance(1.0, user=1.0)
    pool.seconds = 3.0
    assert other.sample() is None
    host.advance(1.0, user=1.0)
    pool.seconds = 3.4
    assert other.sample() == pytest.approx(30.0)


def test_the_real_host_samples_between_0_and_100() -> None:
    other = OtherProgramsCpu(None)
    assert other.sample() is None
    deadline = time.monotonic() + 5
    value = None
    while value is None and time.monotonic() < deadline:
        time.sleep(0.05)  # /proc/stat moves in 10 ms ticks
        value = other.sample()
    assert value is not None
    assert 0.0 <= value <= 100.0


# -- CgroupPoolCpuMeter on fake trees ----------------------------------------------------


def container_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


class Containers:
    """What the runtime says runs."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)

    def __call__(self) -> list[str]:
        return list(self.ids)


def write_v2(root: Path, parent: str, seconds: float) -> Path:
    folder = root / parent
    folder.mkdir(parents=True, exist_ok=True)
    usec = round(seconds * 1e6)
    (folder / "cpu.stat").write_text(
        f"usage_usec {usec}\nuser_usec {usec // 2}\nsystem_usec {usec - usec // 2}\n"
        "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
    )
    return folder


def write_v1(root: Path, parent: str, seconds: float) -> Path:
    folder = root / parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpuacct.usage").write_text(f"{round(seconds * 1e9)}\n")
    return folder


def meter(tmp_path: Path, containers: Containers, clock: Clock | None = None) -> CgroupPoolCpuMeter:
    (tmp_path / "proc").mkdir(exist_ok=True)
    return CgroupPoolCpuMeter(
        containers,
        cgroup_root=tmp_path / "cgroup",
        proc_root=tmp_path / "proc",
        clock=clock or Clock(),
        cpu_count=lambda: 4,
    )


@pytest.mark.parametrize(
    ("write", "parent"),
    [
        (write_v2, "system.slice/docker-{id}.scope"),
        (write_v2, "docker/{id}"),
        (write_v1, "cpuacct/docker/{id}"),
        (write_v1, "cpuacct/system.slice/docker-{id}.scope"),
        (write_v1, "cpu,cpuacct/docker/{id}"),
    ],
    ids=["v2-systemd", "v2-cgroupfs", "v1-cgroupfs", "v1-systemd", "v1-cpu,cpuacct"],
)
def test_reads_each_layout(
    tmp_path: Path, write: Callable[[Path, str, float], Path], parent: str
) -> None:
    cid = container_id()
    cgroup = tmp_path / "cgroup"
    write(cgroup, parent.format(id=cid), 100.0)
    clock = Clock()
    pool = meter(tmp_path, Containers(cid), clock)
    assert pool.cpu_seconds() == 0.0  # a baseline: its past is not this span's
    clock.now += 2.0
    write(cgroup, parent.format(id=cid), 101.5)
    assert pool.cpu_seconds() == pytest.approx(1.5)


def test_containers_appearing_and_disappearing_never_make_the_total_go_down(
    tmp_path: Path,
) -> None:
    cgroup = tmp_path / "cgroup"
    first, second = container_id(), container_id()
    containers = Containers(first)
    clock = Clock()
    pool = meter(tmp_path, containers, clock)
    write_v2(cgroup, f"system.slice/docker-{first}.scope", 10.0)
    assert pool.cpu_seconds() == 0.0

    # A container started since the last call: all its use is this span's.
    clock.now += 2.0
    write_v2(cgroup, f"system.slice/docker-{first}.scope", 11.0)
    second_folder = write_v2(cgroup, f"system.slice/docker-{second}.scope", 0.75)
    containers.ids.append(second)
    assert pool.cpu_seconds() == pytest.approx(1.75)

    # The second one stopped; the runtime has not noticed yet.
    clock.now += 2.0
    (second_folder / "cpu.stat").unlink()
    second_folder.rmdir()
    write_v2(cgroup, f"system.slice/docker-{first}.scope", 12.0)
    assert pool.cpu_seconds() == pytest.approx(2.75)

    # Now it has; and the first one restarted under the same id, in a fresh cgroup.
    clock.now += 2.0
    containers.ids.remove(second)
    write_v2(cgroup, f"system.slice/docker-{first}.scope", 0.5)
    assert pool.cpu_seconds() == pytest.approx(3.25)

    # Every container gone: the total stays.
    clock.now += 2.0
    containers.ids.clear()
    assert pool.cpu_seconds() == pytest.approx(3.25)


def test_a_container_that_comes_back_under_the_same_id_is_counted_again(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cid = container_id()
    clock = Clock()
    pool = meter(tmp_path, Containers(cid), clock)
    folder = write_v1(cgroup, f"cpuacct/docker/{cid}", 5.0)
    assert pool.cpu_seconds() == 0.0
    clock.now += 2.0
    (folder / "cpuacct.usage").unlink()
    folder.rmdir()
    assert pool.cpu_seconds() == 0.0  # stopped, not unknown
    clock.now += 2.0
    write_v1(cgroup, f"cpuacct/docker/{cid}", 0.25)
    assert pool.cpu_seconds() == pytest.approx(0.25)


def test_an_adopted_container_with_a_long_past_is_a_baseline(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cid = container_id()
    containers = Containers()
    clock = Clock()
    pool = meter(tmp_path, containers, clock)
    assert pool.cpu_seconds() == 0.0
    clock.now += 2.0
    write_v2(cgroup, f"docker/{cid}", 5000.0)  # more than 4 cores could do in 2 s
    containers.ids.append(cid)
    assert pool.cpu_seconds() is None
    clock.now += 2.0
    write_v2(cgroup, f"docker/{cid}", 5001.0)
    assert pool.cpu_seconds() == pytest.approx(1.0)


def test_a_container_not_found_is_unknown(tmp_path: Path) -> None:
    pool = meter(tmp_path, Containers(container_id()))
    assert pool.cpu_seconds() is None


def test_ids_that_are_not_docker_ids_are_ignored(tmp_path: Path) -> None:
    write_v2(tmp_path / "cgroup", "docker/abc", 1.0)
    pool = meter(tmp_path, Containers("abc", "../../etc", ""))
    assert pool.cpu_seconds() == 0.0


def test_an_unreadable_counter_is_unknown(tmp_path: Path) -> None:
    cid = container_id()
    folder = tmp_path / "cgroup" / "docker" / cid
    folder.mkdir(parents=True)
    (folder / "cpu.stat").write_text("nr_periods 0\n")
    pool = meter(tmp_path, Containers(cid))
    assert pool.cpu_seconds() is None


def write_proc(tmp_path: Path, pid: int, cgroup: str) -> None:
    folder = tmp_path / "proc" / str(pid)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cgroup").write_text(cgroup)


def test_a_container_elsewhere_is_found_through_its_processes(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    rootless, nested = container_id(), container_id()
    rootless_path = f"user.slice/user-1000.slice/user@1000.service/docker-{rootless}.scope"
    write_v2(cgroup, rootless_path, 3.0)
    write_v1(cgroup, f"cpu,cpuacct/outer/docker/{nested}", 7.0)
    (tmp_path / "proc" / "self").mkdir(parents=True)
    write_proc(tmp_path, 1, "0::/init.scope\n")
    write_proc(tmp_path, 4242, f"0::/{rootless_path}\n")
    write_proc(
        tmp_path,
        5151,
        f"12:pids:/outer/docker/{nested}\n3:cpu,cpuacct:/outer/docker/{nested}\n0::/\n",
    )
    clock = Clock()
    pool = meter(tmp_path, Containers(rootless, nested), clock)
    assert pool.cpu_seconds() == 0.0
    clock.now += 2.0
    write_v2(cgroup, rootless_path, 3.5)
    write_v1(cgroup, f"cpu,cpuacct/outer/docker/{nested}", 7.25)
    assert pool.cpu_seconds() == pytest.approx(0.75)


def test_processes_are_searched_at_most_every_30_s(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cid = container_id()
    clock = Clock()
    pool = meter(tmp_path, Containers(cid), clock)
    assert pool.cpu_seconds() is None  # searched, not found
    path = f"custom/{cid}"
    write_v2(cgroup, path, 1.0)
    write_proc(tmp_path, 77, f"0::/{path}\n")
    clock.now += 10.0
    assert pool.cpu_seconds() is None  # not searched again yet
    clock.now += 20.0
    assert pool.cpu_seconds() == pytest.approx(1.0)  # found; small enough to be this span's


# -- ProcessPoolCpuMeter -----------------------------------------------------------------


class Times(NamedTuple):
    user: float
    system: float


@dataclass(eq=False)
class FakeProcess:
    process_name: str
    user: float = 0.0
    system: float = 0.0
    gone: bool = False
    denied: bool = False

    def name(self) -> str:
        if self.gone:
            raise psutil.NoSuchProcess(1)
        return self.process_name

    def cpu_times(self) -> Times:
        if self.gone:
            raise psutil.NoSuchProcess(1)
        if self.denied:
            raise psutil.AccessDenied(1)
        return Times(self.user, self.system)


class Processes:
    def __init__(self, *processes: FakeProcess) -> None:
        self.processes = list(processes)
        self.listings = 0

    def __call__(self) -> list[FakeProcess]:
        self.listings += 1
        return list(self.processes)


def test_counts_the_vm_processes_only() -> None:
    vm = FakeProcess("VmmemWSL", user=100.0, system=20.0)
    hyperkit = FakeProcess("com.docker.hyperkit", user=5.0)
    browser = FakeProcess("firefox.exe", user=999.0)
    vanished = FakeProcess("vmmem", gone=True)
    processes = Processes(vm, hyperkit, browser, vanished)
    clock = Clock()
    pool = ProcessPoolCpuMeter(process_iter=processes, clock=clock)
    assert pool.cpu_seconds() == 0.0
    vm.user, vm.system, hyperkit.user, browser.user = 101.0, 20.5, 5.25, 2000.0
    clock.now += 2.0
    assert pool.cpu_seconds() == pytest.approx(1.75)
    assert processes.listings == 1


def test_names_compare_without_case_or_exe_and_truncated_on_macos() -> None:
    pool = ProcessPoolCpuMeter()
    assert all(pool._is_vm(name) for name in DOCKER_VM_PROCESSES)
    assert pool._is_vm("VMMEM.EXE")
    assert pool._is_vm("com.apple.Virtu")  # macOS's 15-character p_comm
    assert not pool._is_vm("com.apple")
    assert not pool._is_vm("qemu-system-arm")


def test_a_vm_that_stopped_keeps_its_use_and_new_ones_are_found_on_the_next_scan() -> None:
    vm = FakeProcess("vmmem", user=10.0)
    processes = Processes(vm)
    clock = Clock()
    pool = ProcessPoolCpuMeter(process_iter=processes, clock=clock)
    assert pool.cpu_seconds() == 0.0
    clock.now += 2.0
    vm.user = 12.0
    assert pool.cpu_seconds() == pytest.approx(2.0)

    vm.gone = True
    restarted = FakeProcess("vmmem", user=1.0)
    processes.processes = [vm, restarted]
    clock.now += 2.0
    assert pool.cpu_seconds() == pytest.approx(2.0)
    assert processes.listings == 1

    clock.now += 30.0
    assert pool.cpu_seconds() == pytest.approx(2.0)  # found: a baseline
    restarted.user = 1.5
    clock.now += 2.0
    assert pool.cpu_seconds() == pytest.approx(2.5)
    assert processes.listings == 2


def test_a_vm_process_whose_times_are_denied_is_unknown() -> None:
    pool = ProcessPoolCpuMeter(process_iter=Processes(FakeProcess("vmmem", denied=True)))
    assert pool.cpu_seconds() is None


def test_no_docker_vm_means_the_pool_uses_nothing() -> None:
    pool = ProcessPoolCpuMeter(process_iter=Processes(FakeProcess("explorer.exe")))
    assert pool.cpu_seconds() == 0.0


def test_the_real_process_listing_reads_without_raising() -> None:
    pool = ProcessPoolCpuMeter()
    first = pool.cpu_seconds()
    assert first is None or first >= 0.0


def test_the_factory_picks_by_os() -> None:
    assert isinstance(create_pool_cpu_meter(list, platform="linux"), SumOfPoolCpuMeters)
    assert isinstance(create_pool_cpu_meter(list, platform="win32"), ProcessPoolCpuMeter)
    assert isinstance(create_pool_cpu_meter(list, platform="darwin"), ProcessPoolCpuMeter)


# -- a real container on a real engine ---------------------------------------------------


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants (the container runs under docker-init)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


@pytest.mark.docker
def test_a_busy_container_is_the_pools_not_other_programs(
    docker_engine: DockerEngine, local_registry: LocalRegistry
) -> None:
    """The cgroup lookup finds the private dockerd's container, and its CPU is the pool's.

    In CI (Debian 12, docker.io 20.10, cgroup v1, cgroupfs driver) the counter read is
    ``/sys/fs/cgroup/cpuacct/docker/<id>/cpuacct.usage``.

    The yardstick is the container's processes' own CPU time from ``/proc/<pid>/stat`` (not
    through cgroups), rather than the wall time: on a shared machine other processes may
    leave the container well under its one core.
    """
    cpus = os.cpu_count()
    assert cpus is not None
    spinner = httpd(
        local_registry.image,
        port=None,
        health_path=None,
        command=[BUSYBOX, "sh", "-c", "while :; do :; done"],
    )
    with running_harness(docker_engine, limits=ResourceLimits(cpus=1.0)) as harness:
        harness.drive([spinner], is_state(spinner.service, "running"), "running")
        (ours,) = harness.ours()
        assert harness.runtime.running_container_ids() == [ours.id]
        client = docker_engine.client()
        try:
            pid = int(client.api.inspect_container(ours.id)["State"]["Pid"])
        finally:
            client.close()

        pool = CgroupPoolCpuMeter(harness.runtime.running_container_ids)
        other = OtherProgramsCpu(pool)
        psutil.cpu_percent(None)  # psutil's own busy % over the same span, as a yardstick
        assert other.sample() is None
        shell_before = process_tree_cpu_seconds(pid)
        before = pool.cpu_seconds()
        started = time.monotonic()
        # CPU time needs wall time to pass; nothing to wait for but the clock.
        time.sleep(1.5)
        after = pool.cpu_seconds()
        shell_used = process_tree_cpu_seconds(pid) - shell_before
        elapsed = time.monotonic() - started
        others = other.sample()
        host_busy = psutil.cpu_percent(None)

    figures = {
        "pool": (before, after),
        "shell_used": shell_used,
        "elapsed": elapsed,
        "host_busy": host_busy,
        "others": others,
        "cpus": cpus,
    }
    # It spun (alone it takes a whole core; a quarter is left even on a crowded machine).
    assert shell_used > 0.25 * elapsed, figures
    assert before is not None and after is not None, figures
    # /proc's times move in 10 ms ticks, hence the slack.
    assert after - before == pytest.approx(shell_used, rel=0.1, abs=0.05), figures
    assert others is not None, figures
    pools_share = shell_used / (elapsed * cpus) * 100.0
    assert host_busy - others == pytest.approx(pools_share, rel=0.25, abs=3.0), figures


class FixedMeter:
    def __init__(self, value: float | None) -> None:
        self.value = value

    def cpu_seconds(self) -> float | None:
        return self.value


def test_the_engines_work_counts_as_the_pools() -> None:
    assert SumOfPoolCpuMeters(FixedMeter(2.0), FixedMeter(3.5)).cpu_seconds() == 5.5
    # The containers' meter decides when the total is unknown; an unreadable engine adds 0.
    assert SumOfPoolCpuMeters(FixedMeter(None), FixedMeter(3.5)).cpu_seconds() is None
    assert SumOfPoolCpuMeters(FixedMeter(2.0), FixedMeter(None)).cpu_seconds() == 2.0


@pytest.mark.docker
def test_the_real_docker_engine_processes_are_found(docker_engine: DockerEngine) -> None:
    # The private dockerd these tests start is a process named dockerd on this host.
    engine = ProcessPoolCpuMeter(DOCKER_ENGINE_PROCESSES)
    first = engine.cpu_seconds()
    assert first is not None
    assert engine._last, "no Docker engine process was found"
