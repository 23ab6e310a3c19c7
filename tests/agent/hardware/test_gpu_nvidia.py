"""The NVIDIA backend against a fake NVML module (the real one needs a GPU)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from desktop_app.agent.hardware.gpu_nvidia import NvidiaGpuProbe
from shared import WorkerCapabilities


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_NoPermission(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


@dataclass
class Memory:
    total: int
    free: int = 0
    used: int = 0


@dataclass
class FakeNvml:
    """Mirrors the pynvml functions the backend calls, and records what it was asked."""

    devices: list[tuple[str | bytes, int]] = field(default_factory=list)
    driver: str | bytes = "550.54.14"
    init_error: Exception | None = None
    lost_device: int | None = None
    calls: list[str] = field(default_factory=list)

    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_NoPermission = NVMLError_NoPermission

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if index == self.lost_device:
            raise NVMLError_GpuIsLost("GPU is lost")
        return ("handle", index)

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self.devices[handle[1]][0]

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Memory:
        return Memory(total=self.devices[handle[1]][1])

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver


def test_two_gpus() -> None:
    nvml = FakeNvml(
        devices=[("NVIDIA GeForce RTX 4090", 25_757_220_864), (b"NVIDIA RTX A4000", 17_171_480_576)]
    )
    result = NvidiaGpuProbe(nvml).probe()
    assert [(gpu.vendor, gpu.name, gpu.memory, gpu.driver) for gpu in result.gpus] == [
        ("nvidia", "NVIDIA GeForce RTX 4090", 25_757_220_864, "550.54.14"),
        ("nvidia", "NVIDIA RTX A4000", 17_171_480_576, "550.54.14"),
    ]
    assert result.notes == []
    assert nvml.calls == ["init", "shutdown"]
    # What the probe produces is what the protocol accepts.
    WorkerCapabilities(gpus=result.gpus)


def test_library_not_found_is_a_plain_note() -> None:
    nvml = FakeNvml(init_error=NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    result = NvidiaGpuProbe(nvml).probe()
    assert result.gpus == []
    assert result.notes == ["No NVIDIA driver found (NVML is not installed)."]
    assert nvml.calls == ["init"]  # init failed, so there is nothing to shut down


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (NVMLError_DriverNotLoaded("Driver Not Loaded"), "No NVIDIA driver is loaded"),
        (NVMLError_NoPermission("Insufficient Permissions"), "refused access"),
        (NVMLError("Unknown Error"), "could not be queried (Unknown Error)"),
    ],
)
def test_other_init_failures_are_plain_notes(error: Exception, words: str) -> None:
    result = NvidiaGpuProbe(FakeNvml(init_error=error)).probe()
    assert result.gpus == []
    assert len(result.notes) == 1 and words in result.notes[0]


def test_driver_error_mid_probe_still_shuts_down() -> None:
    nvml = FakeNvml(
        devices=[("NVIDIA A100-SXM4-80GB", 85_899_345_920), ("NVIDIA A100-SXM4-80GB", 1)],
        lost_device=1,
    )
    result = NvidiaGpuProbe(nvml).probe()
    assert [gpu.name for gpu in result.gpus] == ["NVIDIA A100-SXM4-80GB"]
    assert result.notes == ["NVIDIA GPU 1 could not be read (GPU is lost); it is left out."]
    assert nvml.calls == ["init", "shutdown"]


def test_unexpected_exception_mid_probe_still_shuts_down() -> None:
    class Exploding(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:
            raise RuntimeError("boom")

    nvml = Exploding()
    with pytest.raises(RuntimeError):
        NvidiaGpuProbe(nvml).probe()
    assert nvml.calls == ["init", "shutdown"]


def test_real_pynvml_without_a_driver_is_a_plain_note() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver; see the gpu-marked test")
    result = NvidiaGpuProbe().probe()
    assert result.gpus == []
    assert len(result.notes) == 1 and "NVIDIA" in result.notes[0]


@pytest.mark.gpu
def test_real_nvidia_gpu() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVIDIA driver here: {exc}")
    pynvml.nvmlShutdown()
    result = NvidiaGpuProbe().probe()
    assert result.gpus, result.notes
    for gpu in result.gpus:
        assert gpu.vendor == "nvidia"
        assert gpu.memory is not None and gpu.memory > 1024**3
        assert gpu.driver
