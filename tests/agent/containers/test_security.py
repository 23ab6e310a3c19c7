"""The locked-down create options for an assignment: every setting, pure."""

from __future__ import annotations

import pytest

from desktop_app.agent.containers.errors import CapabilityRefused, GpuNotAvailable
from desktop_app.agent.containers.security import (
    MANAGED_LABEL,
    SERVICE_LABEL,
    SPEC_LABEL,
    WORKER_LABEL,
    ResourceLimits,
    container_name,
    container_spec,
    gpu_refusal,
    volume_name,
)
from shared import ServiceAssignment

MIB = 1024**2


def assignment(**fields: object) -> ServiceAssignment:
    base: dict[str, object] = {"service": "rag", "image": "registry.example/rag:1.4", "port": 8000}
    base.update(fields)
    return ServiceAssignment.model_validate(base)


def spec_of(a: ServiceAssignment, limits: ResourceLimits | None = None, gpu_runtime: bool = False):
    return container_spec(
        a, worker="w-1", limits=limits or ResourceLimits(), gpu_runtime=gpu_runtime
    )


def test_locked_down_by_default() -> None:
    spec = spec_of(assignment())
    options = spec.create_kwargs
    assert spec.name == options["name"] == "rma-rag-w-1"
    assert options["privileged"] is False
    assert options["cap_drop"] == ["ALL"]
    assert options["cap_add"] == []
    assert options["security_opt"] == ["no-new-privileges:true"]
    assert options["restart_policy"] == {"Name": "no"}
    assert options["publish_all_ports"] is False
    assert options["init"] is True
    assert options["pids_limit"] == 1024
    assert options["mounts"] == []
    assert "volumes" not in options  # named volumes go in as Mounts, never as Binds
    assert "device_requests" not in options
    assert "mem_limit" not in options and "nano_cpus" not in options
    assert options["log_config"]["config"]["max-size"] == "10m"


def test_labels_mark_owner_service_and_spec() -> None:
    spec = spec_of(assignment())
    assert spec.create_kwargs["labels"] == {
        MANAGED_LABEL: "true",
        WORKER_LABEL: "w-1",
        SERVICE_LABEL: "rag",
        SPEC_LABEL: spec.spec_hash,
    }
    assert len(spec.spec_hash) == 16


def test_port_published_on_loopback_only_with_a_docker_chosen_host_port() -> None:
    assert spec_of(assignment(port=8000)).create_kwargs["ports"] == {
        "8000/tcp": ("127.0.0.1", None)
    }
    assert spec_of(assignment(port=None)).create_kwargs["ports"] == {}


def test_environment_command_and_capabilities_from_the_assignment() -> None:
    a = assignment(
        env={"B": "2", "A": "1"},
        command=["serve", "--fast"],
        cap_add=["NET_BIND_SERVICE", "CHOWN", "NET_BIND_SERVICE"],
    )
    options = spec_of(a).create_kwargs
    assert options["environment"] == {"A": "1", "B": "2"}
    assert options["command"] == ["serve", "--fast"]
    assert options["cap_add"] == ["CHOWN", "NET_BIND_SERVICE"]


def test_data_paths_become_named_volumes() -> None:
    spec = spec_of(assignment(service="postgres", volumes=["/var/lib/postgresql/data", "/backup"]))
    assert [(v.name, v.target) for v in spec.volumes] == [
        ("rma-postgres-w-1-0", "/var/lib/postgresql/data"),
        ("rma-postgres-w-1-1", "/backup"),
    ]
    assert spec.volumes[0].labels == {
        MANAGED_LABEL: "true",
        WORKER_LABEL: "w-1",
        SERVICE_LABEL: "postgres",
    }
    assert spec.create_kwargs["mounts"] == [
        {
            "Type": "volume",
            "Source": "rma-postgres-w-1-0",
            "Target": "/var/lib/postgresql/data",
            "ReadOnly": False,
        },
        {"Type": "volume", "Source": "rma-postgres-w-1-1", "Target": "/backup", "ReadOnly": False},
    ]


