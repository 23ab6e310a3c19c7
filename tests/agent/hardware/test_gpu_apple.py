from desktop_app.agent.hardware.gpu_apple import AppleGpuProbe

GIB = 1024**3


def probe(system: str, machine: str, brand: str | None) -> AppleGpuProbe:
    return AppleGpuProbe(
        system=lambda: system,
        machine=lambda: machine,
        total_ram=lambda: 32 * GIB,
        brand_string=lambda: brand,
    )


def test_apple_silicon() -> None:
    result = probe("Darwin", "arm64", "Apple M2 Pro").probe()
    assert result.notes == []
    [gpu] = result.gpus
    assert gpu.vendor == "apple"
    assert gpu.name == "Apple M2 Pro"
    assert gpu.memory == 32 * GIB
    assert gpu.unified_memory is True


def test_apple_silicon_under_rosetta() -> None:
    [gpu] = probe("Darwin", "x86_64", "Apple M1").probe().gpus
    assert gpu.name == "Apple M1"


def test_unknown_brand_on_arm64_still_reports_the_gpu() -> None:
    [gpu] = probe("Darwin", "arm64", None).probe().gpus
    assert gpu.name == "Apple Silicon GPU"


def test_intel_mac_has_no_pool_gpu() -> None:
    result = probe("Darwin", "x86_64", "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz").probe()
    assert result.gpus == []
    assert len(result.notes) == 1 and "Intel" in result.notes[0]


def test_not_a_mac() -> None:
    result = probe("Linux", "aarch64", None).probe()
    assert result.gpus == []
    assert result.notes == []
