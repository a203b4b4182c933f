"""The published website as a visitor sees it, in headless Debian Chromium driven by Selenium.

The embedded Lixia report is published twice with the library's steps (first without its
largest money figures, then whole), the catalog and the pages are written, and ``published/``
is served on 127.0.0.1. Chromium and chromedriver come from Debian: `.ci/install-browser`.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import struct
import threading
import urllib.request
import zlib
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from _helpers import REPO, make_project

from reportdata import pipeline
from reportdata.catalog import write_catalog
from reportdata.project import load
from reportdata.pull import pull
from reportdata.site import write_site

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "reports" / "screenshots"
HELD_BACK = 3  # money figures left out of the first version, added by the second
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--lang=zh-CN",
)  # fmt: skip


# ---------------------------------------------------------------------------- the site


def _publish_twice(root: Path) -> Path:
    """Publish lixia without its largest money figures, then whole: two versions."""
    proj = load(root)
    parts = []
    for source in proj.sources_of("lixia"):
        parts.append(pipeline.extract_source(proj, source, pull(proj, source).snapshot))
    rows = pipeline.merge(parts)
    money = sorted(
        (r for r in rows["indicators"] if r["unit_family"] == "money"),
        key=lambda r: -r["value_base"],
    )
    held = {r["indicator_id"] for r in money[:HELD_BACK]}
    first = {**rows, "indicators": [r for r in rows["indicators"] if r["indicator_id"] not in held]}
    assert pipeline.release(proj, "lixia", pipeline.frames(first)).version == "1.0.0"
    assert pipeline.release(proj, "lixia", pipeline.frames(rows)).version == "1.1.0"
    return proj.published_dir


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _publish_twice(make_project(tmp_path_factory.mktemp("site")))
    write_catalog(folder)
    write_site(folder)
    return folder


class Site:
    """``published/`` served on 127.0.0.1, with every path asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits: list[str] = []
        hits = self.hits

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fetch(self, url: str) -> tuple[int, bytes]:
        """GET ``url`` from this server, without any proxy."""
        assert url.startswith(self.base), url
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as response:
            return response.status, response.read()


@pytest.fixture(scope="module")
def site(published: Path) -> Iterator[Site]:
    served = Site(published)
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        served.thread.join(timeout=5)


