"""The admin dashboard end to end in real headless Chromium: log in, open a source, keep a screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (/usr/bin/chromium,
/usr/bin/chromedriver): skipped without them, unless CANARY_REQUIRE names
"browser". The screenshot is kept in $CANARY_TEST_ARTIFACTS (default:
test-artifacts/ at the top of the repository, ignored by git).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from support.admin_helpers import EVIL, PASSWORD, admin_config, fill
from support.alert_helpers import sqlite_registry  # noqa: F401 (fixture)
from listener.admin import create_admin_app
from listener.wsgi import HttpServer
from support.needs import missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing("browser", "needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1400", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard(sqlite_registry):
    fill(sqlite_registry)
    app = create_admin_app(sqlite_registry, admin_config())  # Secure cookies, as in production
    with HttpServer(app, host="127.0.0.1", port=0, threads=2) as server:
        host, port = server.address
        yield f"http://{host}:{port}"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def _go(browser, by: str, target: str) -> None:
    """Click a button or link and wait until the next page replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old_page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(by, target).click()
    WebDriverWait(browser, 10).until(lambda _: _replaced(old_page))


def _replaced(element) -> bool:
    """Whether ``element`` left the document. Chromedriver says so with a stale-element error, or,
    when the check races the navigation, with "Node ... does not belong to the document"."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as err:
        if "does not belong to the document" in str(err):
            return True
        raise
    return False


def test_log_in_and_read_a_source_page(browser, dashboard):
    from selenium.webdriver.common.by import By

    browser.get(f"{dashboard}/sources/lis-rennes")
    assert "/login" in browser.current_url  # not logged in: sent to the form
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys("not the password")
    _go(browser, By.CSS_SELECTOR, "form button[type=submit]")
    assert "Wrong user name or password." in browser.find_element(By.CSS_SELECTOR, ".error").text
    browser.find_element(By.ID, "username").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    _go(browser, By.CSS_SELECTOR, "form button[type=submit]")

    # Chromium took the Secure, SameSite=Strict session cookie over http://127.0.0.1 and came back.
    assert browser.current_url == f"{dashboard}/sources/lis-rennes"
    assert browser.find_element(By.TAG_NAME, "h1").text == "lis-rennes"
    chart = browser.find_element(By.CSS_SELECTOR, "figure.chart svg.timeline")
    assert chart.size["width"] > 600 and chart.size["height"] > 150
    assert len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")) >= 5
    rows = browser.find_elements(By.CSS_SELECTOR, "table.canaries tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["1", "2", "3"]
    assert {p.text for p in browser.find_elements(By.CSS_SELECTOR, "table.canaries .pill")} == \
        {"planted", "missing", "retired"}
    # The stylesheet loaded under the CSP (style-src 'self'): the header is dark blue.
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(16, 42, 67, 1)"

    artifacts = Path(os.environ.get("CANARY_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "admin-dashboard.png"
    png = browser.get_screenshot_as_png()
    shot.write_bytes(png)
    width, height = _png_size(png)
    assert width >= 1000 and height >= 600 and len(png) > 30_000  # a real page, not a blank one

    # The sources page shows the hostile source name as text, and no script ran.
    _go(browser, By.LINK_TEXT, "Sources")
    assert browser.find_element(By.LINK_TEXT, EVIL).text == EVIL
    _go(browser, By.LINK_TEXT, EVIL)
    assert browser.find_element(By.TAG_NAME, "h1").text == EVIL
    assert browser.execute_script("return document.scripts.length") == 0

    _go(browser, By.CSS_SELECTOR, "form.logout button")
    assert "/login" in browser.current_url
    browser.get(f"{dashboard}/incidents")
    assert "/login" in browser.current_url
