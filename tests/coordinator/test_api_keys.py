"""Client API keys: created and revoked by admins, shown once, checked from memory."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, inspect

from coordinator.db import make_engine, migrate
from coordinator.relay.api_keys import ApiKeyStore

from .conftest import (
    ADMIN,
    START_TIME,
    FakeClock,
    StartCoordinator,
    bearer,
    new_worker_id,
    register,
    running_coordinator,
    runtime_of,
)
from .test_bad_input import assert_clean_refusal

KEYS = "/api/admin/api-keys"
JSON = {"content-type": "application/json"}


def create_key(client: TestClient, name: str = "adviser portal") -> dict[str, Any]:
    response = client.post(KEYS, json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def list_keys(client: TestClient) -> dict[str, Any]:
    response = client.get(KEYS, headers=ADMIN)
    assert response.status_code == 200, response.text
    listed: dict[str, Any] = response.json()
    return listed


def revoke_key(client: TestClient, key_id: str) -> dict[str, Any]:
    response = client.delete(f"{KEYS}/{key_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    revoked: dict[str, Any] = response.json()
    return revoked


def identify(client: TestClient, key: str) -> str | None:
    return runtime_of(client).api_keys.identify(key)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- creating and listing -----------------------------------------------------------------


def test_created_key_is_shown_once_and_listed_by_its_prefix(client: TestClient) -> None:
    created = create_key(client, "  adviser portal  ")
    key = created["key"]
    assert key.startswith("rma_") and len(key) >= 4 + 43
    assert created["prefix"] == key[:8]
    assert created["name"] == "adviser portal"
    assert when(created["created_at"]) == datetime.fromtimestamp(START_TIME, UTC)

    listed = list_keys(client)
    assert listed["total"] == 1
    assert listed["keys"] == [
        {
            "id": created["id"],
            "name": "adviser portal",
            "prefix": key[:8],
            "created_at": created["created_at"],
            "revoked_at": None,
            "active": True,
        }
    ]
    assert key not in client.get(KEYS, headers=ADMIN).text
    assert key[8:] not in client.get(KEYS, headers=ADMIN).text


def test_each_key_is_new_and_the_list_is_newest_first(client: TestClient, clock: FakeClock) -> None:
    first = create_key(client, "first")
    clock.advance(10)
    second = create_key(client, "second")
    assert first["key"] != second["key"] and first["id"] != second["id"]
    listed = list_keys(client)
    assert [k["name"] for k in listed["keys"]] == ["second", "first"]
    assert listed["total"] == 2
    assert identify(client, first["key"]) == first["id"]
    assert identify(client, second["key"]) == second["id"]
    assert runtime_of(client).api_keys.count_active() == 2


def test_identify_refuses_what_is_not_an_active_key(client: TestClient) -> None:
    created = create_key(client)
    key = created["key"]
    for other in ("", "rma_", key[:8], key + "x", key.upper(), " " + key, "x" * 10_000):
        assert identify(client, other) is None, other[:20]
    assert identify(client, key) == created["id"]


# --- revoking -----------------------------------------------------------------------------


def test_revoke_is_immediate_and_idempotent(client: TestClient, clock: FakeClock) -> None:
    kept = create_key(client, "kept")
    gone = create_key(client, "gone")
    clock.advance(60)

    revoked = revoke_key(client, gone["id"])
    assert (revoked["id"], revoked["name"], revoked["active"]) == (gone["id"], "gone", False)
    assert when(revoked["revoked_at"]) == datetime.fromtimestamp(START_TIME + 60, UTC)
    assert "key" not in revoked
    assert identify(client, gone["key"]) is None
    assert identify(client, kept["key"]) == kept["id"]
    assert runtime_of(client).api_keys.count_active() == 1

    clock.advance(60)
    assert revoke_key(client, gone["id"]) == revoked  # still revoked, at the first time
    listed = {k["id"]: k for k in list_keys(client)["keys"]}
    assert listed[gone["id"]] == revoked
    assert listed[kept["id"]]["active"] is True
    assert list_keys(client)["total"] == 2


def test_unknown_key_id_is_a_404_with_a_message(client: TestClient) -> None:
    unknown = new_worker_id()
    body = assert_clean_refusal(client.delete(f"{KEYS}/{unknown}", headers=ADMIN), 404)
    assert body["code"] == "unknown_api_key"
    assert unknown in body["detail"]


@pytest.mark.parametrize(
    "key_id", ["x", "12345", "%00", "'; DROP TABLE api_keys; --", new_worker_id() + "0" * 100]
)
def test_malformed_key_id_is_refused_cleanly(client: TestClient, key_id: str) -> None:
    create_key(client)
    assert_clean_refusal(client.delete(f"{KEYS}/{key_id}", headers=ADMIN))
    assert runtime_of(client).api_keys.count_active() == 1


# --- bad requests -------------------------------------------------------------------------

BAD_CREATIONS: dict[str, str] = {
    "no body": "",
    "no name": "{}",
    "empty name": '{"name": ""}',
    "blank name": '{"name": "   "}',
    "name null": '{"name": null}',
    "name a number": '{"name": 42}',
    "name too long": '{"name": "' + "x" * 257 + '"}',
    "NUL in name": '{"name": "a\\u0000b"}',
    "lone surrogate in name": '{"name": "a\\ud800b"}',
    "unknown field": '{"name": "portal", "key": "rma_chosen-by-the-client"}',
    "json array": '["portal"]',
}


@pytest.mark.parametrize("body", BAD_CREATIONS.values(), ids=BAD_CREATIONS.keys())
def test_bad_creation_is_a_422_with_a_message(client: TestClient, body: str) -> None:
    response = client.post(KEYS, content=body.encode(), headers={**ADMIN, **JSON})
    assert_clean_refusal(response, 422)
    assert list_keys(client)["total"] == 0


def test_missing_and_empty_names_say_what_is_wrong(client: TestClient) -> None:
    missing = assert_clean_refusal(client.post(KEYS, json={}, headers=ADMIN), 422)
    assert "name" in missing["detail"] and "required" in missing["detail"].lower()
    empty = assert_clean_refusal(client.post(KEYS, json={"name": " "}, headers=ADMIN), 422)
    assert "name" in empty["detail"] and "empty" in empty["detail"]


def test_the_longest_name_is_kept(client: TestClient) -> None:
    name = "ü" * 256
    assert create_key(client, name)["name"] == name
    assert list_keys(client)["keys"][0]["name"] == name


# --- who may ------------------------------------------------------------------------------


def assert_admin_only(
    client: TestClient, calls: list[tuple[str, str, Any]], *other_tokens: str
) -> None:
    """Each ``(method, path, json)`` call is a 401 without the admin token, with a wrong one,
    and with each of ``other_tokens`` (secrets that are not the admin's)."""
    wrong = ["not-the-admin-token-0123456789", *other_tokens]
    throttle = runtime_of(client).sign_in_throttle
    for headers in ({}, *(bearer(token) for token in wrong)):
        for method, path, body in calls:
            response = client.request(method, path, json=body, headers=headers)
            assert_clean_refusal(response, 401)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            # So many wrong tokens would make the test client (address "testclient") wait.
            throttle.succeeded("testclient")


def test_key_management_needs_the_admin_token(client: TestClient) -> None:
    created = create_key(client)
    worker = register(client)
    calls = [
        ("POST", KEYS, {"name": "sneaky"}),
        ("GET", KEYS, None),
        ("DELETE", f"{KEYS}/{created['id']}", None),
    ]
    assert_admin_only(client, calls, worker.token, created["key"])
    # A client API key is for the relay, not the admin API.
    response = client.get(KEYS, headers=bearer(created["key"]))
    assert assert_clean_refusal(response, 401)["code"] == "bad_token"

    assert identify(client, created["key"]) == created["id"]
    assert list_keys(client)["total"] == 1


def test_creation_and_revocation_are_logged_without_the_key(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="coordinator.relay"):
        created = create_key(client, "adviser portal")
        revoke_key(client, created["id"])
    assert f"Client API key {created['id']} (adviser portal) created" in caplog.text
    assert f"Client API key {created['id']} (adviser portal) revoked" in caplog.text
    assert created["key"] not in caplog.text
    assert created["key"][8:] not in caplog.text


def test_openapi_documents_the_routes_and_that_keys_are_shown_once(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    create = paths[KEYS]["post"]
    assert "201" in create["responses"]
    assert "only" in create["description"]
    assert "once" in paths[KEYS]["get"]["description"]
    assert "delete" in paths[KEYS + "/{key_id}"]


# --- restarts -----------------------------------------------------------------------------


def test_keys_survive_a_restart_and_revoked_ones_stay_revoked(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start() as client:
        kept = create_key(client, "kept")
        gone = create_key(client, "gone")
        revoke_key(client, gone["id"])
        before = list_keys(client)

    clock.advance(3600)
    with start() as client:
        assert list_keys(client) == before
        assert identify(client, kept["key"]) == kept["id"]
        assert identify(client, gone["key"]) is None
        assert runtime_of(client).api_keys.count_active() == 1


# --- the store ----------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_identify_never_touches_the_database(engine: Engine) -> None:
    store = ApiKeyStore(engine, FakeClock())
    created = store.create("portal")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert store.identify(created.key) == created.id
        assert store.identify("rma_unknown") is None
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


def test_a_new_store_knows_nothing_until_it_loads(engine: Engine) -> None:
    created = ApiKeyStore(engine, FakeClock()).create("portal")
    store = ApiKeyStore(engine, FakeClock())
    assert store.identify(created.key) is None
    store.load()
    assert store.identify(created.key) == created.id


def test_keys_created_from_many_threads_are_all_accepted(engine: Engine) -> None:
    store = ApiKeyStore(engine, FakeClock())
    created = []
    lock = threading.Lock()

    def make(n: int) -> None:
        key = store.create(f"portal {n}")
        with lock:
            created.append(key)

    threads = [threading.Thread(target=make, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count_active() == 16
    assert all(store.identify(key.key) == key.id for key in created)
    assert store.list().total == 16


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_api_keys_on_postgres(tmp_path: Path, clock: FakeClock, fresh_postgres_url: str) -> None:
    with running_coordinator(tmp_path / "first", clock, database_url=fresh_postgres_url) as client:
        assert "api_keys" in inspect(runtime_of(client).engine).get_table_names()
        kept = create_key(client, "Beratungsportal 🖥")
        clock.advance(1)
        gone = create_key(client, "gone")
        revoke_key(client, gone["id"])
        assert identify(client, gone["key"]) is None
        body = assert_clean_refusal(client.delete(f"{KEYS}/{new_worker_id()}", headers=ADMIN))
        assert body["code"] == "unknown_api_key"
        for bad in ('{"name": "a\\u0000b"}', '{"name": "  "}'):
            response = client.post(KEYS, content=bad.encode(), headers={**ADMIN, **JSON})
            assert_clean_refusal(response, 422)
        assert_clean_refusal(client.delete(f"{KEYS}/%00", headers=ADMIN))
        before = list_keys(client)

    # Another data dir: the keys live in PostgreSQL, not next to the coordinator.
    with running_coordinator(tmp_path / "second", clock, database_url=fresh_postgres_url) as client:
        assert list_keys(client) == before
        assert before["keys"][1]["name"] == "Beratungsportal 🖥"
        assert identify(client, kept["key"]) == kept["id"]
        assert identify(client, gone["key"]) is None
