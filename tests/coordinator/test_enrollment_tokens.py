"""Enrollment tokens: created and revoked by admins, shown once, needed by new machines."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session

from coordinator.db import make_engine, migrate
from coordinator.workers.enrollment import EnrollmentTokenStore

from .conftest import (
    ADMIN,
    ENROLLMENT_TOKEN,
    SEED_CAPABILITIES,
    START_TIME,
    FakeClock,
    StartCoordinator,
    bearer,
    new_worker_id,
    register,
    running_coordinator,
    runtime_of,
    total_workers,
)
from .test_api_keys import BAD_CREATIONS, JSON, assert_admin_only, when
from .test_bad_input import assert_clean_refusal

TOKENS = "/api/admin/enrollment-tokens"
REGISTER = "/api/worker/register"


def admin(client: TestClient, method: str, path: str, status: int = 200, **options: Any) -> Any:
    """An admin call that must answer ``status``; its JSON body."""
    response = client.request(method, path, headers=ADMIN, **options)
    assert response.status_code == status, response.text
    return response.json()


def create(client: TestClient, name: str = "Leeds office volunteers") -> dict[str, Any]:
    created: dict[str, Any] = admin(client, "POST", TOKENS, 201, json={"name": name})
    return created


def listing(client: TestClient) -> dict[str, Any]:
    listed: dict[str, Any] = admin(client, "GET", TOKENS)
    return listed


def by_id(client: TestClient) -> dict[str, dict[str, Any]]:
    return {token["id"]: token for token in listing(client)["tokens"]}


def join(client: TestClient, token: str | None = None, **fields: Any) -> Any:
    """A new machine's registration, with ``token`` as its enrollment token."""
    body = {"capabilities": SEED_CAPABILITIES, **fields}
    if token is not None:
        body["enrollment_token"] = token
    return client.post(REGISTER, json=body)


def refused(response: Any, code: str) -> str:
    """Assert a 401 with ``code``; its message."""
    body = assert_clean_refusal(response, 401)
    assert body["code"] == code, body
    detail: str = body["detail"]
    return detail


# --- creating and listing -----------------------------------------------------------------


def test_created_token_is_shown_once_and_listed_by_its_prefix(client: TestClient) -> None:
    created = create(client, "  Leeds office volunteers  ")
    token = created["token"]
    assert token.startswith("rma_join_") and len(token) >= 9 + 43
    assert created["prefix"] == token[:13]
    assert created["name"] == "Leeds office volunteers"
    assert when(created["created_at"]) == datetime.fromtimestamp(START_TIME, UTC)

    listed = listing(client)
    assert listed == {
        "tokens": [
            {
                "id": created["id"],
                "name": "Leeds office volunteers",
                "prefix": token[:13],
                "created_at": created["created_at"],
                "revoked_at": None,
                "active": True,
                "workers_enrolled": 0,
                "last_used_at": None,
            }
        ],
        "total": 1,
        "required": True,
        "from_settings": False,
    }
    text = client.get(TOKENS, headers=ADMIN).text
    assert token not in text and token[13:] not in text


def test_each_token_is_new_and_the_list_is_newest_first(
    client: TestClient, clock: FakeClock
) -> None:
    first = create(client, "first")
    clock.advance(10)
    second = create(client, "second")
    assert first["token"] != second["token"] and first["id"] != second["id"]
    assert [t["name"] for t in listing(client)["tokens"]] == ["second", "first"]
    assert listing(client)["total"] == 2


# --- who may join -------------------------------------------------------------------------


def test_a_pool_is_open_until_its_first_token(client: TestClient) -> None:
    assert listing(client) == {"tokens": [], "total": 0, "required": False, "from_settings": False}
    assert join(client).status_code == 200
    assert join(client, "anything-at-all").status_code == 200

    token = create(client)["token"]
    assert "enrollment token" in refused(join(client), "enrollment_required")
    assert "not valid" in refused(join(client, "rma_join_guessed"), "bad_enrollment")
    for near_miss in (token[:13], token + "x", token.upper(), " " + token, ""):
        refused(join(client, near_miss), "bad_enrollment")
    assert join(client, token).status_code == 200
    assert total_workers(client) == 3


