"""The preferences page's delivery status in headless Chromium, against the app under uvicorn.

A digest really goes out (aiosmtpd on loopback); then papers come in that match none of the
subscriber's topics, so the page must say the last slot sent nothing because they were below the
bar, with the feed link beside it. Saves test-artifacts/web/prefs-delivery-status.png (the
README's docs/img/web-delivery-status.png is a copy of it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from test_e2e_browser import ARTIFACTS, CHROME, DRIVER, Browser
from test_feed_status import PAPERS
from test_metrics import served

from digest.config import from_dict
from digest.mail.sink import SmtpSink
from digest.store.models import Delivery
from digest.store.models import Subscriber as SubscriberRow
from digest.subscriptions import subscribers
from digest.subscriptions.links import links_for
from digest.usecases import pages, planning, sending
from digest.web.app import create_app
from tests.factories import add_recent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sqlite_only,
    pytest.mark.skipif(not (CHROME.exists() and DRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver"),
]


def test_delivery_status_says_why_nothing_came(db, tmp_path):
    with SmtpSink() as sink:
        settings = from_dict({"database": {"url": db.url}, "digest": {"ranker": "lexical"},
                              "web": {"secret_file": str(tmp_path / "secret")},
                              "mail": {"transport": "smtp",
                                       "from_address": "Trending Papers <digest@example.org>",
                                       "smtp": {"host": sink.host, "port": sink.port}}})
        add_recent(db, PAPERS, hours_ago=30)
        zone = ZoneInfo("Europe/Paris")
        sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"],
                              timezone="Europe/Paris",
                              hour=max(0, datetime.now(zone).hour - 1)).id
        with db.session() as s:
            s.get(SubscriberRow, sid).created_at = datetime.now(UTC) - timedelta(days=3)
        planning.plan(db, settings)
        assert sending.send(db, settings).sent == 1 and len(sink.messages) == 1
        yesterday = datetime.now(UTC) - timedelta(days=1)
        with db.session() as s:  # that digest went out yesterday
            d = s.query(Delivery).one()
            d.period = yesterday.astimezone(zone).date().isoformat()
            d.planned_at = d.sent_at = d.window_end = yesterday
        add_recent(db, ["Protein folding with sparse attention", "Weather forecasting at kilometre scale",
                        "Robotic grasping from a single demonstration"], hours_ago=2, prefix="2612")
        url = links_for(settings).preferences(sid)
        assert pages.delivery_status(db, settings, sid).status.reason == "below_bar"

    browser = Browser(tmp_path / "chrome")
    try:
        with served(create_app(settings, db)) as base:
            browser.driver.get(base + url.removeprefix(settings.web.base_url))
            text = browser.text()
            assert "Delivery status" in text and "below the bar" in text
            assert "none matched your topics closely enough" in text
            assert "Your private Atom feed" in text
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            browser.shot("prefs-delivery-status-page")  # the whole page, and it must not scroll sideways
            browser.size(560, 900, mobile=False)
            browser.find("section.delivery").screenshot(str(ARTIFACTS / "prefs-delivery-status.png"))
    finally:
        browser.quit()
