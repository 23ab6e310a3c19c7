from pathlib import Path

import pytest

from desktop_app.agent.hardware import (
    CapabilityProbe,
    CompositeGpuProbe,
    DockerProbe,
    GpuProbeResult,
    HostProbe,
    NullGpuProbe,
    default_gpu_probe,
)
from shared import GpuInfo, WorkerCapabilities


class OneGpu:
    def probe(self) -> GpuProbeResult:
        return GpuProbeResult(
            gpus=[GpuInfo(vendor="nvidia", name="NVIDIA GeForce RTX 3060", memory=12 * 1024**3)],
            notes=["No AMD ROCm tools found (rocm-smi is not on PATH)."],
        )


class Broken:
    def probe(self) -> GpuProbeResult:
        raise RuntimeError("driver exploded")


def test_probe_combines_host_gpu_and_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    report = CapabilityProbe(host=HostProbe(), gpu=OneGpu(), docker=DockerProbe(timeout_s=5)).probe(
        tmp_path
    )
    caps = report.capabilities
    assert isinstance(caps, WorkerCapabilities)
    assert caps.cpu_cores and caps.cpu_cores > 0
    assert caps.ram and caps.ram > 0
    assert caps.storage and caps.storage > 0
    assert [gpu.name for gpu in caps.gpus] == ["NVIDIA GeForce RTX 3060"]
    assert caps.docker is not None and caps.docker.status == "not_running"
    assert report.notes[0] == "No AMD ROCm tools found (rocm-smi is not on PATH)."
    assert report.notes[1] == caps.docker.message
    # It survives the trip to the coordinator.
    assert WorkerCapabilities.model_validate_json(caps.model_dump_json()) == caps


def test_composite_merges_and_survives_a_broken_backend() -> None:
    result = CompositeGpuProbe([OneGpu(), Broken(), OneGpu()]).probe()
    assert len(result.gpus) == 2
    assert any("failed unexpectedly: driver exploded" in note for note in result.notes)


def test_null_probe_says_why() -> None:
    assert NullGpuProbe("GPU detection is not available on Plan9.").probe().notes == [
        "GPU detection is not available on Plan9."
    ]


@pytest.mark.parametrize("system", ["Linux", "Windows", "Darwin", "FreeBSD"])
def test_default_gpu_probe_runs_everywhere_without_raising(system: str) -> None:
    result = default_gpu_probe(system).probe()
    assert isinstance(result.gpus, list)


def test_default_gpu_probe_on_this_machine_says_something() -> None:
    result = default_gpu_probe().probe()
    assert result.gpus or result.notes
