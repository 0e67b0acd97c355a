"""The web app in a real Chromium (Debian's ``chromium``, driven by Playwright) against a live ``yolostack serve``:
sign in with the printed link and with a password, create an API key, see it once and use it with curl, the
XSS probe, and the narrow screen. Each page's screenshot is saved (``YOLOSTACK_SCREENSHOTS``, default
``build/screenshots``) for docs/web.md and for a person to look at.

SQLite only: the pages' behaviour against each database is covered in-process by the other tests here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.fixtures.database import IN_CI
from tests.fixtures.server import LiveServer, run_cli, serving
from tests.fixtures.synthetic import make_yolo_detect, zip_dir

pytestmark = [pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("YOLOSTACK_SCREENSHOTS", CHECKOUT / "build" / "screenshots"))
PASSWORD = "a browser's password"
# Headless, and quiet on a machine with no internet: Chromium's own background connections are refused here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    found = os.environ.get("YOLOSTACK_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if IN_CI:
            pytest.fail("CI needs Chromium (.ci/run installs Debian's chromium package)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async with serving("sqlite", tmp_path_factory.mktemp("browser") / "data") as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; a script error, or an asset (script, stylesheet, icon, fetch) that failed to load,
    on any page it opened fails the test. Pages themselves may answer 401 or 404: the tests ask for those."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    try:
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on(
            "response",
            lambda response: (
                errors.append(f"{response.status} {response.url}")
                if response.status >= 400 and response.request.resource_type != "document"
                else None
            ),
        )
        yield tab
    finally:
        context.close()
    assert errors == [], errors


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_with_password(page: Page, server: LiveServer) -> None:
    result = run_cli("users", "set-password", "admin", env=server.env, stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    page.goto(f"{server.base_url}/settings/api-keys")
    expect(page).to_have_url(f"{server.base_url}/login?next=%2Fsettings%2Fapi-keys")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.base_url}/settings/api-keys")


class TestSignIn:
    def test_the_printed_link_signs_in_once(self, server: LiveServer, page: Page) -> None:
        link = server.sign_in_link
        assert link is not None, server.output
        page.goto(link)
        shot(page, "sign-in-link")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Welcome, Administrator")).to_be_visible()
        shot(page, "home")
        page.goto(link)
        expect(page.get_by_role("alert")).to_contain_text("used or has expired")

    def test_a_password_signs_in_and_sign_out_ends_it(self, server: LiveServer, page: Page) -> None:
        page.goto(f"{server.base_url}/login")
        shot(page, "sign-in")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password")
        sign_in_with_password(page, server)
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{server.base_url}/login")
        page.goto(f"{server.base_url}/")
        expect(page).to_have_url(f"{server.base_url}/login")


class TestApiKeys:
    def test_create_see_once_use_with_curl(self, server: LiveServer, page: Page) -> None:
        sign_in_with_password(page, server)
        page.get_by_label("Name").fill("from the browser")
        page.get_by_label("projects").check()
        page.get_by_role("button", name="Create key").click()
        key = page.get_by_label("The new API key").input_value()
        assert key.startswith("ul_")
        shot(page, "api-keys-created")

        curl = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: Bearer {key}", f"{server.base_url}/api/projects"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert '"success":true' in curl.stdout
        page.goto(f"{server.base_url}/settings/api-keys")
        expect(page.get_by_role("cell", name="from the browser", exact=True)).to_be_visible()
        assert key not in page.content()
        shot(page, "api-keys")

    def test_a_hostile_name_runs_nothing(self, server: LiveServer, page: Page) -> None:
        sign_in_with_password(page, server)
        hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
        page.get_by_label("Name").fill(hostile)
        page.get_by_role("button", name="Create key").click()
        page.goto(f"{server.base_url}/settings/api-keys")
        expect(page.get_by_role("cell", name=hostile, exact=True)).to_be_visible()
        assert page.evaluate("window.pwned") is None

    def test_fits_a_phone_screen(self, server: LiveServer, browser: Browser) -> None:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        try:
            phone = context.new_page()
            sign_in_with_password(phone, server)
            for path in ("/", "/settings/api-keys"):
                phone.goto(f"{server.base_url}{path}")
                assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path
            shot(phone, "api-keys-390px")
        finally:
            context.close()


class TestDatasetUpload:
    def test_an_archive_uploaded_in_the_browser_is_ingested(
        self, server: LiveServer, page: Page, tmp_path: Path
    ) -> None:
        archive = zip_dir(make_yolo_detect(tmp_path / "src", images=6), tmp_path / "shapes.zip")
        sign_in_with_password(page, server)
        page.get_by_role("link", name="Datasets").click()
        page.get_by_label("Name").fill("Browser shapes")
        page.get_by_role("button", name="Create dataset").click()
        expect(page).to_have_url(f"{server.base_url}/admin/datasets/browser-shapes")
        page.get_by_label("Drop a dataset archive here", exact=False).set_input_files(str(archive))
        expect(page.locator("[data-ingest-status]")).to_have_attribute(
            "data-ingest-status", "completed", timeout=90_000
        )
        expect(page.locator("#ingest-status")).to_contain_text("6 / 6 images")
        shot(page, "dataset-ingested")
        page.reload()
        expect(page.get_by_text("6 (train")).to_be_visible()


class TestTrash:
    def test_trash_and_restore(self, server: LiveServer, page: Page) -> None:
        assert server.key is not None
        created = httpx.post(
            f"{server.base_url}/api/projects",
            headers={"Authorization": f"Bearer {server.key}"},
            json={"project": "to-restore", "name": "To restore"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        deleted = httpx.delete(
            f"{server.base_url}/api/projects/admin/to-restore",
            headers={"Authorization": f"Bearer {server.key}"},
            timeout=30,
        )
        assert deleted.status_code < 300, deleted.text
        sign_in_with_password(page, server)
        page.get_by_role("link", name="Trash").click()
        expect(page.get_by_role("cell", name="To restore", exact=True)).to_be_visible()
        shot(page, "trash")
        page.get_by_role("button", name="Restore To restore").click()
        expect(page.get_by_text("The trash is empty.")).to_be_visible()
        page.goto(f"{server.base_url}/admin/to-restore")
        expect(page.get_by_role("heading", name="To restore")).to_be_visible()
