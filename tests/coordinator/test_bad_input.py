"""Bad input: always a 4xx with a sentence and a code, never a 500, never a written row."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from .conftest import (
    ADMIN,
    SEED_CAPABILITIES,
    FakeClock,
    Worker,
    admin_view,
    bearer,
    new_worker_id,
    register,
    running_coordinator,
    total_workers,
)

REGISTER = "/api/worker/register"
HEARTBEAT = "/api/worker/heartbeat"
JSON = {"content-type": "application/json"}


def assert_clean_refusal(response: Any, status: int | None = None) -> dict[str, Any]:
    """A 4xx whose body is an ErrorResponse: a non-empty ``detail`` sentence and a ``code``."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    return body


@pytest.fixture
def worker(client: TestClient) -> Worker:
    return register(client)


# --- registration -------------------------------------------------------------------------

BAD_REGISTRATIONS: dict[str, str] = {
    "malformed json": '{"capabilities": {"ram": "64GB"',
    "not json at all": "ram=64GB",
    "empty body": "",
    "json array": "[1, 2, 3]",
    "json string": '"register me"',
    "json null": "null",
    "no capabilities": "{}",
    "capabilities is a string": '{"capabilities": "64GB"}',
    "capabilities is a list": '{"capabilities": [16, "64GB"]}',
    "gpus is not a list": '{"capabilities": {"ram": "64GB", "gpus": "RTX 4090"}}',
    "gpu entry wrong type": '{"capabilities": {"ram": "64GB", "gpus": [42]}}',
    "gpu vendor unknown value": (
        '{"capabilities": {"ram": "64GB", "gpus": [{"vendor": "3dfx", "memory": 1}]}}'
    ),
    "name is a number": '{"capabilities": {"ram": "64GB"}, "name": 42}',
    "name is an object": '{"capabilities": {"ram": "64GB"}, "name": {"a": 1}}',
    "protocol_version is text": '{"capabilities": {"ram": "64GB"}, "protocol_version": "two"}',
    "protocol_version negative": '{"capabilities": {"ram": "64GB"}, "protocol_version": -1}',
    "protocol_version huge": '{"capabilities": {"ram": "64GB"}, "protocol_version": '
    + str(10**40)
    + "}",
    "protocol_version NaN": '{"capabilities": {"ram": "64GB"}, "protocol_version": NaN}',
    "unknown top-level field (typo)": '{"capabilities": {"ram": "64GB"}, "protocol_verison": 2}',
    "unknown capability field (typo)": '{"capabilities": {"ram": "64GB", "gpu_memroy": "24GB"}}',
    "unknown gpu field (typo)": (
        '{"capabilities": {"ram": "64GB", "gpus": [{"vendor": "nvidia", "memroy": 1}]}}'
    ),
    "huge cores and huge ram": '{"capabilities": {"cpu_cores": '
    + str(10**40)
    + ', "ram": '
    + str(10**40)
    + "}}",
    "ram NaN": '{"capabilities": {"cpu_cores": 4, "ram": NaN}}',
    "ram Infinity": '{"capabilities": {"cpu_cores": 4, "ram": Infinity}}',
    "ram negative": '{"capabilities": {"cpu_cores": 4, "ram": -68719476736}}',
    "ram below tier 3": '{"capabilities": {"cpu_cores": 4, "ram": "1GB"}}',
    "name too long": json.dumps({"capabilities": {"ram": "64GB"}, "name": "x" * 257}),
    "agent_version too long": json.dumps(
        {"capabilities": {"ram": "64GB"}, "agent_version": "1." * 200}
    ),
    "cpu_model too long": json.dumps({"capabilities": {"ram": "64GB", "cpu_model": "x" * 300}}),
    "enrollment token too long": json.dumps(
        {"capabilities": {"ram": "64GB"}, "enrollment_token": "x" * 300}
    ),
    "too many gpus": json.dumps(
        {"capabilities": {"ram": "64GB", "gpus": [{"vendor": "nvidia"}] * 65}}
    ),
    "worker_id not a uuid": '{"capabilities": {"ram": "64GB"}, "worker_id": "worker-1"}',
    "worker_id sql": (
        '{"capabilities": {"ram": "64GB"}, "worker_id": "x\'; DROP TABLE workers; --"}'
    ),
    "worker_id a number": '{"capabilities": {"ram": "64GB"}, "worker_id": 12345}',
    "worker_id too long": json.dumps(
        {"capabilities": {"ram": "64GB"}, "worker_id": new_worker_id() + "0" * 100}
    ),
    "lone surrogate in name": '{"capabilities": {"ram": "64GB"}, "name": "a\\ud800b"}',
}


