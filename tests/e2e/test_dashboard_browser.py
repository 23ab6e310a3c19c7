"""The admin dashboard in a real browser (Debian's chromium) against a real pool.

One pool for most of the module: an ``rma-coordinator`` process and three ``rma-worker``
processes on the session's private dockerd, running the tests' busybox image from the
loopback registry as ``web`` (two replicas), and a client API key for the relay. The
tests click what an admin clicks and check the outcome where it matters: in the relay's
answers, in the admin API, in the cookies the browser holds. They run in file order and
leave the pool as they found it (``web`` on two workers, nobody drained), except that once
an enrollment token exists no new machine may join without one (none joins after that).
Every test fails on a console error, an uncaught exception or a CSP violation in its pages,
except the 401s a signed-out page expects.

The last two tests have their own coordinator with 1,000 workers registered through the
real API (no agents behind them, no Docker) and check the page stays right at that size,
and that text from volunteers' machines is shown as text, never run.

Also saves ``docs/screenshots/dashboard*.png`` (sign-in, desktop, phone) for the README.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.processes import (
    CoordinatorProcess,
    catalog_coordinator,
    web_service,
)
from tests.e2e.simulated_workers import SimulatedWorker, register_workers
from tests.e2e.worker_pool import ProcessPool, running_pool
from tests.fixtures.browser import PHONE_VIEWPORT, Tab, TabFactory
from tests.fixtures.container_images import ECHO_PATH, LocalRegistry
from tests.fixtures.coordinator import wait_until
from tests.fixtures.docker_engine import DockerEngine

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
NAMES = ("ada", "bea", "cyd")
SERVICE = "web"
EVIL_ORIGIN = "https://evil.example"
CROWD = 1000
SHORT_VIEWPORT = {"width": 1280, "height": 480}
"""Short enough that the page scrolls with three workers."""
TOP_BAR = '[data-testid="dashboard"] header'
AT_ONCE_MS = 2_000
"""An action's outcome shows within this, far below the page's 5 s refresh."""


# --------------------------------------------------------------------------- the pool


@dataclass
class Pool(ProcessPool):
    @property
    def url(self) -> str:
        return self.coordinator.url

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.coordinator.admin_token}"}

    def admin(self, method: str, path: str) -> Any:
        response = httpx.request(method, self.url + path, headers=self.admin_headers, timeout=10)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def worker(self, name: str) -> dict[str, Any]:
        return dict(self.admin("GET", f"/api/admin/workers/{self.ids[name]}"))

    def relay(self, key: str | None = None) -> httpx.Response:
        return httpx.get(
            f"{self.url}/api/service/{SERVICE}{ECHO_PATH}",
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=30,
        )

    def answered_by(self, count: int) -> set[str]:
        """The names of the workers that answered ``count`` relayed requests to ``web``."""
        names = {worker_id: name for name, worker_id in self.ids.items()}
        answered = set()
        for _ in range(count):
            response = self.relay()
            assert response.status_code == 200, response.text
            answered.add(names[response.headers["x-rma-worker"]])
        return answered

    def settled(self) -> bool:
        """Nobody drained and ``web`` on two workers, as the tests expect to find the pool."""
        workers = self.coordinator.workers()
        return (
            all(workers[name]["schedulability"] == "active" for name in NAMES)
            and len(self.running(SERVICE)) == 2
        )


@pytest.fixture(scope="module")
def pool(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
    local_registry: LocalRegistry,
) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("dashboard")
    coordinator = catalog_coordinator(root, [web_service(local_registry.image, replicas=2)])
    # A chart point a second, so the charts have a history within the module's run.
    coordinator.env["RMA_HISTORY_INTERVAL"] = "1"
    with running_pool(
        Pool, coordinator, NAMES, root, docker_engine, key_name="dashboard e2e", service=SERVICE
    ) as ready:
        yield ready


# --------------------------------------------------------------------------- the page


def by_id(page: Page | Locator, test_id: str) -> Locator:
    return page.locator(f'[data-testid="{test_id}"]')


def worker_row(page: Page, worker_id: str) -> Locator:
    return page.locator(f'tr[data-testid="worker-row"][data-worker-id="{worker_id}"]')


def cell(row: Locator, column: str) -> Locator:
    return row.locator(f'td[data-col="{column}"]')


def refreshes(page: Page) -> int:
    return int(page.evaluate("Number(document.body.dataset.refreshes || 0)"))


def wait_for_refreshes(page: Page, count: int, timeout_ms: float = 10_000) -> None:
    page.wait_for_function(
        "n => Number(document.body.dataset.refreshes || 0) >= n", arg=count, timeout=timeout_ms
    )


def page_fetch(page: Page, path: str, method: str = "GET", **init: Any) -> dict[str, Any]:
    """``fetch`` from the page itself (its cookies, its origin): the status and JSON body."""
    result = page.evaluate(
        """async ([path, init]) => {
            const response = await fetch(path, init);
            let body = null;
            try { body = await response.json(); } catch (error) { body = null; }
            return {status: response.status, body};
        }""",
        [path, {"method": method, "credentials": "same-origin", **init}],
    )
    return dict(result)


def sign_in(tab: Tab, url: str, token: str, query: str = "") -> Page:
    """Open ``/admin<query>``, sign in through the form, wait for the first full render."""
    page = tab.page
    page.goto(f"{url}/admin{query}")
    expect(by_id(page, "signin-form")).to_be_visible()
    by_id(page, "signin-token").fill(token)
    by_id(page, "signin-submit").click()
    expect(by_id(page, "dashboard")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    return page


def confirm(page: Page) -> None:
    """Accept the open confirm dialog, which must say what it is about."""
    dialog = page.locator('dialog[data-testid="confirm-dialog"]')
    expect(dialog).to_be_visible()
    expect(by_id(dialog, "confirm-message")).not_to_be_empty()
    by_id(dialog, "confirm-ok").click()
    expect(dialog).to_be_hidden()


def choose(page: Page, test_id: str, wanted: str | None) -> None:
    """Pick the option of a filter select whose value or label is ``wanted`` (else the first
    with it as a word in its label); None picks the first option, "any"."""
    select = page.locator(f'select[data-testid="{test_id}"]')
    if wanted is None:
        select.select_option(index=0)
        return
    options = select.locator("option").evaluate_all(
        "options => options.map(o => [o.value, o.textContent.trim()])"
    )
    exact = [i for i, (value, label) in enumerate(options) if wanted in (value, label)]
    worded = [
        i for i, (_, label) in enumerate(options) if re.search(rf"\b{re.escape(wanted)}\b", label)
    ]
    candidates = exact or worded
    if not candidates:
        raise AssertionError(f"{test_id} has no option {wanted!r}: {options}")
    select.select_option(index=candidates[0])


def act_on_worker(page: Page, worker_id: str, action: str, column: str, expected: str) -> None:
    """Click a worker's action button, confirm if asked, and see its cell become ``expected``."""
    row = worker_row(page, worker_id)
    row.locator(f'button[data-action="{action}"]').click()
    dialog = page.locator('dialog[data-testid="confirm-dialog"]')

    def done() -> bool:
        if dialog.is_visible():
            by_id(dialog, "confirm-ok").click()
        return cell(row, column).inner_text().strip() == expected

    wait_until(done, AT_ONCE_MS / 1000 + 3, f"{action} to show {column} {expected!r}")


