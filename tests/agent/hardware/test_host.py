import platform
from pathlib import Path

from desktop_app.agent.hardware.host import (
    HostProbe,
    free_disk_bytes,
    parse_cpuinfo_model,
    read_cpu_model,
)


def test_probe_reads_this_machine(tmp_path: Path) -> None:
    facts = HostProbe().probe(tmp_path)
    assert facts.cpu_cores is not None and facts.cpu_cores > 0
    assert facts.cpu_physical_cores is None or 0 < facts.cpu_physical_cores <= facts.cpu_cores
    assert facts.ram > 0
    assert facts.storage is not None and facts.storage > 0
    assert facts.os == platform.system()
    assert facts.os_version == platform.release()
    assert facts.arch == platform.machine()


def test_cpu_model_is_read_on_this_machine() -> None:
    model = read_cpu_model(platform.system())
    if platform.system() == "Linux" and "model name" in Path("/proc/cpuinfo").read_text():
        assert model == parse_cpuinfo_model(Path("/proc/cpuinfo").read_text())
    assert model is None or model.strip() == model


def test_free_disk_uses_nearest_existing_parent(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet" / "created"
    free = free_disk_bytes(missing)
    assert free is not None and free > 0
    assert not missing.exists()


def test_parse_cpuinfo_model() -> None:
    text = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
        "model name\t: AMD Ryzen 9 7950X 16-Core Processor\n"
        "processor\t: 1\nmodel name\t: AMD Ryzen 9 7950X 16-Core Processor\n"
    )
    assert parse_cpuinfo_model(text) == "AMD Ryzen 9 7950X 16-Core Processor"


def test_parse_cpuinfo_without_model_name() -> None:
    # Many ARM boards list only "CPU part" and friends.
    assert parse_cpuinfo_model("processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd08\n") is None
