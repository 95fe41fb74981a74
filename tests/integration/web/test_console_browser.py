"""The console in a real browser (headless Chromium) against a running daemon replaying the demo.

Checks what an analyst sees, after the browser ran the page (CSP, script, SVG layout): the firing
alert with its numbers and evidence headlines, a key page whose chart has drawn paths and bars, and a
silence created through the form with the typed token. Screenshots go to reports/console/.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from monitor.config import REPO_ROOT
from tests.chaos.harness import RedisProcess, running
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


FAST_REFRESH = ("window.FINSENT_CONSOLE_TIMING = "
                "{refreshMs: 1500, typingMs: 8000, firstRetryMs: 500, fetchTimeoutMs: 3000};")
"""console.js's refresh timings, shortened (30 s refresh, 2 min of typing) so a test waits seconds, not minutes."""


class Relay:
    """A TCP relay in front of the daemon that can refuse connections, as a stopped or restarting daemon does
    (``ERR_CONNECTION_REFUSED``), and accept them again; the browser only ever talks to the relay."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()  # kept-alive connections too: a stopped daemon drops them
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65_536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


def _open_marked(session: WebDriver, url: str) -> None:
    """Open ``url`` with the console's short test timings, and mark its body: a refresh swaps the body, so the mark
    is gone once the page refreshed."""
    session.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAST_REFRESH})
    session.get(url)
    session.execute_script("document.body.dataset.mark = 'first'")


def _refresh_state(session: WebDriver) -> str:
    return str(session.execute_script(
        "const b = document.getElementById('refresh-state'); return b ? b.textContent : '';"))


async def test_the_console_says_the_daemon_is_unreachable_and_recovers_when_it_is_back(tmp_path: Path) -> None:
    """Found by review: after a daemon restart the tab stayed on the browser's ERR_CONNECTION_REFUSED page for
    good (a blind ``location.reload()``; the error page has no script to retry)."""
    async with running_demo(tmp_path) as daemon:
        relay = Relay(int(daemon.base.rsplit(":", 1)[1]))
        await relay.start()
        base = f"http://127.0.0.1:{relay.port}"
        loop = asyncio.get_running_loop()

        def drive() -> None:
            with chromium() as session:
                _open_marked(session, base + "/")
                asyncio.run_coroutine_threadsafe(relay.stop(), loop).result(10)
                WebDriverWait(session, 10).until(lambda s: "unreachable since" in _refresh_state(s))
                banner = _refresh_state(session)
                assert "UTC" in banner and "retrying" in banner, banner
                assert session.find_element(By.ID, "event-now").text.startswith("2026-11-05 15:")  # the page stays
                full_page_screenshot(session, SHOTS / "overview-daemon-unreachable.png")
                asyncio.run_coroutine_threadsafe(relay.start(), loop).result(10)  # the daemon is back
                WebDriverWait(session, 15).until(
                    lambda s: s.execute_script("return document.body.dataset.mark") is None)
                assert _refresh_state(session) == "" and session.find_elements(By.ID, "firing")
                assert session.title.endswith("finsent monitor") and not _csp_violations(session)

        try:
            await asyncio.wait_for(asyncio.to_thread(drive), 90)
        finally:
            if relay.server is not None and relay.server.is_serving():
                await relay.stop()


def _event_now(session: WebDriver) -> str:
    """The event time the page shows (the clock bar's), as the console's notes should quote it."""
    return str(session.execute_script("return document.getElementById('event-now').textContent.trim();"))


async def test_a_value_left_typed_pauses_the_refresh_for_a_while_not_for_good(tmp_path: Path) -> None:
    """Found by review: any input whose value differed from its default (a silence refused with a wrong token, text
    left in the "Go to key" box) stopped the refresh for good, and the clock bar showed old event time as now. Then,
    by the regression review, focus did: the submit button keeps it after a refused silence, and a key box left
    focused without typing counted as "in use" for good (the test blurred both, hiding it). The note gave the
    page's wall-clock load time as its event time."""
    async with running_demo(tmp_path) as daemon:
        def drive() -> None:
            with chromium() as session:
                _open_marked(session, daemon.base + "/")
                event_now = _event_now(session)
                assert event_now.startswith("2026-11-05 15:")
                form = session.find_element(By.ID, "silence-form")
                form.find_element(By.NAME, "matcher").send_keys("ticker:WFC")
                form.find_element(By.NAME, "token").send_keys("wrong-token-000000000")
                form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                WebDriverWait(session, 10).until(expected_conditions.text_to_be_present_in_element(
                    (By.ID, "silence-result"), "401"))
                note = _refresh_state(session)
                assert "Auto-refresh paused" in note and f"event time up to {event_now}, fetched " in note, note
                assert session.execute_script("return document.activeElement.tagName") != "BUTTON"
                session.find_element(By.CSS_SELECTOR, "header.top input[name=key]").send_keys("ticker:w")
                time.sleep(4)  # typed within the last typingMs, focus left in the key box: still paused, values kept
                assert session.execute_script("return document.body.dataset.mark") == "first"
                assert "Auto-refresh paused" in _refresh_state(session)
                WebDriverWait(session, 20).until(
                    lambda s: s.execute_script("return document.body.dataset.mark") is None)
                assert _refresh_state(session) == ""
                # the refresh keeps what was typed and not sent (it wiped a half-typed silence form of an analyst
                # who had looked at another tab: found by the second regression review), and the focus
                key_box = session.find_element(By.CSS_SELECTOR, "header.top input[name=key]")
                assert key_box.get_attribute("value") == "ticker:w"
                matcher = session.find_element(By.ID, "silence-form").find_element(By.NAME, "matcher")
                assert matcher.get_attribute("value") == "ticker:WFC"
                assert session.execute_script("return document.activeElement.name") == "key"

        await asyncio.wait_for(asyncio.to_thread(drive), 90)


async def test_a_dependency_outage_is_named_with_its_reason_not_as_an_unreachable_daemon(tmp_path: Path) -> None:
    """Found by the regression review: with Redis down the daemon answers a 503 page naming the error, and the
    banner said "Daemon unreachable ... (it answered 503)" without it (``location.reload()`` had shown that page)."""
    (tmp_path / "demo").mkdir()
    with running(RedisProcess(tmp_path).start()) as redis:
        assert isinstance(redis, RedisProcess)
        async with running_demo(tmp_path / "demo", store_url=redis.url) as daemon:
            def drive() -> None:
                with chromium() as session:
                    _open_marked(session, daemon.base + "/")
                    event_now = _event_now(session)
                    redis.stop()
                    WebDriverWait(session, 20).until(lambda s: "dependency is unreachable" in _refresh_state(s))
                    banner = _refresh_state(session)
                    assert banner.startswith("Daemon up, a dependency is unreachable since "), banner
                    assert "ConnectionError" in banner and "(see /readyz)" in banner, banner
                    assert f"event time up to {event_now}, fetched " in banner, banner
                    assert session.execute_script("return document.body.dataset.mark") == "first"  # the page stays
                    redis.start()
                    WebDriverWait(session, 30).until(
                        lambda s: s.execute_script("return document.body.dataset.mark") is None)
                    assert _refresh_state(session) == "" and session.find_elements(By.ID, "firing")

            await asyncio.wait_for(asyncio.to_thread(drive), 120)