def test_volunteer_limits() -> None:
    limits = ResourceLimits(cpus=1.5, memory_bytes=512 * MIB, pids_limit=200)
    options = spec_of(assignment(), limits).create_kwargs
    assert options["mem_limit"] == 512 * MIB
    assert options["nano_cpus"] == 1_500_000_000
    assert options["pids_limit"] == 200


@pytest.mark.parametrize(
    "fields", [{"cpus": 0.0}, {"cpus": -1.0}, {"memory_bytes": 0}, {"pids_limit": 0}]
)
def test_limits_must_be_positive(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ResourceLimits(**fields)  # type: ignore[arg-type]


def test_gpu_only_when_needed_present_and_allowed() -> None:
    allowed = ResourceLimits(gpu_allowed=True)
    options = spec_of(assignment(gpu=True), allowed, gpu_runtime=True).create_kwargs
    assert options["device_requests"] == [{"count": -1, "capabilities": [["gpu"]]}]
    # A CPU service never gets the GPU, even when it could.
    assert "device_requests" not in spec_of(assignment(), allowed, gpu_runtime=True).create_kwargs


@pytest.mark.parametrize(
    ("allowed", "runtime", "phrase"),
    [
        (False, True, "switched off"),
        (True, False, "NVIDIA Container Toolkit"),
        (False, False, "switched off"),
    ],
)
def test_gpu_service_refused_with_a_sentence(allowed: bool, runtime: bool, phrase: str) -> None:
    with pytest.raises(GpuNotAvailable) as caught:
        spec_of(assignment(gpu=True), ResourceLimits(gpu_allowed=allowed), gpu_runtime=runtime)
    assert phrase in caught.value.message
    assert caught.value.message.startswith("The service rag needs a GPU.")
    assert gpu_refusal(ResourceLimits(gpu_allowed=True), True) is None


def test_spec_hash_changes_with_what_matters_only() -> None:
    base = spec_of(assignment()).spec_hash
    assert spec_of(assignment()).spec_hash == base
    assert spec_of(assignment(reason="because")).spec_hash == base
    assert (
        container_spec(
            assignment(), worker="other", limits=ResourceLimits(), gpu_runtime=False
        ).spec_hash
        == base
    )
    for changed in (
        assignment(image="registry.example/rag:1.5"),
        assignment(env={"A": "1"}),
        assignment(port=9000),
        assignment(command=["x"]),
        assignment(cap_add=["CHOWN"]),
        assignment(volumes=["/data"]),
    ):
        assert spec_of(changed).spec_hash != base
    assert spec_of(assignment(), ResourceLimits(memory_bytes=MIB)).spec_hash != base


def test_names_are_docker_legal() -> None:
    worker = "3f2a9c1e-0b7d-4e5f-9a8b-1c2d3e4f5a6b"
    assert container_name("ollama-vision", worker) == "rma-ollama-vision-3f2a9c1e"
    assert container_name("My Service/2", worker) == "rma-My-Service-2-3f2a9c1e"
    assert container_name("///", worker) == "rma-service-3f2a9c1e"
    assert volume_name("neo4j", 0, worker) == "rma-neo4j-3f2a9c1e-0"
    # Two agents on one engine never share a name.
    assert container_name("web", worker) != container_name("web", "9d8c7b6a-0000")


@pytest.mark.parametrize("capability", ["ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"])
def test_powerful_capabilities_are_never_granted(capability: str) -> None:
    assignment = ServiceAssignment(
        service="db", image="postgres:16", port=5432, cap_add=["CHOWN", capability]
    )
    with pytest.raises(CapabilityRefused, match=capability):
        container_spec(assignment, worker="w", limits=ResourceLimits(), gpu_runtime=False)