def test_a_revoked_token_is_refused_and_revoking_every_token_keeps_the_pool_closed(
    client: TestClient, clock: FakeClock
) -> None:
    kept = create(client, "kept")
    gone = create(client, "gone")
    clock.advance(60)
    revoked = admin(client, "DELETE", f"{TOKENS}/{gone['id']}")
    assert (revoked["id"], revoked["name"], revoked["active"]) == (gone["id"], "gone", False)
    assert when(revoked["revoked_at"]) == datetime.fromtimestamp(START_TIME + 60, UTC)
    assert "token" not in revoked

    assert "revoked" in refused(join(client, gone["token"]), "bad_enrollment")
    assert join(client, kept["token"]).status_code == 200

    clock.advance(60)
    assert admin(client, "DELETE", f"{TOKENS}/{gone['id']}") == revoked  # harmless, unchanged
    admin(client, "DELETE", f"{TOKENS}/{kept['id']}")
    listed = listing(client)
    assert listed["required"] is True and listed["total"] == 2
    assert [t["active"] for t in listed["tokens"]] == [False, False]
    refused(join(client), "enrollment_required")
    refused(join(client, kept["token"]), "bad_enrollment")
    assert total_workers(client) == 1


def test_the_settings_token_works_beside_the_stored_ones(start: StartCoordinator) -> None:
    with start(enrollment_token=ENROLLMENT_TOKEN) as client:
        assert listing(client) == {
            "tokens": [],
            "total": 0,
            "required": True,
            "from_settings": True,
        }
        refused(join(client), "enrollment_required")
        assert join(client, ENROLLMENT_TOKEN).status_code == 200

        stored = create(client)
        assert join(client, stored["token"]).status_code == 200
        assert join(client, ENROLLMENT_TOKEN).status_code == 200
        admin(client, "DELETE", f"{TOKENS}/{stored['id']}")
        assert join(client, ENROLLMENT_TOKEN).status_code == 200
        refused(join(client, stored["token"]), "bad_enrollment")
        # The settings token is counted nowhere: it is not a stored token.
        assert by_id(client)[stored["id"]]["workers_enrolled"] == 1
        assert total_workers(client) == 4


def test_each_machine_that_joins_is_counted_on_its_token(
    client: TestClient, clock: FakeClock
) -> None:
    leeds = create(client, "Leeds")
    york = create(client, "York")
    for _ in range(2):
        clock.advance(5)
        assert join(client, leeds["token"]).status_code == 200
    clock.advance(5)
    assert join(client, york["token"]).status_code == 200
    refused(join(client, "rma_join_wrong"), "bad_enrollment")

    tokens = by_id(client)
    assert tokens[leeds["id"]]["workers_enrolled"] == 2
    assert when(tokens[leeds["id"]]["last_used_at"]) == datetime.fromtimestamp(START_TIME + 10, UTC)
    assert tokens[york["id"]]["workers_enrolled"] == 1
    assert when(tokens[york["id"]]["last_used_at"]) == datetime.fromtimestamp(START_TIME + 15, UTC)


def test_a_known_worker_registers_again_without_a_token(
    client: TestClient, clock: FakeClock
) -> None:
    created = create(client)
    worker = register(client, enrollment_token=created["token"], name="alice-pc")
    admin(client, "DELETE", f"{TOKENS}/{created['id']}")
    clock.advance(30)

    again = register(client, worker_id=worker.worker_id, headers=worker.headers)
    assert (again.worker_id, again.token) == (worker.worker_id, worker.token)
    # Presenting the revoked token changes nothing for a worker the registry knows.
    again = register(
        client,
        worker_id=worker.worker_id,
        headers=worker.headers,
        enrollment_token=created["token"],
    )
    assert again.worker_id == worker.worker_id
    assert by_id(client)[created["id"]]["workers_enrolled"] == 1
    # An id the registry does not know is a new machine, which needs a valid token.
    refused(join(client, worker_id=new_worker_id()), "enrollment_required")
    assert total_workers(client) == 1