@pytest.mark.parametrize("body", BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys())
def test_bad_registration_is_refused_without_a_row(client: TestClient, body: str) -> None:
    before = total_workers(client)
    response = client.post(REGISTER, content=body.encode(), headers=JSON)
    assert_clean_refusal(response)
    assert total_workers(client) == before


def test_ram_below_tier3_names_the_minimum(client: TestClient) -> None:
    response = client.post(REGISTER, json={"capabilities": {"cpu_cores": 8, "ram": "1.5GB"}})
    body = assert_clean_refusal(response, 422)
    assert body["code"] == "tier_requirements"
    assert "1.5 GiB" in body["detail"]
    assert "2.0 GiB" in body["detail"]


def test_validation_errors_name_the_field(client: TestClient) -> None:
    body = {"capabilities": {"ram": "64GB"}, "protocol_verison": 2}
    detail = assert_clean_refusal(client.post(REGISTER, json=body), 422)["detail"]
    assert "protocol_verison" in detail


def test_validation_errors_do_not_echo_input(client: TestClient) -> None:
    secret = "s3cret-enrollment-" + "x" * 300
    body = {"capabilities": {"ram": "64GB"}, "enrollment_token": secret}
    response = client.post(REGISTER, json=body)
    assert_clean_refusal(response, 422)
    assert secret not in response.text


def test_huge_core_count_is_unknown_not_stored(client: TestClient) -> None:
    """Capability values that are not plausible counts are read as unknown (design rule)."""
    body = {"capabilities": {"cpu_cores": 10**40, "ram": "64GB"}}
    response = client.post(REGISTER, json=body)
    assert response.status_code == 200, response.text
    view = admin_view(client, response.json()["worker_id"])
    assert view["capabilities"]["cpu_cores"] is None
    assert view["tier"] == 3  # tier 2 needs a known core count


def test_register_needs_post(client: TestClient) -> None:
    assert_clean_refusal(client.get(REGISTER), 405)


def test_unknown_path_is_404_with_code(client: TestClient) -> None:
    body = assert_clean_refusal(client.get("/api/worker/nonexistent"), 404)
    assert body["code"] == "not_found"


# --- heartbeats ---------------------------------------------------------------------------


def bad_heartbeats(worker_id: str) -> dict[str, str]:
    wid = json.dumps(worker_id)
    return {
        "malformed json": '{"worker_id": ' + wid,
        "no worker_id": '{"current_load": 0.5}',
        "worker_id not a uuid": '{"worker_id": "my-worker"}',
        "worker_id a number": '{"worker_id": 7}',
        "worker_id null": '{"worker_id": null}',
        "load is text": '{"worker_id": ' + wid + ', "current_load": "busy"}',
        "load negative": '{"worker_id": ' + wid + ', "current_load": -0.5}',
        "load NaN": '{"worker_id": ' + wid + ", " + '"current_load": NaN}',
        "load Infinity": '{"worker_id": ' + wid + ', "current_load": Infinity}',
        "load overflows a float": '{"worker_id": ' + wid + ', "current_load": 1e999}',
        "load huge integer": '{"worker_id": ' + wid + ', "current_load": ' + str(10**400) + "}",
        "alias load NaN": '{"worker_id": ' + wid + ', "load": NaN}',
        "paused is text": '{"worker_id": ' + wid + ', "paused": "maybe"}',
        "status too long": json.dumps({"worker_id": worker_id, "status": "x" * 257}),
        "status an object": '{"worker_id": ' + wid + ', "status": {"state": "ok"}}',
        "unknown field (typo)": '{"worker_id": ' + wid + ', "current_lod": 0.5}',
        "json array": "[]",
    }


def test_bad_heartbeats_are_refused_and_change_nothing(client: TestClient, worker: Worker) -> None:
    before = admin_view(client, worker.worker_id)
    for name, body in bad_heartbeats(worker.worker_id).items():
        response = client.post(HEARTBEAT, content=body.encode(), headers={**JSON, **worker.headers})
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert_clean_refusal(response)
    after = admin_view(client, worker.worker_id)
    assert after == before
    assert total_workers(client) == 1


