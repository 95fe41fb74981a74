"""The console in a real browser (headless Chromium) against a running daemon replaying the demo.

Checks what an analyst sees, after the browser ran the page (CSP, script, SVG layout): the firing
alert with its numbers and evidence headlines, a key page whose chart has drawn paths and bars, and a
silence created through the form with the typed token. Screenshots go to reports/console/.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from monitor.config import REPO_ROOT
from tests.integration.web.browser import chromium, full_page_screenshot
from tests.integration.web.demo_daemon import TOKEN, running_demo

pytestmark = pytest.mark.integration
SHOTS = REPO_ROOT / "reports" / "console"


def _csp_violations(session: WebDriver) -> list[str]:
    return [e["message"] for e in session.get_log("browser") if "Content Security Policy" in e["message"]]


def check_overview(session: WebDriver, base: str) -> None:
    session.get(base + "/")
    firing = session.find_element(By.ID, "firing")
    cards = firing.find_elements(By.CSS_SELECTOR, "article.alert.firing")
    keys = [c.find_element(By.CSS_SELECTOR, "a.key").text for c in cards]
    assert "ticker:WFC" in keys, keys
    wfc = cards[keys.index("ticker:WFC")]
    headlines = [li.text for li in wfc.find_elements(By.CSS_SELECTOR, "ol.evidence li")]
    assert headlines and all("WFC" in h or "Wells Fargo" in h for h in headlines), headlines
    numbers = {dt.text for dt in wfc.find_elements(By.CSS_SELECTOR, "dl.fields dt")}
    assert {"z_ewma", "z_robust", "baseline_neg_share"} <= numbers
    assert "EVENT TIME (WATERMARK)" in session.find_element(By.ID, "clock").text.upper()
    assert session.find_element(By.ID, "event-now").text.startswith("2026-11-05 15:")
    full_page_screenshot(session, SHOTS / "overview.png")


def check_key_page(session: WebDriver, base: str) -> None:
    session.get(base + "/keys/ticker%3AWFC?range=24h")
    chart = session.find_element(By.ID, "chart")
    box = chart.rect
    assert box["width"] > 800 and box["height"] > 300, box
    share = chart.find_element(By.CSS_SELECTOR, "path.share")
    assert share.get_attribute("d", ).startswith("M") and share.size["width"] > 100
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.vol")
    assert len(bars) > 10 and any(r.size["height"] > 5 for r in bars)
    assert chart.find_elements(By.CSS_SELECTOR, "rect.negc")
    assert chart.find_elements(By.CSS_SELECTOR, "g.marker.firing")
    evidence = session.find_elements(By.CSS_SELECTOR, "#evidence ol.evidence li a")
    assert evidence and all(a.get_attribute("href").startswith("https://") for a in evidence)
    full_page_screenshot(session, SHOTS / "key-ticker-WFC-24h.png")
    session.get(base + "/keys/ticker%3ABA?range=7d")
    assert session.find_elements(By.CSS_SELECTOR, "#chart g.marker.resolved")
    full_page_screenshot(session, SHOTS / "key-ticker-BA-7d.png")


def create_silence_through_the_form(session: WebDriver, base: str) -> None:
    session.get(base + "/")
    form = session.find_element(By.ID, "silence-form")
    form.find_element(By.NAME, "matcher").send_keys("topic:legal_regulation")
    form.find_element(By.NAME, "comment").send_keys("browser test")
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(session, 10).until(expected_conditions.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "#silences table"), "topic:legal_regulation"))
    row = session.find_element(By.XPATH, "//section[@id='silences']//tr[td/b='topic:legal_regulation']")
    assert "ACTIVE" in row.text.upper() and "2026-11-05" in row.text  # judged and shown in event time
    assert not _csp_violations(session)


async def test_console_renders_alerts_chart_and_evidence_in_chromium(tmp_path: Path) -> None:
    async with running_demo(tmp_path) as daemon:
        def drive() -> None:
            with chromium() as session:
                check_overview(session, daemon.base)
                check_key_page(session, daemon.base)
                create_silence_through_the_form(session, daemon.base)

        await asyncio.wait_for(asyncio.to_thread(drive), 110)
    stored = await daemon.app.alerting.state.list_silences()
    assert [s.matcher for s in stored] == ["topic:legal_regulation"]