def test_a_refused_registration_counts_no_use(client: TestClient) -> None:
    created = create(client)
    worker = register(client, enrollment_token=created["token"])
    # The id is taken and the token is not this worker's: refused before enrolling.
    response = join(client, created["token"], worker_id=worker.worker_id)
    assert assert_clean_refusal(response, 409)["code"] == "worker_id_taken"
    assert by_id(client)[created["id"]]["workers_enrolled"] == 1


# --- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize("body", BAD_CREATIONS.values(), ids=BAD_CREATIONS.keys())
def test_bad_creation_is_a_422_with_a_message(client: TestClient, body: str) -> None:
    response = client.post(TOKENS, content=body.encode(), headers={**ADMIN, **JSON})
    assert_clean_refusal(response, 422)
    assert listing(client)["total"] == 0
    assert listing(client)["required"] is False


def test_a_blank_name_says_what_is_wrong(client: TestClient) -> None:
    body = assert_clean_refusal(client.post(TOKENS, json={"name": "  "}, headers=ADMIN), 422)
    assert "name" in body["detail"] and "empty" in body["detail"]


def test_unknown_token_id_is_a_404_with_a_message(client: TestClient) -> None:
    unknown = new_worker_id()
    body = assert_clean_refusal(client.delete(f"{TOKENS}/{unknown}", headers=ADMIN), 404)
    assert body["code"] == "unknown_enrollment_token"
    assert unknown in body["detail"] and TOKENS in body["detail"]


@pytest.mark.parametrize("token_id", ["x", "12345", "%00", "'; DROP TABLE enrollment_tokens"])
def test_malformed_token_id_is_refused_cleanly(client: TestClient, token_id: str) -> None:
    create(client)
    assert_clean_refusal(client.delete(f"{TOKENS}/{token_id}", headers=ADMIN), 422)
    assert listing(client)["tokens"][0]["active"] is True


# --- who may manage them ------------------------------------------------------------------


def test_token_management_needs_the_admin_token(client: TestClient) -> None:
    created = create(client)
    worker = register(client, enrollment_token=created["token"])
    calls = [
        ("POST", TOKENS, {"name": "sneaky"}),
        ("GET", TOKENS, None),
        ("DELETE", f"{TOKENS}/{created['id']}", None),
    ]
    assert_admin_only(client, calls, worker.token, created["token"])
    # An enrollment token lets a machine join; it opens nothing else.
    response = client.get(TOKENS, headers=bearer(created["token"]))
    assert assert_clean_refusal(response, 401)["code"] == "bad_token"
    assert [t["active"] for t in listing(client)["tokens"]] == [True]


def test_creation_revocation_and_use_are_logged_without_the_token(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="coordinator.workers"):
        created = create(client, "Leeds")
        worker = register(client, enrollment_token=created["token"])
        admin(client, "DELETE", f"{TOKENS}/{created['id']}")
    token = f"{created['id']} (Leeds)"
    for line in (
        f"Enrollment token {token} created",
        f"Worker {worker.worker_id} (None) joined as tier 1",
        f"(enrolled by enrollment token {token})",
        f"Enrollment token {token} revoked",
    ):
        assert line in caplog.text
    secret = created["token"]
    assert secret not in caplog.text and secret[13:] not in caplog.text