# --- paths --------------------------------------------------------------------------------

BAD_PATH_IDS = ["not-a-uuid", "1", "x" * 300, "%27%3B%20DROP%20TABLE%20workers", "..%2F..%2Fetc"]


@pytest.mark.parametrize("bad_id", BAD_PATH_IDS)
def test_malformed_worker_id_in_path(client: TestClient, worker: Worker, bad_id: str) -> None:
    response = client.delete(f"/api/worker/unregister/{bad_id}", headers=worker.headers)
    assert_clean_refusal(response)
    response = client.get(f"/api/admin/workers/{bad_id}", headers=ADMIN)
    assert_clean_refusal(response)
    assert total_workers(client) == 1


BAD_QUERIES = [
    "status=sleeping",
    "tier=0",
    "tier=4",
    "tier=one",
    f"tier={10**40}",
    "limit=0",
    "limit=-1",
    "limit=" + "9" * 5000,
    "offset=-1",
    "offset=1e3",
    f"offset={10**30}",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_admin_queries(client: TestClient, query: str) -> None:
    assert_clean_refusal(client.get(f"/api/admin/workers?{query}", headers=ADMIN), 422)


# --- size limits --------------------------------------------------------------------------

MIB = 1024 * 1024


def test_declared_body_over_1mib_is_413(client: TestClient) -> None:
    before = total_workers(client)
    huge = json.dumps({"capabilities": {"ram": "64GB"}, "name": "x" * (MIB + 10)})
    body = assert_clean_refusal(client.post(REGISTER, content=huge, headers=JSON), 413)
    assert body["code"] == "too_large"
    assert total_workers(client) == before


def test_chunked_body_over_1mib_is_413(client: TestClient, worker: Worker) -> None:
    """A body without Content-Length is counted as it is read."""

    def chunks() -> Iterator[bytes]:
        yield b'{"capabilities": {"ram": "64GB"}, "name": "'
        for _ in range(3):
            yield b"x" * (512 * 1024)
        yield b'"}'

    response = client.post(REGISTER, content=chunks(), headers=JSON)
    assert "content-length" not in {key.lower() for key in response.request.headers}
    assert assert_clean_refusal(response, 413)["code"] == "too_large"
    response = client.post(HEARTBEAT, content=chunks(), headers={**JSON, **worker.headers})
    assert_clean_refusal(response, 413)
    assert total_workers(client) == 1


def test_small_chunked_body_is_read(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield json.dumps({"capabilities": SEED_CAPABILITIES}).encode()

    response = client.post(REGISTER, content=chunks(), headers=JSON)
    assert response.status_code == 200, response.text


# --- random input -------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["64GB", "62.7GB", "24564MB", "Unknown (AMD)", "-1GB", "1e9", "", " 8 GiB "])
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
sizes = st.sampled_from(
    ["64GB", "62.7GB", "24564MB", "8GiB", "2GB", "1.9GB", "Unknown (AMD)", "-1GB", "", " 8 GiB "]
) | st.integers(min_value=-(2**70), max_value=2**70)
cores = st.integers(min_value=-4, max_value=2**40) | st.sampled_from(["16", "x", "1e3"])
short_text = st.text(max_size=300)
# Each field: mostly plausible values (so registrations also succeed), sometimes anything.
capability_values: dict[str, st.SearchStrategy[Any]] = {
    "cpu_cores": cores | json_values,
    "cpu": cores | json_values,
    "cpu_physical_cores": cores | json_values,
    "ram": sizes | sizes | json_values,
    "storage": sizes | json_values,
    "gpu_memory": sizes | json_values,
    "gpu_type": short_text | st.sampled_from(["NVIDIA GeForce RTX 4090", "AMD Radeon", "None"]),
    "gpu_driver": short_text | st.sampled_from(["nvidia", "amdgpu"]) | json_values,
    "gpu": json_values | st.fixed_dictionaries({}, optional={"name": short_text, "memory": sizes}),
    "os": short_text | json_values,
    "arch": short_text,
    "cpu_model": short_text,
    "docker": json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "usable": st.booleans() | json_values,
            "status": st.sampled_from(["running", "not_running", "broken"]),
            "version": short_text,
            "gpu_runtime": st.booleans(),
            "message": st.text(max_size=1200),
        },
    ),
    "gpus": json_values
    | st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "vendor": st.sampled_from(["nvidia", "amd", "apple", "intel", "unknown", "3dfx"]),
                "name": short_text | json_values,
                "memory": sizes | json_values,
                "driver": short_text | json_values,
                "unified_memory": st.booleans() | json_values,
            },
        ),
        max_size=3,
    ),
}
capabilities_like = st.fixed_dictionaries(
    {}, optional={key: value for key, value in capability_values.items()}
)
registration_like = st.fixed_dictionaries(
    {"capabilities": capabilities_like | capabilities_like | json_values},
    optional={
        "protocol_version": st.integers(min_value=-5, max_value=2**70) | json_values,
        "worker_id": st.uuids().map(str) | json_values,
        "name": short_text | json_values,
        "agent_version": short_text | json_values,
        "enrollment_token": short_text | json_values,
    },
)
plausible_registration = st.fixed_dictionaries(
    {
        "capabilities": st.fixed_dictionaries(
            {"ram": sizes},
            optional={
                "cpu_cores": cores,
                "storage": sizes,
                "gpu_memory": sizes,
                "gpu_type": st.text(max_size=40),
                "gpu_driver": st.sampled_from(["nvidia", "amdgpu", "", "apple"]),
                "gpus": st.lists(
                    st.fixed_dictionaries(
                        {"vendor": st.sampled_from(["nvidia", "amd", "apple", "intel"])},
                        optional={
                            "memory": sizes,
                            "name": st.text(max_size=40),
                            "unified_memory": st.booleans(),
                        },
                    ),
                    max_size=2,
                ),
            },
        )
    },
    optional={
        "name": st.text(max_size=40),
        "protocol_version": st.integers(min_value=0, max_value=5),
    },
)
heartbeat_like = st.fixed_dictionaries(
    {
        "worker_id": st.just("__worker__")
        | st.just("__worker__")
        | st.uuids().map(str)
        | json_values
    },
    optional={
        "current_load": st.floats(min_value=0, max_value=64) | st.floats() | json_values,
        "load": st.floats(min_value=0, max_value=64) | json_values,
        "status": st.text(max_size=40) | short_text | json_values,
        "paused": st.booleans() | st.booleans() | json_values,
    },
)


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One coordinator for all examples of a property (function fixtures would be reused)."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    with running_coordinator(data_dir, FakeClock()) as client:
        yield client


