"""Worker capabilities: the seed agents' flat form, the structured form, and typo safety."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared import GpuInfo, RegisterRequest, WorkerCapabilities
from shared.capabilities import infer_gpu_vendor
from shared.version import check_agent_version

GIB = 1024**3
MIB = 1024**2

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEED_REGISTRATION = {
    "capabilities": {
        "cpu_cores": 16,
        "ram": "64.0GB",
        "storage": "1024.5GB",
        "gpu_memory": "24564MB",
        "gpu_type": "NVIDIA GeForce RTX 4090",
        "gpu_driver": "nvidia",
    }
}


# --- the seed's forms --------------------------------------------------------------------


def test_seed_registration_validates_and_reads_correctly() -> None:
    request = RegisterRequest.model_validate(SEED_REGISTRATION)
    caps = request.capabilities
    assert request.protocol_version is None
    assert check_agent_version(request.protocol_version) == 1
    assert request.worker_id is None
    assert caps.cpu_cores == 16
    assert caps.ram == 64 * GIB
    assert caps.storage == round(Decimal("1024.5") * GIB)
    assert caps.docker is None
    assert len(caps.gpus) == 1
    gpu = caps.gpus[0]
    assert gpu.vendor == "nvidia"
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.memory == 24564 * MIB
    assert gpu.driver == "nvidia"
    assert gpu.unified_memory is False


def test_seed_registration_as_json_text() -> None:
    request = RegisterRequest.model_validate_json(json.dumps(SEED_REGISTRATION))
    assert request == RegisterRequest.model_validate(SEED_REGISTRATION)


def test_seed_flat_fields_are_not_kept_as_fields() -> None:
    caps = WorkerCapabilities.model_validate(SEED_REGISTRATION["capabilities"])
    dumped = caps.model_dump()
    for key in ("gpu", "gpu_memory", "gpu_type", "gpu_driver", "cpu"):
        assert key not in dumped


def test_visual_summary_seed_form() -> None:
    request = RegisterRequest.model_validate(
        {"capabilities": {"cpu": 24, "ram": "94GB", "gpu": None}}
    )
    caps = request.capabilities
    assert caps.cpu_cores == 24
    assert caps.ram == 94 * GIB
    assert caps.gpus == []
    assert caps.storage is None


def test_cpu_cores_wins_over_seed_cpu() -> None:
    caps = WorkerCapabilities.model_validate({"cpu": 4, "cpu_cores": 8})
    assert caps.cpu_cores == 8


def test_amd_with_unknown_memory() -> None:
    caps = WorkerCapabilities.model_validate(
        {
            "cpu_cores": 8,
            "ram": "31.3GB",
            "gpu_memory": "Unknown (AMD)",
            "gpu_type": "AMD Radeon RX 7900 XTX",
            "gpu_driver": "amd",
        }
    )
    assert len(caps.gpus) == 1
    assert caps.gpus[0].vendor == "amd"
    assert caps.gpus[0].memory is None
    assert caps.gpus[0].name == "AMD Radeon RX 7900 XTX"
    assert caps.gpus[0].driver == "amd"


@pytest.mark.parametrize(
    "flat",
    [
        {"cpu_cores": 4, "ram": "8.0GB", "storage": "100.0GB"},
        {"cpu_cores": 4, "gpu": None},
        {"cpu_cores": 4, "gpu_type": None, "gpu_memory": None, "gpu_driver": None},
        {"cpu_cores": 4, "gpu_type": "None", "gpu_memory": "0MB"},
        {"cpu_cores": 4, "gpu_type": "  ", "gpu_memory": "Unknown"},
        {"cpu_cores": 4, "gpu_type": "N/A"},
        {"cpu_cores": 4, "gpu": "no gpu"},
        {},
    ],
    ids=repr,
)
def test_no_gpu_fields_means_no_gpus(flat: dict[str, Any]) -> None:
    assert WorkerCapabilities.model_validate(flat).gpus == []


def test_gpu_memory_alone_makes_an_unknown_gpu() -> None:
    caps = WorkerCapabilities.model_validate({"gpu_memory": "8192MB"})
    assert len(caps.gpus) == 1
    assert caps.gpus[0].memory == 8 * GIB
    assert caps.gpus[0].vendor == "unknown"
    assert caps.gpus[0].name == "Unknown GPU"


def test_legacy_gpu_dict_and_string() -> None:
    caps = WorkerCapabilities.model_validate(
        {"gpu": {"name": "NVIDIA RTX A4000", "memory": "16GB", "driver": "550.54.14"}}
    )
    assert caps.gpus[0].vendor == "nvidia"
    assert caps.gpus[0].memory == 16 * GIB
    assert caps.gpus[0].driver == "550.54.14"
    caps = WorkerCapabilities.model_validate({"gpu": "Apple M2 Max"})
    assert caps.gpus[0].vendor == "apple"
    assert caps.gpus[0].memory is None


def test_structured_gpus_win_over_flat_fields() -> None:
    structured = [
        {"vendor": "nvidia", "name": "NVIDIA A100", "memory": 80 * GIB, "driver": "550.54.14"},
        {"vendor": "nvidia", "name": "NVIDIA A100", "memory": 80 * GIB},
    ]
    caps = WorkerCapabilities.model_validate(
        {"gpus": structured, "gpu_type": "AMD Radeon", "gpu_memory": "8GB", "gpu_driver": "amd"}
    )
    assert [gpu.name for gpu in caps.gpus] == ["NVIDIA A100", "NVIDIA A100"]
    assert all(gpu.vendor == "nvidia" and gpu.memory == 80 * GIB for gpu in caps.gpus)


def test_structured_form() -> None:
    caps = WorkerCapabilities.model_validate(
        {
            "cpu_cores": 32,
            "cpu_physical_cores": "16",
            "cpu_model": "  AMD Ryzen 9 7950X 16-Core Processor ",
            "ram": 64 * GIB,
            "storage": "500 GiB",
            "os": "Linux",
            "arch": "x86_64",
            "gpus": [
                {"vendor": "apple", "name": "Apple M2", "memory": "24GB", "unified_memory": True}
            ],
            "docker": {
                "usable": True,
                "status": "running",
                "version": "26.1",
                "gpu_runtime": False,
            },
        }
    )
    assert caps.cpu_physical_cores == 16
    assert caps.cpu_model == "AMD Ryzen 9 7950X 16-Core Processor"
    assert caps.storage == 500 * GIB
    assert caps.gpus[0].memory == 24 * GIB
    assert caps.gpus[0].unified_memory is True
    assert caps.docker is not None
    assert caps.docker.usable is True


@pytest.mark.parametrize(
    ("name", "driver", "vendor"),
    [
        ("NVIDIA GeForce RTX 4090", "nvidia", "nvidia"),
        ("Tesla T4", None, "nvidia"),
        ("Radeon RX 6800", None, "amd"),
        ("Whatever", "rocm", "amd"),
        ("Intel Arc A770", None, "intel"),
        ("Apple M1", None, "apple"),
        (None, None, "unknown"),
        ("Matrox G200", "", "unknown"),
    ],
)
def test_infer_gpu_vendor(name: str | None, driver: str | None, vendor: str) -> None:
    assert infer_gpu_vendor(name, driver) == vendor


# --- typos and bad values are errors -----------------------------------------------------


@pytest.mark.parametrize("typo", ["ram_gb", "cpu_coers", "gpu_memroy", "storage_gb", "gpu_count"])
def test_typo_fields_are_rejected_naming_the_field(typo: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkerCapabilities.model_validate({"cpu_cores": 4, typo: 1})
    errors = caught.value.errors()
    assert [error["type"] for error in errors] == ["extra_forbidden"]
    assert errors[0]["loc"] == (typo,)
    assert typo in str(caught.value)

    with pytest.raises(ValidationError) as caught:
        RegisterRequest.model_validate({"capabilities": {"ram": "8GB", typo: 1}})
    assert caught.value.errors()[0]["loc"] == ("capabilities", typo)


def test_typo_in_seed_form_is_rejected_too() -> None:
    with pytest.raises(ValidationError, match="cpu_coers"):
        WorkerCapabilities.model_validate({"cpu_coers": 16, "gpu_type": "NVIDIA", "cpu": 2})


def test_typo_in_structured_gpu_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        WorkerCapabilities.model_validate({"gpus": [{"name": "A100", "memroy": 1}]})
    assert caught.value.errors()[0]["loc"] == ("gpus", 0, "memroy")


@pytest.mark.parametrize(
    "bad",
    [
        {"gpus": [{"vendor": "3dfx"}]},
        {"gpus": "NVIDIA"},
        {"gpus": [{}] * 65},
        {"docker": {"status": "sleeping"}},
        {"os": "x" * 257},
        {"cpu_model": 5},
    ],
    ids=repr,
)
def test_invalid_structured_values_are_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkerCapabilities.model_validate(bad)


def test_unparseable_sizes_and_counts_are_unknown_not_errors() -> None:
    caps = WorkerCapabilities.model_validate(
        {"cpu_cores": "many", "ram": "Unknown", "storage": -1, "cpu_physical_cores": 2.5}
    )
    assert caps.cpu_cores is None
    assert caps.ram is None
    assert caps.storage is None
    assert caps.cpu_physical_cores is None


def test_capabilities_are_frozen() -> None:
    caps = WorkerCapabilities.model_validate({"cpu_cores": 4})
    with pytest.raises(ValidationError):
        caps.cpu_cores = 8  # type: ignore[misc]


# --- properties --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
    | st.sampled_from(["64.0GB", "24564MB", "Unknown (AMD)", "NVIDIA", "amd", "none", "16", ""]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "type", "memory", "driver", "vendor"]) | st.text(max_size=5),
            children,
            max_size=4,
        )
    ),
    max_leaves=8,
)
SEED_FIELDS = ["cpu_cores", "cpu", "ram", "storage", "gpu", "gpu_memory", "gpu_type", "gpu_driver"]
flat_dicts = st.dictionaries(
    st.sampled_from([*SEED_FIELDS, "gpus", "cpu_physical_cores", "os", "docker"]),
    json_values,
    max_size=10,
)


@FAST
@given(flat_dicts)
def test_flat_fields_validate_or_raise_validation_error(data: dict[str, Any]) -> None:
    try:
        caps = WorkerCapabilities.model_validate(data)
    except ValidationError:
        return
    # Whatever validated round-trips through JSON unchanged.
    assert WorkerCapabilities.model_validate(caps.model_dump(mode="json")) == caps
    assert WorkerCapabilities.model_validate_json(caps.model_dump_json()) == caps


@FAST
@given(st.dictionaries(st.sampled_from(SEED_FIELDS), json_values, max_size=8))
def test_seed_flat_fields_through_register_request(data: dict[str, Any]) -> None:
    with contextlib.suppress(ValidationError):
        RegisterRequest.model_validate({"capabilities": data})


@FAST
@given(st.dictionaries(st.sampled_from(SEED_FIELDS), json_values, max_size=8))
def test_seed_json_text_validates_or_raises_validation_error(data: dict[str, Any]) -> None:
    text = json.dumps({"capabilities": data})
    with contextlib.suppress(ValidationError):
        RegisterRequest.model_validate_json(text)


short_text = st.text(max_size=256).filter(lambda s: s.strip() == s and "\x00" not in s)
sizes = st.none() | st.integers(min_value=0, max_value=2**62)
counts = st.none() | st.integers(min_value=0, max_value=1_000_000)

gpu_infos = st.builds(
    GpuInfo,
    vendor=st.sampled_from(["nvidia", "amd", "intel", "apple", "unknown"]),
    name=short_text,
    memory=sizes,
    driver=st.none() | short_text,
    unified_memory=st.booleans(),
)
docker_infos = st.fixed_dictionaries(
    {
        "usable": st.booleans(),
        "status": st.sampled_from(
            ["running", "not_installed", "not_running", "permission_denied", "error"]
        ),
        "version": st.none() | short_text,
        "gpu_runtime": st.booleans(),
        "message": st.none() | st.text(max_size=1000),
    }
)
capabilities = st.builds(
    WorkerCapabilities,
    cpu_cores=counts,
    cpu_physical_cores=counts,
    cpu_model=st.none() | short_text,
    ram=sizes,
    storage=sizes,
    os=st.none() | short_text,
    os_version=st.none() | short_text,
    arch=st.none() | short_text,
    gpus=st.lists(gpu_infos, max_size=4),
    docker=st.none() | docker_infos,
)


@FAST
@given(capabilities)
def test_capabilities_round_trip(caps: WorkerCapabilities) -> None:
    assert WorkerCapabilities.model_validate(caps.model_dump(mode="json")) == caps
    assert WorkerCapabilities.model_validate_json(caps.model_dump_json()) == caps
    request = RegisterRequest(capabilities=caps, protocol_version=2)
    assert RegisterRequest.model_validate(request.model_dump(mode="json")) == request