# ---------------------------------------------------------------------------- the browser


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"Headless Chromium is needed but missing ({', '.join(missing)}): "
            "run `.ci/install-browser` (as root) to install Debian's chromium and "
            "chromium-driver.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _require_browser()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[test]'.", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.get("about:blank")  # leave the start page (Chromium's own chrome:// resources)
    requested_urls(driver)  # and forget what it loaded: from here on, only our pages count
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """URLs of the requests the browser sent since the last call (the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_only_local(driver: Any, site: Site) -> list[str]:
    urls = requested_urls(driver)
    outside = [u for u in urls if not u.startswith(site.base)]
    assert not outside, f"requests left 127.0.0.1: {outside}"
    return urls


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    state = driver.execute_script("return document.readyState")
    assert state == "complete"


# ---------------------------------------------------------------------------- helpers


def latest_package(published: Path) -> dict[str, Any]:
    version = json.loads((published / "lixia" / "latest.json").read_text("utf-8"))["version"]
    return json.loads((published / "lixia" / version / "datapackage.json").read_text("utf-8"))


def png_pixels_vary(data: bytes) -> bool:
    """True when a PNG's decoded scanlines hold many different byte values (not one colour)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw)) > 32


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """A full-page PNG, saved in tmp_path and copied to reports/screenshots/."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    data = base64.b64decode(shot["data"])
    path = tmp_path / name
    path.write_bytes(data)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SCREENSHOTS / name)
    return path


# ---------------------------------------------------------------------------- tests


def test_chromium_and_chromedriver_are_installed() -> None:
    _require_browser()  # fails, saying to run .ci/install-browser, rather than skipping
    for program in (CHROMIUM, CHROMEDRIVER):
        assert os.access(program, os.X_OK), f"{program} is not executable"


def test_catalog_page_leads_to_the_dataset_page(browser: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    package = latest_package(site.folder)
    open_page(browser, site.base + "index.html")
    card = browser.find_element(By.CSS_SELECTOR, 'li.dataset[data-dataset="lixia"]')
    assert package["title"] in card.text
    assert f"最新版本 {package['version']}" in card.text
    assert package["version"] == "1.1.0"
    card.find_element(By.CSS_SELECTOR, "h2 a").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/lixia/index.html"))
    assert browser.find_element(By.TAG_NAME, "h1").text == package["title"]
    urls = assert_only_local(browser, site)
    assert site.base + "lixia/index.html" in urls  # the click sent the browser there
    assert "/lixia/index.html" in site.hits  # and the local server answered it


def test_dataset_page_shows_history_changelog_and_columns(browser: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, site.base + "lixia/index.html")
    history = browser.find_element(By.ID, "history")
    rows = history.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-version") for r in rows] == ["1.1.0", "1.0.0"]
    for row in rows:
        version = row.get_attribute("data-version")
        change = json.loads((site.folder / "lixia" / version / "changes.json").read_text("utf-8"))
        assert row.is_displayed()
        for reason in change["reasons"]:
            assert reason in row.text

    changelog = (site.folder / "lixia" / "CHANGELOG.md").read_text("utf-8")
    shown = browser.find_element(By.ID, "changelog").text
    headings = [line.lstrip("#").strip() for line in changelog.splitlines() if line[:1] == "#"]
    assert headings
    for heading in headings:
        assert heading.replace("`", "") in shown

    tables = browser.find_element(By.ID, "tables")
    assert tables.is_displayed()
    for resource in latest_package(site.folder)["resources"]:
        for field in resource.get("schema", {}).get("fields", []):
            assert field["description"] in tables.text, field["name"]
    assert_only_local(browser, site)


def test_every_download_link_resolves(browser: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, site.base + "lixia/index.html")
    links = browser.find_elements(By.CSS_SELECTOR, "#downloads a, #changelog a, footer a")
    urls = sorted({a.get_attribute("href") for a in links})
    names = {urlsplit(u).path.rsplit("/", 1)[-1] for u in urls}
    expected = {"datapackage.json", "changes.json", "indicators.csv", "indicators.json",
                "lixia.duckdb", "CHANGELOG.md", "catalog.json"}  # fmt: skip
    assert expected <= names, names
    assert site.base + "lixia/lixia.duckdb" in urls  # every version in one DuckDB file
    for url in urls:
        status, body = site.fetch(url)
        assert status == 200, url
        assert body == (site.folder / urlsplit(url).path.lstrip("/")).read_bytes(), url
    catalog = json.loads(site.fetch(site.base + "catalog.json")[1])
    for res in catalog["datasets"][0]["versions"][0]["resources"]:
        assert urljoin(site.base, res["url"]) in urls
    assert_only_local(browser, site)


def test_charts_render_with_bars(browser: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, site.base + "lixia/index.html")
    charts = browser.find_elements(By.CSS_SELECTOR, "#charts svg.chart")
    assert {c.get_attribute("data-chart") for c in charts} == {
        "money-by-section", "figures-by-family", "largest-money",
    }  # fmt: skip
    indicators = json.loads((site.folder / "lixia" / "1.1.0" / "indicators.json").read_text())
    money = [r for r in indicators if r["unit_family"] == "money" and r["value_base"] > 0]
    families = {r["unit_family"] for r in indicators}
    expected_bars = {
        "largest-money": min(10, len(money)),
        "figures-by-family": len(families),
    }
    for chart in charts:
        assert chart.is_displayed()
        assert chart.size["width"] > 200 and chart.size["height"] > 20
        bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
        assert bars, chart.get_attribute("data-chart")
        name = chart.get_attribute("data-chart")
        if name in expected_bars:
            assert len(bars) == expected_bars[name]
        for bar in bars:
            assert bar.size["width"] > 0 and bar.size["height"] > 0
        widths = [bar.size["width"] for bar in bars]
        assert widths == sorted(widths, reverse=True)  # largest first, drawn to scale
    biggest = max(money, key=lambda r: r["value_base"])
    top = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="largest-money"]')
    assert biggest["quantity_text"] in top.text
    assert_only_local(browser, site)


def test_screenshots_of_a_page_people_can_read(browser: Any, site: Site, tmp_path: Path) -> None:
    open_page(browser, site.base + "lixia/index.html")
    desktop = screenshot(browser, tmp_path, "site-lixia-desktop.png")
    phone_metrics = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone_metrics)
    try:
        open_page(browser, site.base + "lixia/index.html")
        width = browser.execute_script("return document.documentElement.clientWidth")
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert width == 390 and scroll <= width, "the page scrolls sideways on a phone"
        phone = screenshot(browser, tmp_path, "site-lixia-phone.png")
        open_page(browser, site.base + "index.html")
        catalog = screenshot(browser, tmp_path, "site-catalog-phone.png")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    for path in (desktop, phone, catalog):
        data = path.read_bytes()
        assert len(data) > 20_000, path
        assert png_pixels_vary(data), f"{path} is one flat colour"
        assert (SCREENSHOTS / path.name).read_bytes() == data
    assert_only_local(browser, site)