def sorted_either_way(values: list[str]) -> str | None:
    """``"asc"`` or ``"desc"`` when ``values`` are sorted (case-insensitively), else None."""
    keys = [value.casefold() for value in values]
    if keys == sorted(keys):
        return "asc"
    if keys == sorted(keys, reverse=True):
        return "desc"
    return None


def names_in_table(page: Page) -> list[str]:
    return [
        text.strip()
        for text in page.locator(
            'tr[data-testid="worker-row"] td[data-col="name"]'
        ).all_inner_texts()
    ]


def check_sorting_by_name(page: Page) -> None:
    """Clicking the name header sorts by name; clicking it again sorts the other way."""
    header = page.locator('th[data-sort="name"]')
    header.click()
    wait_until(lambda: sorted_either_way(names_in_table(page)), 5, "rows sorted by name")
    first = sorted_either_way(names_in_table(page))
    header.click()
    other = "desc" if first == "asc" else "asc"
    wait_until(
        lambda: sorted_either_way(names_in_table(page)) == other,
        5,
        f"rows sorted by name the other way ({other}): {names_in_table(page)[:5]}",
    )


def save_screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / name
    page.screenshot(path=str(target), full_page=full_page)
    assert target.stat().st_size > 0
    return target


def number(value: int) -> str:
    """A regex for ``value`` as the page writes counts: with or without thousands separators."""
    return r"[,.\u00a0\u202f ]?".join(f"{value:,}".split(","))


