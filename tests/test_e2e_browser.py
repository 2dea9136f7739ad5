"""A subscriber's whole journey in headless Chromium, against `digest serve` and a real SMTP server.

Subscribe -> confirmation email -> confirm -> change topics -> `digest send` delivers a digest on
the new topics -> RFC 8058 one-click unsubscribe through its List-Unsubscribe URL -> no more mail.
Screenshots of every page (phone width, and the preferences page on a desktop) go to
test-artifacts/web/.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from digest.mail.sink import Received, SmtpSink, free_port

CHROME, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
PHONE = (390, 844)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROME.exists() and DRIVER.exists()) and not os.environ.get("CI"),
                       reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"),
]


def digest_cmd(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "digest"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "digest.cli", *args]


def run(env: dict, *args: str) -> str:
    done = subprocess.run(digest_cmd(*args), env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"digest {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def wait_for_mail(sink: SmtpSink, count: int, timeout: float = 20) -> list[Received]:
    end = time.monotonic() + timeout
    while len(sink.messages) < count and time.monotonic() < end:
        time.sleep(0.1)
    assert len(sink.messages) >= count, f"expected {count} messages, got {len(sink.messages)}"
    return sink.messages


def text_of(m: Received) -> str:
    return m.message.get_body(("plain",)).get_content()


class Browser:
    def __init__(self, profile: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROME)
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                     f"--window-size={PHONE[0]},{PHONE[1]}"):
            opts.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Paris"})
        self.size(*PHONE, mobile=True)

    def size(self, width: int, height: int, mobile: bool) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def shot(self, name: str, width: int = PHONE[0], mobile: bool = True) -> None:
        """A full-page screenshot; on a phone the page must not scroll sideways."""
        self.size(width, PHONE[1], mobile)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        overflow = self.driver.execute_script("return document.documentElement.scrollWidth")
        if mobile:
            assert overflow <= width, f"{name}: page is {overflow}px wide on a {width}px screen"
        self.size(width, max(int(height), PHONE[1]), mobile)
        self.driver.get_screenshot_as_file(str(ARTIFACTS / f"{name}.png"))
        self.size(*PHONE, mobile=True)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def click_and_wait(self, css: str) -> None:
        """Click something that loads a new page, and wait until it has."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def gone(_driver) -> bool:
            # The old page's root is stale once the new page loads; Chromium may report that as
            # "node does not belong to the document" rather than a stale-element error.
            try:
                old.is_enabled()
                return False
            except WebDriverException:
                return True

        old = self.find("html")
        self.find(css).click()
        WebDriverWait(self.driver, 30).until(gone)
        WebDriverWait(self.driver, 30).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def text(self) -> str:
        return self.find("body").text

    def quit(self) -> None:
        self.driver.quit()


@contextmanager
def serving(tmp_path, extra_config: str = ""):
    """`digest serve` on loopback, mailing through a real SMTP server, with the sample listings;
    `extra_config` is appended to its config.toml."""
    with SmtpSink() as sink:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = tmp_path / "config.toml"
        config.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'digest.store.db'}"
[mail]
transport = "smtp"
from_address = "Trending Papers <digest@example.org>"
unsubscribe_mailto = "unsubscribe@example.org"
[mail.smtp]
host = "{sink.host}"
port = {sink.port}
[web]
base_url = "{base}"
secret_file = "{tmp_path / 'secret'}"
{extra_config}""")
        env = {**os.environ, "DIGEST_CONFIG": str(config)}
        run(env, "ingest")
        log = (tmp_path / "serve.log").open("w")
        server = subprocess.Popen(digest_cmd("serve", "--host", "127.0.0.1", "--port", str(port)), env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
            yield base, env, sink, tmp_path
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()


@pytest.fixture
def served(tmp_path):
    with serving(tmp_path) as world:
        yield world


def test_subscriber_journey_in_chromium(served):
    base, env, sink, tmp = served
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    b = Browser(tmp / "chrome")
    try:
        # Subscribe: the time zone comes from the browser, a suggested topic is one tap.
        b.driver.get(f"{base}/")
        assert b.find("input[name=timezone]").get_attribute("value") == "Europe/Paris"
        b.shot("01-subscribe")
        b.find("input[name=email]").send_keys("ada@example.org")
        b.find("label.chip").click()
        b.find("textarea[name=topics]").send_keys("hallucinations")
        b.click_and_wait("button[type=submit]")
        assert "Check your inbox" in b.text()
        b.shot("02-check-inbox")

        # The confirmation email, read at the SMTP server; its link asks, the button confirms.
        (confirmation,) = wait_for_mail(sink, 1)
        assert confirmation.recipients == ["ada@example.org"]
        link = re.search(rf"{re.escape(base)}/confirm/\S+", text_of(confirmation)).group(0)
        b.driver.get(link)
        assert "hallucinations" in b.text()
        b.shot("03-confirm")
        b.click_and_wait("button[type=submit]")
        assert "You are subscribed" in b.text()
        assert len(b.driver.find_elements("css selector", "ol.papers li")) > 0  # preview of the first digest
        b.shot("04-confirmed")

        # Preferences: replace the topics.
        b.click_and_wait("a.button")
        topics = b.find("textarea[name=topics]")
        topics.clear()
        topics.send_keys("reinforcement learning")
        b.click_and_wait("form.stack button[type=submit]")
        assert "Saved" in b.text()
        b.shot("05-preferences")
        b.shot("05-preferences-desktop", width=1280, mobile=False)

        # `digest send` delivers a digest that reflects the new topics.
        out = run(env, "send")
        assert "sent 1" in out, out
        digest = wait_for_mail(sink, 2)[1]
        body = text_of(digest)
        assert digest.recipients == ["ada@example.org"]
        assert "Picked and ranked for “reinforcement learning”" in body and "hallucinations”" not in body
        assert "Matches “reinforcement learning”" in body
        archive = re.search(rf"{re.escape(base)}/archive/\S+", body).group(0)
        b.driver.get(archive)
        assert "reinforcement learning" in b.text()
        b.shot("06-archive")

        # Unsubscribe through List-Unsubscribe: the page only asks; the RFC 8058 POST unsubscribes. (Served
        # over http here, so the message does not offer one-click: RFC 8058 needs an https URL.)
        header = digest.message["List-Unsubscribe"]
        assert digest.message["List-Unsubscribe-Post"] is None
        url = re.search(r"<(http[^>]+)>", header).group(1)
        b.driver.get(url)
        assert "Unsubscribe?" in b.text()
        b.shot("07-unsubscribe")
        r = httpx.post(url, content=b"List-Unsubscribe=One-Click", follow_redirects=False,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and "set-cookie" not in r.headers
        b.driver.get(url)
        assert "You are unsubscribed" in b.text()
        b.shot("08-unsubscribed")
    finally:
        b.quit()

    # No further mail: make Ada's last edition look old, so only her status can keep her out, and add
    # a control subscriber to prove the next run really sends.
    with sqlite3.connect(tmp / "digest.store.db") as con:
        con.execute("DELETE FROM delivery_items")
        con.execute("UPDATE deliveries SET period = '2000-01-01', window_end = window_start")
    run(env, "subscribers", "add", "bob@example.org", "--topic", "reinforcement learning")
    out = run(env, "send")
    assert "sent 1" in out, out
    later = wait_for_mail(sink, 3)[2:]
    time.sleep(0.5)
    assert [m.recipients for m in sink.messages[2:]] == [["bob@example.org"]] == [m.recipients for m in later]
