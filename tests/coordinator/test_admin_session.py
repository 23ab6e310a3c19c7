"""The dashboard's sign-in: session cookie, CSRF token, cross-site refusals, throttling."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordinator.admin.sessions import (
    MAX_SESSIONS,
    MAX_THROTTLED_CLIENTS,
    SESSION_COOKIE,
    SessionStore,
    SignInThrottle,
    cross_site_reason,
)
from tests.coordinator.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    FakeClock,
    StartCoordinator,
    register,
    runtime_of,
)


def sign_in(client: TestClient, token: str = ADMIN_TOKEN, **headers: str) -> Any:
    return client.post("/api/admin/session", json={"token": token}, headers=headers)


def signed_in(client: TestClient) -> str:
    """Sign in and return the CSRF token."""
    response = sign_in(client)
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    return csrf


def test_sign_in_sets_an_httponly_strict_cookie_and_gives_a_csrf_token(
    client: TestClient,
) -> None:
    response = sign_in(client, origin="http://testserver")

    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/api/admin" in cookie  # never sent with relayed requests to workers
    assert "Secure" not in cookie  # plain HTTP here; set over HTTPS
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert len(body["csrf_token"]) >= 40
    assert ADMIN_TOKEN not in response.text


def test_a_signed_in_browser_reads_admin_data_without_the_token(client: TestClient) -> None:
    worker = register(client)
    assert client.get("/api/admin/workers").status_code == 401
    signed_in(client)

    response = client.get("/api/admin/workers")

    assert response.status_code == 200
    assert [w["worker_id"] for w in response.json()["workers"]] == [worker.worker_id]
    assert client.get("/api/admin/session").status_code == 200


def test_changes_need_the_csrf_token(client: TestClient) -> None:
    worker = register(client)
    csrf = signed_in(client)
    path = f"/api/admin/workers/{worker.worker_id}/drain"

    missing = client.post(path)
    wrong = client.post(path, headers={"X-CSRF-Token": "x" * 43})
    right = client.post(path, headers={"X-CSRF-Token": csrf})

    assert missing.status_code == 403
    assert missing.json()["code"] == "csrf_failed"
    assert "X-CSRF-Token" in missing.json()["detail"]
    assert wrong.status_code == 403
    assert right.status_code == 200
    assert right.json()["schedulability"] == "drained"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "http://[bad"},
    ],
)
def test_cross_site_requests_are_refused_even_with_the_csrf_token(
    client: TestClient, headers: dict[str, str]
) -> None:
    worker = register(client)
    csrf = signed_in(client)

    drain = client.post(
        f"/api/admin/workers/{worker.worker_id}/drain", headers={"X-CSRF-Token": csrf, **headers}
    )
    read = client.get("/api/admin/workers", headers=headers)

    assert drain.status_code == 403
    assert drain.json()["code"] == "cross_site"
    assert read.status_code == 403
    assert client.get(f"/api/admin/workers/{worker.worker_id}").json()["schedulability"] == (
        "active"
    )


def test_same_site_browser_requests_pass(client: TestClient) -> None:
    worker = register(client)
    csrf = signed_in(client)

    response = client.post(
        f"/api/admin/workers/{worker.worker_id}/trust",
        headers={
            "X-CSRF-Token": csrf,
            "Origin": "http://testserver",
            "Sec-Fetch-Site": "same-origin",
        },
    )

    assert response.status_code == 200
    assert response.json()["trusted"] is True


@pytest.mark.parametrize("origin", ["https://evil.example", "http://[bad", "http://[::1"])
def test_a_cross_site_sign_in_is_refused(client: TestClient, origin: str) -> None:
    response = sign_in(client, origin=origin)

    assert response.status_code == 403
    assert response.json()["code"] == "cross_site"
    assert "set-cookie" not in response.headers


def test_the_bearer_token_still_works_and_needs_no_csrf(client: TestClient) -> None:
    worker = register(client)

    response = client.post(f"/api/admin/workers/{worker.worker_id}/drain", headers=ADMIN)

    assert response.status_code == 200


def test_a_bad_bearer_token_is_not_rescued_by_a_session(client: TestClient) -> None:
    signed_in(client)

    response = client.get("/api/admin/workers", headers={"Authorization": "Bearer wrong"})

    assert response.status_code == 401
    assert response.json()["code"] == "bad_token"


def test_the_session_endpoint_needs_a_session_not_a_token(client: TestClient) -> None:
    response = client.get("/api/admin/session", headers=ADMIN)

    assert response.status_code == 401
    assert response.json()["code"] == "missing_token"


def test_a_wrong_token_is_refused_in_plain_words(client: TestClient) -> None:
    response = sign_in(client, token="not-the-admin-token")

    assert response.status_code == 401
    assert response.json()["code"] == "bad_token"
    assert "admin-token file" in response.json()["detail"]
    assert "set-cookie" not in response.headers


def test_an_empty_or_missing_token_is_a_422(client: TestClient) -> None:
    assert client.post("/api/admin/session", json={"token": ""}).status_code == 422
    assert client.post("/api/admin/session", json={}).status_code == 422
    assert client.post("/api/admin/session", content=b"{").status_code == 422


def test_sign_out_ends_the_session(client: TestClient) -> None:
    csrf = signed_in(client)
    cookie = client.cookies[SESSION_COOKIE]

    refused = client.delete("/api/admin/session")
    response = client.delete("/api/admin/session", headers={"X-CSRF-Token": csrf})

    assert refused.status_code == 403
    assert response.status_code == 204
    assert f"{SESSION_COOKIE}=" in response.headers["set-cookie"]
    client.cookies.set(SESSION_COOKIE, cookie)  # a copy kept by an attacker
    reuse = client.get("/api/admin/workers")
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "session_expired"


def test_a_forged_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, "forged")

    response = client.get("/api/admin/overview")

    assert response.status_code == 401
    assert response.json()["code"] == "session_expired"


def test_sessions_end_after_idle_time_and_move_on_with_use(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start(admin_session_idle=600, admin_session_max_age=3600) as client:
        signed_in(client)
        clock.advance(500)
        assert client.get("/api/admin/stats").status_code == 200  # used: 600 s more
        clock.advance(500)
        assert client.get("/api/admin/stats").status_code == 200
        clock.advance(601)
        assert client.get("/api/admin/stats").status_code == 401


def test_sessions_end_at_their_maximum_age_however_used(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start(admin_session_idle=600, admin_session_max_age=1000) as client:
        signed_in(client)
        for _ in range(3):
            clock.advance(300)
            assert client.get("/api/admin/stats").status_code == 200
        clock.advance(101)
        assert client.get("/api/admin/stats").status_code == 401


def test_a_restart_signs_everybody_out(start: StartCoordinator) -> None:
    with start() as client:
        signed_in(client)
        cookie = client.cookies[SESSION_COOKIE]
    with start() as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/api/admin/stats").status_code == 401


def test_guessing_is_throttled(client: TestClient) -> None:
    for _ in range(10):
        assert sign_in(client, token="guess-guess-guess").status_code == 401

    response = sign_in(client)

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "try again" in response.json()["detail"]


def test_guessing_bearer_tokens_is_throttled_too(client: TestClient) -> None:
    for _ in range(10):
        wrong = client.get("/api/admin/stats", headers={"Authorization": "Bearer guess-guess"})
        assert wrong.status_code == 401

    blocked = client.get("/api/admin/stats", headers=ADMIN)

    assert blocked.status_code == 429
    assert blocked.json()["code"] == "too_many_attempts"
    assert sign_in(client).status_code == 429


def test_the_throttle_remembers_a_bounded_number_of_clients() -> None:
    throttle = SignInThrottle(FakeClock(), failures=2, window=60)
    throttle.failed("first")
    throttle.failed("first")
    assert throttle.retry_after("first") > 0
    for index in range(MAX_THROTTLED_CLIENTS):
        throttle.failed(f"client-{index}")

    assert throttle.retry_after("first") == 0  # forgotten, the oldest
    assert throttle.retry_after(f"client-{MAX_THROTTLED_CLIENTS - 1}") == 0  # 1 of 2 failures
    throttle.failed(f"client-{MAX_THROTTLED_CLIENTS - 1}")
    assert throttle.retry_after(f"client-{MAX_THROTTLED_CLIENTS - 1}") > 0


def test_throttle_forgives_after_the_window_and_after_success() -> None:
    clock = FakeClock()
    throttle = SignInThrottle(clock, failures=3, window=60)
    for _ in range(3):
        throttle.failed("a")
    assert throttle.retry_after("a") == 61
    assert throttle.retry_after("b") == 0
    clock.advance(61)
    assert throttle.retry_after("a") == 0
    throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0


def test_the_store_keeps_a_bounded_number_of_sessions() -> None:
    store = SessionStore(FakeClock(), idle_timeout=60, max_age=600)
    first, _ = store.start()
    for _ in range(MAX_SESSIONS):
        store.start()

    assert store.find(first) is None
    assert store.count() == MAX_SESSIONS


@pytest.mark.parametrize(
    ("origin", "fetch_site", "host", "refused"),
    [
        (None, None, "pool.example", False),
        ("https://pool.example", "same-origin", "pool.example", False),
        ("http://pool.example:8080", None, "pool.example:8080", False),
        ("https://POOL.example", None, "pool.example", False),
        ("https://pool.example:8443", None, "pool.example", True),
        ("https://evil.example", None, "pool.example", True),
        (None, "cross-site", "pool.example", True),
        (None, "same-site", "pool.example", False),
        ("https://pool.example", None, None, True),
    ],
)
def test_cross_site_reason(
    origin: str | None, fetch_site: str | None, host: str | None, refused: bool
) -> None:
    assert (cross_site_reason(origin, fetch_site, host) is not None) is refused


def test_session_routes_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert set(paths["/api/admin/session"]) == {"get", "post", "delete"}
    assert "/api/admin/overview" in paths
    runtime_of(client)  # the app started
