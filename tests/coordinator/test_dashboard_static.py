"""The dashboard's page and files: what is served, with which headers, and nothing else."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from coordinator.dashboard.routes import CONTENT_SECURITY_POLICY, STATIC_FILES


@pytest.mark.parametrize("path", ["/admin", "/admin/"])
def test_the_page_is_served_with_headers_that_lock_it_down(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-cache"
    assert 'data-testid="dashboard"' in response.text


def test_every_file_the_page_names_is_served_with_its_type(client: TestClient) -> None:
    page = client.get("/admin").text
    named = set(re.findall(r'(?:src|href)="/admin/static/([^"?]+)"', page))

    assert named == set(STATIC_FILES) - {"index.html"}
    for name in named:
        response = client.get(f"/admin/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == STATIC_FILES[name]
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_has_no_inline_script_or_style(client: TestClient) -> None:
    """The policy forbids them, so they would silently not work."""
    page = client.get("/admin").text

    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "<style" not in page
    assert re.search(r"\sstyle=", page) is None
    assert re.search(r"\son[a-z]+=", page) is None


def test_an_unchanged_file_is_answered_with_304(client: TestClient) -> None:
    first = client.get("/admin/static/dashboard.js")
    etag = first.headers["etag"]

    again = client.get("/admin/static/dashboard.js", headers={"If-None-Match": etag})
    changed = client.get("/admin/static/dashboard.js", headers={"If-None-Match": '"other"'})

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert changed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/admin/static/routes.py",
        "/admin/static/..%2Froutes.py",
        "/admin/static/../routes.py",
        "/admin/static/%2e%2e/__init__.py",
        "/admin/static/",
        "/admin/static/index.html.bak",
    ],
)
def test_nothing_outside_the_allow_list_is_served(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert "__future__" not in response.text


def test_the_page_and_its_files_need_no_sign_in(client: TestClient) -> None:
    """The page holds no data: everything it shows comes from the admin API, which does."""
    assert client.get("/admin/static/icon.svg").status_code == 200
    assert client.get("/api/admin/workers").status_code == 401


def test_the_dashboard_is_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path.startswith("/admin")]