def is_session_probe(text: str) -> bool:
    """Chromium's console line for the page asking ``GET /api/admin/session`` whether it is
    signed in, answered 401 before signing in: chromium logs every 4xx answer as an error."""
    return "status of 401" in text and text.endswith("/api/admin/session)")


def is_unauthorized_load(text: str) -> bool:
    """Chromium's console line for any fetch answered 401, which a signed-out page expects."""
    return "status of 401" in text


# --------------------------------------------------------------------------- the tests


@pytest.mark.docker
def test_a_stranger_sees_only_the_sign_in_form(pool: Pool, browser_tabs: TabFactory) -> None:
    tab = browser_tabs()
    page = tab.page
    page.goto(pool.url + "/admin")
    expect(by_id(page, "signin-form")).to_be_visible()
    expect(by_id(page, "dashboard")).to_be_hidden()
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(0)
    for name in NAMES:
        assert pool.ids[name] not in page.content()
    assert page_fetch(page, "/api/admin/workers")["status"] == 401
    assert page_fetch(page, "/api/admin/overview")["status"] == 401
    save_screenshot(page, "dashboard-signin.png")

    by_id(page, "signin-token").fill("not-the-admin-token-0123456789")
    by_id(page, "signin-submit").click()
    expect(by_id(page, "signin-error")).to_be_visible()
    expect(by_id(page, "signin-error")).not_to_be_empty()
    expect(by_id(page, "dashboard")).to_be_hidden()
    assert not [c for c in tab.context.cookies() if c["name"] == "rma_admin_session"]
    # The form stays usable: the right token still gets in.
    by_id(page, "signin-token").fill(pool.coordinator.admin_token)
    by_id(page, "signin-submit").click()
    expect(by_id(page, "dashboard")).to_be_visible()
    expect(by_id(page, "signin-error")).to_be_hidden()
    tab.assert_clean(allow=is_unauthorized_load)