def test_openapi_describes_the_routes_in_words(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    words = {("post", TOKENS): "only", ("get", TOKENS): "required"}
    words["delete", f"{TOKENS}/{{token_id}}"] = "closes"
    for (method, path), word in words.items():
        assert word in paths[path][method]["description"], (method, path)
    assert "201" in paths[TOKENS]["post"]["responses"]


# --- restarts -----------------------------------------------------------------------------


def test_tokens_survive_a_restart_and_the_pool_stays_closed(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start() as client:
        kept = create(client, "kept")
        gone = create(client, "gone")
        admin(client, "DELETE", f"{TOKENS}/{gone['id']}")
        assert join(client, kept["token"]).status_code == 200
        before = listing(client)

    clock.advance(3600)
    with start() as client:
        assert listing(client) == before
        refused(join(client), "enrollment_required")
        refused(join(client, gone["token"]), "bad_enrollment")
        assert join(client, kept["token"]).status_code == 200


# --- the store ----------------------------------------------------------------------------


def test_a_use_is_counted_only_when_the_registration_commits(client: TestClient) -> None:
    engine = runtime_of(client).engine
    store = EnrollmentTokenStore(engine, FakeClock(), settings_token=None)
    created = store.create("Leeds")

    class RegistrationFailed(Exception):
        pass

    with pytest.raises(RegistrationFailed), Session(engine) as session, session.begin():
        store.enroll(session, created.token)
        raise RegistrationFailed
    (token,) = store.list().tokens
    assert (token.workers_enrolled, token.last_used_at) == (0, None)


def assert_machines_joining_at_once_are_each_counted(engine: Engine) -> None:
    store = EnrollmentTokenStore(engine, FakeClock(), settings_token=None)
    created = store.create("Leeds")
    outcomes: list[str] = []

    def enroll() -> None:
        with Session(engine) as session, session.begin():
            outcomes.append(store.enroll(session, created.token))

    threads = [threading.Thread(target=enroll) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 16
    assert store.list().tokens[0].workers_enrolled == 16


def test_machines_joining_at_once_are_each_counted(client: TestClient) -> None:
    assert_machines_joining_at_once_are_each_counted(runtime_of(client).engine)


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_enrollment_tokens_on_postgres(
    tmp_path: Path, clock: FakeClock, fresh_postgres_url: str
) -> None:
    with running_coordinator(tmp_path / "first", clock, database_url=fresh_postgres_url) as client:
        tables = inspect(runtime_of(client).engine).get_table_names()
        assert "enrollment_tokens" in tables
        assert join(client).status_code == 200
        kept = create(client, "Büro Köln 🖥")
        clock.advance(1)
        gone = create(client, "gone")
        admin(client, "DELETE", f"{TOKENS}/{gone['id']}")
        assert join(client, kept["token"]).status_code == 200
        refused(join(client, gone["token"]), "bad_enrollment")
        refused(join(client), "enrollment_required")
        for bad in BAD_CREATIONS.values():
            response = client.post(TOKENS, content=bad.encode(), headers={**ADMIN, **JSON})
            assert_clean_refusal(response, 422)
        for token_id, status in (("%00", 422), (new_worker_id(), 404)):
            assert_clean_refusal(client.delete(f"{TOKENS}/{token_id}", headers=ADMIN), status)
        before = listing(client)
        assert before["tokens"][1]["workers_enrolled"] == 1

    # Another data dir: the tokens live in PostgreSQL, not next to the coordinator.
    with running_coordinator(tmp_path / "second", clock, database_url=fresh_postgres_url) as client:
        assert listing(client) == before
        assert before["tokens"][1]["name"] == "Büro Köln 🖥"
        refused(join(client), "enrollment_required")
        assert join(client, kept["token"]).status_code == 200
        assert by_id(client)[kept["id"]]["workers_enrolled"] == 2


@pytest.mark.postgres
def test_machines_joining_at_once_are_each_counted_on_postgres(
    fresh_postgres_url: str,
) -> None:
    engine = make_engine(fresh_postgres_url)
    try:
        migrate(engine)
        assert_machines_joining_at_once_are_each_counted(engine)
    finally:
        engine.dispose()