@pytest.fixture(scope="module")
def fuzz_worker(shared_client: TestClient) -> Worker:
    return register(shared_client)


def post_raw(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    # json.dumps writes NaN/Infinity as Python's json reader accepts them, like a sloppy peer.
    return client.post(path, content=json.dumps(body).encode(), headers={**JSON, **headers})


def assert_not_server_error(response: Any) -> None:
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_clean_refusal(response)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=plausible_registration | registration_like | json_values)
def test_random_registrations_never_500(shared_client: TestClient, body: Any) -> None:
    response = post_raw(shared_client, REGISTER, body, {})
    assert_not_server_error(response)
    if response.status_code == 200:
        # Whatever was accepted must read back: the admin views re-validate stored rows.
        worker_id = response.json()["worker_id"]
        view = shared_client.get(f"/api/admin/workers/{worker_id}", headers=ADMIN)
        assert view.status_code == 200, view.text
        capabilities = view.json()["capabilities"]
        for key in ("ram", "storage", "cpu_cores"):
            value = capabilities[key]
            assert value is None or (isinstance(value, int) and value >= 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=heartbeat_like | heartbeat_like | json_values,
    token=st.sampled_from(["own", "own", "none", "wrong"]),
)
def test_random_heartbeats_never_500(
    shared_client: TestClient, fuzz_worker: Worker, body: Any, token: str
) -> None:
    if isinstance(body, dict) and body.get("worker_id") == "__worker__":
        body["worker_id"] = fuzz_worker.worker_id
    headers = {"own": fuzz_worker.headers, "none": {}, "wrong": bearer("wrong-token-xyz")}[token]
    response = post_raw(shared_client, HEARTBEAT, body, headers)
    assert_not_server_error(response)
    if response.status_code == 200:
        load = shared_client.get(
            f"/api/admin/workers/{fuzz_worker.worker_id}", headers=ADMIN
        ).json()["current_load"]
        assert math.isfinite(load) and load >= 0