@pytest.mark.docker
def test_signed_in_the_dashboard_shows_the_pool_as_the_api_does(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    tab = browser_tabs()
    page = sign_in(tab, pool.url, pool.coordinator.admin_token, "?refresh=1000")

    # The session lives in an HttpOnly, SameSite=Strict cookie; the token is not kept.
    (cookie,) = [c for c in tab.context.cookies() if c["name"] == "rma_admin_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    storage = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert pool.coordinator.admin_token not in storage
    assert pool.coordinator.admin_token not in page.content()

    for name in NAMES:
        row = worker_row(page, pool.ids[name])
        expect(cell(row, "id")).to_contain_text(pool.ids[name][:8])
        expect(cell(row, "name")).to_have_text(name)
        expect(cell(row, "liveness")).to_have_text("online")
        expect(cell(row, "schedulability")).to_have_text("active")
        expect(cell(row, "trusted")).to_have_text("no")
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(len(NAMES))
    expect(by_id(page, "workers-count")).to_have_text(
        re.compile(rf"Showing {len(NAMES)} of {len(NAMES)} workers")
    )
    # The running service's workers show it in their containers cell.
    for name in pool.running(SERVICE):
        expect(cell(worker_row(page, pool.ids[name]), "containers")).to_contain_text(SERVICE)

    overview = pool.admin("GET", "/api/admin/overview")
    stats = overview["stats"]
    for test_id, value in {
        "stat-online": stats["online_workers"],
        "stat-active": stats["active_workers"],
        "stat-offline": stats["offline_workers"],
        "stat-total": stats["total_workers"],
        "stat-requests": overview["relay"]["requests_total"],
        "stat-errors": overview["relay"]["errors_total"],
    }.items():
        expect(by_id(page, test_id)).to_have_text(str(value))
    assert (stats["total_workers"], stats["online_workers"]) == (3, 3)

    service = page.locator(f'tr[data-testid="service-row"][data-service="{SERVICE}"]')
    expect(cell(service, "desired")).to_have_text("2")
    expect(cell(service, "placed")).to_have_text("2")
    expect(cell(service, "running")).to_have_text("2")
    for chart in ("chart-workers", "chart-requests", "chart-latency"):
        expect(page.locator(f'svg[data-testid="{chart}"]')).to_be_visible()
    expect(by_id(page, "last-updated")).not_to_be_empty()

    # It keeps refreshing by itself, and a change made elsewhere (here through the API)
    # shows in the rows.
    seen = refreshes(page)
    wait_for_refreshes(page, seen + 2, timeout_ms=6_000)
    trusted = worker_row(page, pool.ids["cyd"])
    pool.admin("POST", f"/api/admin/workers/{pool.ids['cyd']}/trust")
    try:
        expect(cell(trusted, "trusted")).to_have_text("yes", timeout=3_000)
    finally:
        pool.admin("POST", f"/api/admin/workers/{pool.ids['cyd']}/untrust")
    expect(cell(trusted, "trusted")).to_have_text("no", timeout=3_000)
    tab.assert_clean(allow=is_session_probe)


@pytest.mark.docker
def test_draining_a_worker_in_the_page_keeps_relayed_requests_off_it(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    runners = pool.running(SERVICE)
    assert len(runners) == 2, runners
    wait_until(lambda: pool.answered_by(4) == runners, 20, "both workers running web to answer")
    victim = sorted(runners)[0]
    victim_id = pool.ids[victim]

    tab = browser_tabs()
    page = sign_in(tab, pool.url, pool.coordinator.admin_token)  # the default 5 s refresh
    row = worker_row(page, victim_id)
    row.locator('button[data-action="drain"]').click()
    dialog = page.locator('dialog[data-testid="confirm-dialog"]')
    expect(dialog).to_be_visible()
    expect(by_id(dialog, "confirm-message")).to_contain_text(
        re.compile(f"{victim}|{victim_id[:8]}")
    )
    # Cancel changes nothing.
    by_id(dialog, "confirm-cancel").click()
    expect(dialog).to_be_hidden()
    assert pool.worker(victim)["schedulability"] == "active"

    row.locator('button[data-action="drain"]').click()
    expect(dialog).to_be_visible()
    by_id(dialog, "confirm-ok").click()
    expect(cell(row, "schedulability")).to_have_text("drained", timeout=AT_ONCE_MS)
    try:
        assert pool.worker(victim)["schedulability"] == "drained"
        answered = pool.answered_by(40)
        assert victim not in answered, f"the drained worker {victim} still got requests"
        assert answered, "nobody answered"
    finally:
        act_on_worker(page, victim_id, "undrain", "schedulability", "active")
    assert pool.worker(victim)["schedulability"] == "active"
    wait_until(pool.settled, 60, f"web back on two workers; the pool said:\n{pool.logs()}")
    tab.assert_clean(allow=is_session_probe)


@pytest.mark.docker
def test_an_api_key_made_in_the_page_works_until_it_is_revoked_there(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    tab = browser_tabs()
    page = sign_in(tab, pool.url, pool.coordinator.admin_token)
    section = by_id(page, "api-keys")
    by_id(section, "apikey-name").fill("browser test portal")
    by_id(section, "apikey-create").click()
    secret = section.locator('code[data-testid="new-secret"]')
    expect(secret).to_have_text(re.compile(r"^\s*rma_\S{16,}\s*$"))
    key = secret.inner_text().strip()

    answer = pool.relay(key)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-rma-worker"] in pool.ids.values()

    (listed,) = [
        k
        for k in pool.admin("GET", "/api/admin/api-keys")["keys"]
        if k["name"] == "browser test portal"
    ]
    assert key.startswith(listed["prefix"])
    row = page.locator(f'tr[data-testid="apikey-row"][data-key-id="{listed["id"]}"]')
    expect(cell(row, "status")).to_have_text("active")
    row.locator('button[data-action="revoke"]').click()
    confirm(page)
    expect(cell(row, "status")).to_have_text("revoked", timeout=AT_ONCE_MS)
    refused = pool.relay(key)
    assert refused.status_code == 401, refused.text
    assert pool.relay().status_code == 200, "revoking one key touched another"

    # The secret was shown once: a reload shows the key's prefix, never the key.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(cell(row, "status")).to_have_text("revoked")
    assert key not in page.content()
    tab.assert_clean(allow=is_session_probe)


@pytest.mark.docker
def test_an_enrollment_token_made_in_the_page_is_listed(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    tab = browser_tabs()
    page = sign_in(tab, pool.url, pool.coordinator.admin_token)
    section = by_id(page, "enrollment-tokens")
    expect(by_id(section, "enrollment-mode")).not_to_be_empty()
    by_id(section, "enroll-name").fill("Leeds office volunteers")
    by_id(section, "enroll-create").click()
    listed = wait_until(
        lambda: [
            t
            for t in pool.admin("GET", "/api/admin/enrollment-tokens")["tokens"]
            if t["name"] == "Leeds office volunteers"
        ],
        5,
        "the new enrollment token in the API's list",
    )
    expect(
        page.locator(f'tr[data-testid="enroll-row"][data-token-id="{listed[0]["id"]}"]')
    ).to_be_visible(timeout=AT_ONCE_MS)
    tab.assert_clean(allow=is_session_probe)


@pytest.mark.docker
def test_the_session_is_useless_to_another_site(pool: Pool, browser_tabs: TabFactory) -> None:
    tab = browser_tabs(base_url=pool.url)
    page = sign_in(tab, pool.url, pool.coordinator.admin_token)
    target = pool.ids[NAMES[-1]]
    drain = f"/api/admin/workers/{target}/drain"

    # The page itself, with its cookie but without the CSRF header: refused.
    assert page_fetch(page, drain, "POST")["status"] == 403
    # The browser's cookie jar from outside the page (no Origin, no CSRF token).
    request = tab.context.request
    assert request.post(drain).status == 403
    # A session of its own, with the right CSRF token, but another site's Origin.
    signed = request.post("/api/admin/session", data={"token": pool.coordinator.admin_token})
    assert signed.status == 200, signed.text()
    csrf = signed.json()["csrf_token"]
    evil = request.post(drain, headers={"X-CSRF-Token": csrf, "Origin": EVIL_ORIGIN})
    assert evil.status == 403, evil.text()
    cross = request.post(drain, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403, cross.text()
    wrong = request.post(drain, headers={"X-CSRF-Token": csrf[::-1], "Origin": pool.url})
    assert wrong.status == 403, wrong.text()
    # Without any cookie: not signed in at all.
    assert httpx.post(pool.url + drain, timeout=10).status_code == 401
    assert pool.worker(NAMES[-1])["schedulability"] == "active"

    # The same session with its token from this site may change things (a harmless one).
    untrust = request.post(
        f"/api/admin/workers/{target}/untrust",
        headers={"X-CSRF-Token": csrf, "Origin": pool.url},
    )
    assert untrust.status == 200, untrust.text()
    tab.assert_clean(allow=lambda text: is_session_probe(text) or "status of 403" in text)


@pytest.mark.docker
def test_a_session_ended_elsewhere_takes_the_pool_off_the_page(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    tab = browser_tabs(base_url=pool.url)
    page = sign_in(tab, pool.url, pool.coordinator.admin_token, "?refresh=1000")
    csrf = page_fetch(page, "/api/admin/session")["body"]["csrf_token"]
    # As the admin's other tab signing out would: the same cookie, its CSRF token.
    ended = tab.context.request.delete(
        "/api/admin/session", headers={"X-CSRF-Token": csrf, "Origin": pool.url}
    )
    assert ended.status == 204, ended.text()
    expect(by_id(page, "signin-form")).to_be_visible(timeout=5_000)
    expect(by_id(page, "signin-notice")).not_to_be_empty()
    expect(by_id(page, "dashboard")).to_be_hidden()
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(0)
    tab.assert_clean(allow=is_unauthorized_load)


@pytest.mark.docker
def test_filtering_sorting_and_refreshing_keep_the_view(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    tab = browser_tabs(viewport=SHORT_VIEWPORT)
    page = sign_in(tab, pool.url, pool.coordinator.admin_token, "?refresh=1000")
    check_sorting_by_name(page)

    table_filter = by_id(page, "workers-filter")
    table_filter.fill("bea")
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(1)
    expect(worker_row(page, pool.ids["bea"])).to_be_visible()
    expect(by_id(page, "workers-count")).to_have_text(re.compile(r"Showing 1 of 3 workers"))

    # Where the admin scrolled and what they typed survive the refreshes.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0, "the page does not scroll at this height; the test needs it to"
    wait_for_refreshes(page, refreshes(page) + 2)
    assert page.evaluate("window.scrollY") == scrolled
    expect(table_filter).to_have_value("bea")
    expect(table_filter).to_be_focused()
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(1)

    # The selects filter too; together with the text they can match nobody.
    table_filter.fill("")
    choose(page, "filter-liveness", "offline")
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(0)
    expect(by_id(page, "workers-count")).to_have_text(re.compile(r"Showing 0 of 3 workers"))
    choose(page, "filter-liveness", None)
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(3)
    tab.assert_clean(allow=is_session_probe)


@pytest.mark.docker
def test_screenshots_and_a_phone_without_sideways_scrolling(
    pool: Pool, browser_tabs: TabFactory
) -> None:
    wait_until(
        lambda: len(pool.admin("GET", "/api/admin/overview")["history"]) >= 10,
        20,
        "ten points of chart history",
    )
    desktop = browser_tabs()
    page = sign_in(desktop, pool.url, pool.coordinator.admin_token, "?refresh=1000")
    wait_for_refreshes(page, refreshes(page) + 1)
    save_screenshot(page, "dashboard.png", full_page=True)
    assert not overlapping_text(page, TOP_BAR)
    # On a laptop the whole workers table fits, the action buttons included.
    table_fits = page.locator('table[data-testid="workers-table"]').evaluate(
        "table => table.getBoundingClientRect().width <= table.parentElement.clientWidth + 1"
    )
    assert table_fits, "the workers table needs sideways scrolling at 1280 px"

    phone = browser_tabs(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    phone.page.goto(pool.url + "/admin")
    expect(by_id(phone.page, "signin-form")).to_be_visible()
    assert no_sideways_scroll(phone.page)
    small = sign_in(phone, pool.url, pool.coordinator.admin_token)
    expect(worker_row(small, pool.ids["ada"])).to_be_attached()
    assert no_sideways_scroll(small), "the phone-sized page scrolls sideways"
    save_screenshot(small, "dashboard-phone.png")
    phone_overlaps = overlapping_text(small, TOP_BAR)

    # Signing out ends the session: the page shows the form and the API refuses it.
    by_id(page, "signout").click()
    expect(by_id(page, "signin-form")).to_be_visible()
    expect(by_id(page, "dashboard")).to_be_hidden()
    assert page_fetch(page, "/api/admin/workers")["status"] == 401
    desktop.assert_clean(allow=is_unauthorized_load)
    phone.assert_clean(allow=is_unauthorized_load)
    assert not phone_overlaps, "words drawn over each other on a phone"


def overlapping_text(page: Page, container: str) -> list[str]:
    """Pairs of visible elements without element children (text, icons, buttons) inside
    ``container`` whose boxes overlap: words drawn over each other."""
    pairs = page.locator(container).evaluate(
        """(root) => {
            const boxes = [...root.querySelectorAll('*')]
                .filter(e => e.children.length === 0 && e.getClientRects().length)
                .map(e => [e, e.getBoundingClientRect()])
                .filter(([, r]) => r.width > 0 && r.height > 0);
            const name = e => `${e.tagName.toLowerCase()} "${e.textContent.trim().slice(0, 30)}"`;
            const found = [];
            for (let i = 0; i < boxes.length; i++) {
                for (let j = i + 1; j < boxes.length; j++) {
                    const [a, r] = boxes[i], [b, s] = boxes[j];
                    const x = Math.min(r.right, s.right) - Math.max(r.left, s.left);
                    const y = Math.min(r.bottom, s.bottom) - Math.max(r.top, s.top);
                    if (x > 1 && y > 1) found.push(`${name(a)} overlaps ${name(b)}`);
                }
            }
            return found;
        }"""
    )
    return list(pairs)


def no_sideways_scroll(page: Page) -> bool:
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    return bool(max(widths[0], widths[2]) <= widths[1])


# --------------------------------------------------------------------------- 1,000 workers


@dataclass
class Crowd:
    coordinator: CoordinatorProcess
    workers: list[SimulatedWorker]


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crowd]:
    # No services, and an hour between heartbeats: the workers stay online unattended.
    coordinator = catalog_coordinator(tmp_path_factory.mktemp("crowd"), [], heartbeat_interval=3600)
    coordinator.start()
    try:
        yield Crowd(coordinator, register_workers(coordinator.url, CROWD, prefix="crowd"))
    finally:
        with contextlib.suppress(Exception):
            coordinator.stop()


def test_a_thousand_workers_are_counted_filtered_and_sorted(
    crowd: Crowd, browser_tabs: TabFactory
) -> None:
    tab = browser_tabs(viewport=SHORT_VIEWPORT)
    page = sign_in(tab, crowd.coordinator.url, crowd.coordinator.admin_token, "?refresh=1000")
    expect(by_id(page, "stat-total")).to_have_text(str(CROWD))
    expect(by_id(page, "stat-online")).to_have_text(str(CROWD))
    expect(by_id(page, "workers-count")).to_have_text(
        re.compile(rf"Showing {number(CROWD)} of {number(CROWD)} workers")
    )
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(CROWD)

    check_sorting_by_name(page)

    one = crowd.workers[637]
    table_filter = by_id(page, "workers-filter")
    table_filter.fill(one.name)
    expect(by_id(page, "workers-count")).to_have_text(
        re.compile(rf"Showing 1 of {number(CROWD)} workers")
    )
    expect(page.locator('tr[data-testid="worker-row"]')).to_have_count(1)
    row = worker_row(page, one.worker_id)
    expect(cell(row, "name")).to_have_text(one.name)
    expect(cell(row, "tier")).to_contain_text(str(one.tier))

    # By tier: a third of them.
    table_filter.fill("")
    choose(page, "filter-tier", "2")
    tier2 = sum(1 for worker in crowd.workers if worker.tier == 2)
    expect(by_id(page, "workers-count")).to_have_text(
        re.compile(rf"Showing {number(tier2)} of {number(CROWD)} workers")
    )
    choose(page, "filter-tier", None)

    # Deep in the long table, a refresh leaves the admin where they were.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight / 2)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0
    wait_for_refreshes(page, refreshes(page) + 2)
    assert page.evaluate("window.scrollY") == scrolled
    tab.assert_clean(allow=is_session_probe)


HOSTILE = '<img src=x onerror="window.__owned=1"><script>window.__owned=2</script>'


def test_text_from_workers_is_shown_as_text_and_never_run(
    crowd: Crowd, browser_tabs: TabFactory
) -> None:
    """Names, versions and GPU models come from volunteers' machines: markup stays text."""
    registered = httpx.post(
        crowd.coordinator.url + "/api/worker/register",
        json={
            "capabilities": {
                "cpu_cores": 8,
                "ram": "32GB",
                "gpu_memory": "16GB",
                "gpu_type": f"RTX {HOSTILE}",
                "gpu_driver": "nvidia",
            },
            "name": f"evil {HOSTILE}",
            "agent_version": f"1.0 {HOSTILE}",
        },
        timeout=10,
    )
    assert registered.status_code == 200, registered.text
    worker_id = registered.json()["worker_id"]

    tab = browser_tabs()
    page = sign_in(tab, crowd.coordinator.url, crowd.coordinator.admin_token)
    by_id(page, "workers-filter").fill("onerror")
    row = worker_row(page, worker_id)
    expect(cell(row, "name")).to_contain_text(f"evil {HOSTILE}")
    expect(cell(row, "agent_version")).to_contain_text(HOSTILE)
    assert row.locator("img, script").count() == 0
    assert page.evaluate("window.__owned") is None
    tab.assert_clean(allow=is_session_probe)
