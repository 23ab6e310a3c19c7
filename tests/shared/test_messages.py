"""Messages: heartbeats, version rules, forward compatibility and the JSON schema."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

import shared
import shared.version
from shared import (
    MIN_SUPPORTED_AGENT_VERSION,
    PROTOCOL_VERSION,
    AdminHealth,
    AdminSession,
    AdminSignIn,
    AgentTooOldError,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyView,
    ContainerReport,
    DockerInfo,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenList,
    EnrollmentTokenView,
    ErrorResponse,
    GpuInfo,
    HealthResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    HistoryPoint,
    PoolOverview,
    PoolStats,
    RegisterRequest,
    RegisterResponse,
    RelaySummary,
    RequestModel,
    ResponseModel,
    ServiceAssignment,
    ServiceCatalog,
    ServiceSpec,
    ServiceStatus,
    TierCounts,
    UnregisterResponse,
    WorkerCapabilities,
    WorkerList,
    WorkerRemoved,
    WorkerView,
    check_agent_version,
)
from shared.version import SEED_PROTOCOL_VERSION

WID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
NOW = "2024-05-01T12:00:00Z"

PUBLIC_MODELS = [
    obj
    for name in shared.__all__
    if isinstance(obj := getattr(shared, name), type) and issubclass(obj, BaseModel)
]

# A minimal valid payload for every concrete message in the public API.
SAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    GpuInfo: {},
    DockerInfo: {},
    WorkerCapabilities: {},
    RegisterRequest: {"capabilities": {}},
    HeartbeatRequest: {"worker_id": WID},
    ServiceAssignment: {"service": "rag", "image": "ghcr.io/org/rag-service:1.4"},
    ContainerReport: {"service": "rag", "image": "ghcr.io/org/rag:1", "state": "pulling"},
    ServiceSpec: {"name": "rag", "image": "ghcr.io/org/rag:1", "port": 8080, "tiers": [2]},
    ServiceCatalog: {"services": []},
    RegisterResponse: {
        "worker_id": WID,
        "worker_token": "secret",
        "tier": 2,
        "tier_reason": "4 cores and 8 GiB of memory",
        "heartbeat_interval": 30.0,
        "next_heartbeat_in": 27.5,
        "protocol_version": PROTOCOL_VERSION,
    },
    HeartbeatResponse: {
        "worker_id": WID,
        "tier": 1,
        "heartbeat_interval": 30.0,
        "next_heartbeat_in": 31.0,
        "schedulability": "active",
        "protocol_version": PROTOCOL_VERSION,
        "server_time": NOW,
    },
    UnregisterResponse: {"worker_id": WID},
    HealthResponse: {"version": "1.0.0", "protocol_version": PROTOCOL_VERSION},
    ErrorResponse: {"detail": "No such worker.", "code": "unknown_worker"},
    WorkerView: {
        "worker_id": WID,
        "name": "host",
        "tier": 3,
        "status": "online",
        "schedulability": "paused",
        "capabilities": {"cpu_cores": 2, "ram": "4GB"},
        "current_load": 0.25,
        "reported_status": "active",
        "last_heartbeat": NOW,
        "registered_at": NOW,
        "protocol_version": 1,
        "agent_version": None,
        "containers": [{"service": "db", "image": "postgres:16", "state": "running"}],
        "assigned_services": ["db"],
    },
    WorkerList: {"workers": [], "total": 0},
    TierCounts: {"total": 3, "online": 2},
    PoolStats: {
        "total_workers": 3,
        "online_workers": 2,
        "offline_workers": 1,
        "active_workers": 1,
        "by_tier": {"1": 0, "2": 1, "3": 2},
        "tiers": {"2": {"total": 1, "online": 1}},
    },
    AdminHealth: {
        "status": "healthy",
        "version": "1.0.0",
        "protocol_version": PROTOCOL_VERSION,
        "database": "ok",
        "uptime_seconds": 12.5,
        "heartbeat_interval": 30.0,
        "online_workers": 2,
        "last_liveness_sweep": None,
    },
    ApiKeyCreate: {"name": "adviser portal"},
    ApiKeyCreated: {
        "key": "rma_secret",
        "id": WID,
        "name": "adviser portal",
        "prefix": "rma_secr",
        "created_at": NOW,
    },
    ApiKeyView: {
        "id": WID,
        "name": "adviser portal",
        "prefix": "rma_secr",
        "created_at": NOW,
        "revoked_at": NOW,
        "active": False,
    },
    ApiKeyList: {"keys": [], "total": 0},
    EnrollmentTokenCreate: {"name": "Leeds office"},
    EnrollmentTokenCreated: {
        "token": "rma_join_secret",
        "id": WID,
        "name": "Leeds office",
        "prefix": "rma_join_secr",
        "created_at": NOW,
    },
    EnrollmentTokenView: {
        "id": WID,
        "name": "Leeds office",
        "prefix": "rma_join_secr",
        "created_at": NOW,
        "revoked_at": None,
        "active": True,
        "workers_enrolled": 3,
        "last_used_at": NOW,
    },
    EnrollmentTokenList: {"tokens": [], "total": 0, "required": False, "from_settings": False},
    WorkerRemoved: {"worker_id": WID, "name": "ada", "message": "It left the registry."},
    AdminSignIn: {"token": "admin-token"},
    AdminSession: {"csrf_token": "csrf", "expires_at": NOW},
    ServiceStatus: {
        "name": "web",
        "description": "",
        "tiers": [2],
        "sensitive": False,
        "gpu": False,
        "desired": 2,
        "placed": 2,
        "running": 1,
        "ready": 1,
    },
    RelaySummary: {
        "requests_total": 10,
        "errors_total": 1,
        "in_flight": 0,
        "tunnels_open": 2,
        "workers_banned": 0,
    },
    HistoryPoint: {
        "at": NOW,
        "online": 2,
        "active": 1,
        "offline": 0,
        "requests": 5,
        "errors": 0,
        "mean_latency_ms": 1.5,
    },
    PoolOverview: {
        "stats": {
            "total_workers": 0,
            "online_workers": 0,
            "offline_workers": 0,
            "active_workers": 0,
            "by_tier": {},
            "tiers": {},
        },
        "services": [],
        "relay": {
            "requests_total": 0,
            "errors_total": 0,
            "in_flight": 0,
            "tunnels_open": 0,
            "workers_banned": 0,
        },
        "history": [],
        "history_interval_seconds": 10.0,
        "enrollment_required": False,
        "version": "0.1.0",
    },
}
REQUESTS = [model for model in SAMPLES if issubclass(model, RequestModel)]
RESPONSES = [model for model in SAMPLES if issubclass(model, ResponseModel)]


def test_every_public_message_has_a_sample() -> None:
    concrete = {m for m in PUBLIC_MODELS if m not in (RequestModel, ResponseModel)}
    assert concrete == set(SAMPLES)
    assert all(issubclass(m, RequestModel | ResponseModel) for m in concrete)


@pytest.mark.parametrize("model", list(SAMPLES), ids=lambda m: m.__name__)
def test_samples_validate(model: type[BaseModel]) -> None:
    instance = model.model_validate(SAMPLES[model])
    assert model.model_validate(instance.model_dump(mode="json")) == instance
    assert model.model_validate_json(instance.model_dump_json()) == instance


# --- heartbeats --------------------------------------------------------------------------


def test_heartbeat_seed_form() -> None:
    beat = HeartbeatRequest.model_validate({"worker_id": WID, "load": 0.42, "status": "active"})
    assert beat.current_load == 0.42
    assert beat.status == "active"
    assert beat.paused is False


def test_heartbeat_current_form_and_defaults() -> None:
    beat = HeartbeatRequest.model_validate({"worker_id": WID, "current_load": 1.5, "paused": True})
    assert beat.current_load == 1.5
    assert beat.paused is True
    assert beat.status is None
    assert HeartbeatRequest.model_validate({"worker_id": WID}).current_load == 0.0
    assert HeartbeatRequest(worker_id=WID, current_load=0.1).current_load == 0.1


def test_heartbeat_dump_uses_the_current_name() -> None:
    beat = HeartbeatRequest.model_validate({"worker_id": WID, "load": 0.5})
    dumped = beat.model_dump()
    assert dumped["current_load"] == 0.5
    assert "load" not in dumped
    assert HeartbeatRequest.model_validate(dumped) == beat


@pytest.mark.parametrize(
    "load", [-0.001, -1, math.nan, math.inf, -math.inf, "nan", "inf", "-inf", "busy", None, [0.1]]
)
def test_heartbeat_rejects_bad_load(load: object) -> None:
    with pytest.raises(ValidationError):
        HeartbeatRequest.model_validate({"worker_id": WID, "current_load": load})
    with pytest.raises(ValidationError):
        HeartbeatRequest.model_validate({"worker_id": WID, "load": load})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "-0.5"])
def test_heartbeat_rejects_bad_load_in_json_text(literal: str) -> None:
    with pytest.raises(ValidationError):
        HeartbeatRequest.model_validate_json(f'{{"worker_id": "{WID}", "load": {literal}}}')


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_heartbeat_accepts_finite_non_negative_load(load: float) -> None:
    assert HeartbeatRequest.model_validate({"worker_id": WID, "load": load}).current_load == load


@pytest.mark.parametrize("field", ["current_lod", "worker", "cpu_load", "extra"])
def test_heartbeat_rejects_unknown_fields(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HeartbeatRequest.model_validate({"worker_id": WID, field: 1})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    "worker_id",
    [
        "",
        "worker-1",
        "not-a-uuid",
        WID.replace("-", ""),
        WID + "0",
        WID[:-1],
        "{" + WID + "}",
        "urn:uuid:" + WID,
        WID.replace("a", "g"),
        WID + "\nx",
        12345,
        None,
    ],
    ids=repr,
)
def test_malformed_worker_ids_are_rejected(worker_id: object) -> None:
    with pytest.raises(ValidationError):
        HeartbeatRequest.model_validate({"worker_id": worker_id})
    if worker_id is not None:  # a first registration has no identity yet
        with pytest.raises(ValidationError):
            RegisterRequest.model_validate({"capabilities": {}, "worker_id": worker_id})


@settings(max_examples=100, deadline=None)
@given(st.uuids(), st.sampled_from(["", " ", "\t"]))
def test_worker_ids_are_lower_cased(value: uuid.UUID, pad: str) -> None:
    text = pad + str(value).upper() + pad
    assert HeartbeatRequest.model_validate({"worker_id": text}).worker_id == str(value)
    request = RegisterRequest.model_validate({"capabilities": {}, "worker_id": text})
    assert request.worker_id == str(value)
    response = UnregisterResponse.model_validate({"worker_id": text})
    assert response.worker_id == str(value)


def test_register_request_protocol_version_bounds() -> None:
    assert RegisterRequest.model_validate({"capabilities": {}}).protocol_version is None
    assert (
        RegisterRequest.model_validate({"capabilities": {}, "protocol_version": 2}).protocol_version
        == 2
    )
    for bad in (-1, 1_000_001, "two", 1.5):
        with pytest.raises(ValidationError):
            RegisterRequest.model_validate({"capabilities": {}, "protocol_version": bad})


# --- forward compatibility ---------------------------------------------------------------


@pytest.mark.parametrize("model", RESPONSES, ids=lambda m: m.__name__)
def test_responses_ignore_unknown_fields(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "ignore"
    payload = {**SAMPLES[model], "field_from_the_future": {"x": 1}, "another": [1, 2]}
    instance = model.model_validate(payload)
    assert instance == model.model_validate(SAMPLES[model])
    assert "field_from_the_future" not in instance.model_dump()
    assert model.model_validate_json(json.dumps(payload)) == instance


@pytest.mark.parametrize("model", REQUESTS, ids=lambda m: m.__name__)
def test_requests_forbid_unknown_fields(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**SAMPLES[model], "field_from_the_future": 1})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"
    assert caught.value.errors()[0]["loc"] == ("field_from_the_future",)


def test_nested_response_ignores_unknown_fields() -> None:
    payload = {
        **SAMPLES[RegisterResponse],
        "assigned_containers": [{**SAMPLES[ServiceAssignment], "cpu_limit": 2}],
    }
    response = RegisterResponse.model_validate(payload)
    assert response.assigned_containers[0].service == "rag"


def test_heartbeat_response_parses_server_time() -> None:
    response = HeartbeatResponse.model_validate(SAMPLES[HeartbeatResponse])
    assert response.server_time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert response.status == "ok"
    assert response.assigned_containers == []


@pytest.mark.parametrize("tier", [0, 4, -1, "gpu"])
def test_tier_bounds(tier: object) -> None:
    with pytest.raises(ValidationError):
        RegisterResponse.model_validate({**SAMPLES[RegisterResponse], "tier": tier})


# --- versions ----------------------------------------------------------------------------


def test_seed_agent_is_version_one() -> None:
    assert SEED_PROTOCOL_VERSION == 1
    assert check_agent_version(None) == SEED_PROTOCOL_VERSION
    assert MIN_SUPPORTED_AGENT_VERSION <= SEED_PROTOCOL_VERSION <= PROTOCOL_VERSION


@given(st.integers(min_value=MIN_SUPPORTED_AGENT_VERSION, max_value=10**6))
def test_supported_and_newer_versions_are_accepted(version: int) -> None:
    assert check_agent_version(version) == version


def test_too_old_agent_is_told_to_update(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.version, "MIN_SUPPORTED_AGENT_VERSION", 2)
    with pytest.raises(AgentTooOldError) as caught:
        check_agent_version(1)
    assert caught.value.agent_version == 1
    message = str(caught.value)
    assert "update" in message.lower()
    assert "version 1" in message
    assert "version 2 or newer" in message
    assert isinstance(caught.value, ValueError)

    with pytest.raises(AgentTooOldError) as caught:
        check_agent_version(None)  # a seed agent
    assert caught.value.agent_version == SEED_PROTOCOL_VERSION
    assert check_agent_version(2) == 2
    assert check_agent_version(3) == 3


def test_version_zero_is_too_old() -> None:
    with pytest.raises(AgentTooOldError, match="update"):
        check_agent_version(0)


# --- JSON schema -------------------------------------------------------------------------


@pytest.mark.parametrize("model", PUBLIC_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("mode", ["validation", "serialization"])
def test_json_schema_generation(model: type[BaseModel], mode: str) -> None:
    schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    assert schema["type"] == "object"
    assert json.loads(json.dumps(schema)) == schema


def test_public_models_are_all_covered() -> None:
    names = {model.__name__ for model in PUBLIC_MODELS}
    assert {"RegisterRequest", "HeartbeatRequest", "WorkerCapabilities", "WorkerView"} <= names
    assert len(PUBLIC_MODELS) == len(SAMPLES) + 2  # plus the two bases


def test_schema_documents_human_size_strings_and_the_load_alias() -> None:
    caps = WorkerCapabilities.model_json_schema(mode="validation")
    ram_types = {option.get("type") for option in caps["properties"]["ram"]["anyOf"]}
    assert {"integer", "string", "null"} <= ram_types
    beat = HeartbeatRequest.model_json_schema(mode="validation")
    assert "current_load" in beat["properties"] or "load" in beat["properties"]
    assert beat["required"] == ["worker_id"]


@pytest.mark.parametrize("name", ["WorkerId", "Tier", "Liveness", "Schedulability"])
def test_type_aliases_have_schemas(name: str) -> None:
    schema = TypeAdapter(getattr(shared, name)).json_schema()
    assert json.dumps(schema)
