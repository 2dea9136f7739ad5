"""Issue 15, items 1 and 5: the private Atom feed and "why no email today?" on the preferences page.

Digests go through the real SMTP sink (aiosmtpd on loopback); the feed's links are the ones in the
mail; the feed is parsed by feedparser and checked against RFC 4287's required elements.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import feedparser
import pytest
import time_machine
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.testclient import TestClient

from digest.mail.sink import SmtpSink
from digest.store.models import Delivery, Suppression
from digest.store.models import Subscriber as SubscriberRow
from digest.subscriptions import subscribers, tokens
from digest.subscriptions.links import links_for
from digest.usecases import pages, planning, sending
from digest.usecases.reads import StoreReads
from digest.web.app import create_app
from tests.factories import add_recent

BASE = "http://testserver"
# Every test here runs on a clock pinned at noon UTC (ticking): `slot_passed` sets a subscriber's hour to
# the one before now, and with the real clock between 00:00 and 01:00 UTC that slot is yesterday's, today's
# has not come, and "preparing" read "nothing new" (2 failures seen at 00:40 UTC).
NOON = datetime(2026, 12, 9, 12, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
PAPERS = ["Graph neural networks for molecule property prediction",
          "Scaling diffusion models for video generation",
          "Graph neural networks meet large language models"]


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture(autouse=True)
def at_noon():
    with time_machine.travel(NOON, tick=True):
        yield


@pytest.fixture
def env(at_noon, db, settings_for, sink):
    sink.messages.clear()
    sink.handler.faults.reject.clear()
    settings = settings_for(db.url, web={"base_url": BASE},
                            mail={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port},
                                  "from_address": "Trending Papers <digest@example.org>"})
    add_recent(db, PAPERS, hours_ago=1)
    return settings, db, sink


def client(settings, db) -> TestClient:
    return TestClient(create_app(settings, db), base_url=BASE, follow_redirects=False)


def link_in(text: str, path: str) -> str:
    return re.search(rf"{BASE}/{path}/[\w.\-]+", text).group(0).removeprefix(BASE)


def send_one(db, settings, sink, email: str) -> str:
    """Plan and send everything due; the text part of the digest `email` got."""
    planning.plan(db, settings)
    sending.send(db, settings)
    got = [m for m in sink.messages if m.recipients == [email]]
    return got[-1].message.get_body(("plain",)).get_content()


def old_token(settings, purpose: str, sid: int, days: float) -> str:
    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - days * 86400)

    return URLSafeTimedSerializer(settings.secret(), salt=f"digest.{purpose}", signer=Then).dumps({"s": sid})


# ------------------------------------------------------------------------------------------- feed


def check_rfc4287(body: bytes) -> ET.Element:
    """The elements RFC 4287 requires: feed id, title, updated (and an author, here the feed's); each
    entry id, title, updated and a link (4.1.1, 4.1.2); a rel=self link; every date RFC 3339."""
    root = ET.fromstring(body)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert len(root.findall(f"{ATOM}{name}")) == 1, name
    assert root.find(f"{ATOM}author/{ATOM}name").text
    assert any(link.get("rel") == "self" for link in root.findall(f"{ATOM}link"))
    for entry in root.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, name
        assert entry.find(f"{ATOM}link").get("href").startswith("http")
        assert entry.find(f"{ATOM}summary") is not None or entry.find(f"{ATOM}content") is not None
    for stamp in root.iter():
        if stamp.tag in (f"{ATOM}updated", f"{ATOM}published"):
            datetime.fromisoformat(stamp.text)  # RFC 3339 date-time with an offset
            assert stamp.text.endswith(("Z", "+00:00"))
    return root


def test_feed_lists_the_sent_papers_in_valid_atom(env):
    settings, db, sink = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    text = send_one(db, settings, sink, "ada@example.org")
    url = link_in(text, "feed")
    assert url.endswith(".atom")
    html = next(m for m in sink.messages if m.recipients == ["ada@example.org"]).message.get_body(("html",))
    assert url in html.get_content()  # the HTML footer links it too
    c = client(settings, db)
    r = c.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    root = check_rfc4287(r.content)
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    titles = [e.title for e in parsed.entries]
    assert "Graph neural networks for molecule property prediction" in titles
    kinds = [e.tags[0].term for e in parsed.entries]
    assert kinds == sorted(kinds) and kinds[0] == "pick"  # the picks by rank, then "also trending"
    assert titles[0] == PAPERS[0]
    first = next(e for e in parsed.entries if e.title == PAPERS[0])
    assert first.link.startswith("https://arxiv.org/abs/2611.")
    assert [a.name for a in first.authors] == ["Ada Lovelace", "Alan Turing"]
    assert "graph neural networks" in first.summary.lower()  # the "why" line
    assert first.published_parsed and first.updated_parsed
    assert first.id.startswith("tag:testserver,2024:arxiv:2611.")
    assert parsed.feed.id == root.find(f"{ATOM}id").text and parsed.feed.title

    # the next edition: new papers join, the old entries keep their ids
    add_recent(db, ["Graph neural networks at scale", "Graph neural networks and message passing"],
               hours_ago=-1,
               prefix="2612")
    with db.session() as s:  # as if it went out yesterday, so today's period can have its own edition
        d = s.query(Delivery).one()
        d.period, d.planned_at, d.window_end = ("2000-01-01", d.planned_at - timedelta(days=1),
                                                datetime.now(UTC))
    planning.plan(db, settings, now=datetime.now(UTC) + timedelta(hours=2))
    assert sending.send(db, settings).sent == 1
    again = feedparser.parse(c.get(url).content)
    ids = {e.title: e.id for e in again.entries}
    assert ids[PAPERS[0]] == first.id  # stable across editions
    assert "Graph neural networks at scale" in ids and len(ids) == len(again.entries)
    assert again.entries[0].updated_parsed >= first.updated_parsed  # newest first
    # a second token for the same subscriber names the same feed
    assert (feedparser.parse(c.get(links_for(settings).feed(sid).removeprefix(BASE)).content).feed.id
            == parsed.feed.id)


def test_the_same_editions_give_the_same_bytes_at_every_poll(env):
    """Nothing in the feed is signed anew per request (a token's timestamp changes every second), so a
    reader polling an unchanged feed a second later gets the same ETag and a 304."""
    settings, db, sink = env
    subscribers.add(db, "ada@example.org", topics=["graph neural networks"])
    url = link_in(send_one(db, settings, sink, "ada@example.org"), "feed")
    c = client(settings, db)
    first = c.get(url)
    time.sleep(1.1)
    again = c.get(url)
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert c.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert f'href="{BASE}{url}" rel="self"' in first.text or f'rel="self" href="{BASE}{url}"' in first.text


def test_conditional_get_answers_304(env):
    settings, db, sink = env
    subscribers.add(db, "ada@example.org", topics=["graph neural networks"])
    url = link_in(send_one(db, settings, sink, "ada@example.org"), "feed")
    c = client(settings, db)
    r = c.get(url)
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    same = c.get(url, headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert c.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert c.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert c.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    earlier = formatdate(time.time() - 3 * 86400, usegmt=True)
    assert c.get(url, headers={"If-Modified-Since": earlier}).status_code == 200
    assert c.get(url, headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match decides when both are sent (RFC 9110 13.1.3)
    assert c.get(url, headers={"If-None-Match": '"stale"', "If-Modified-Since": modified}).status_code == 200


def test_unsubscribing_ends_the_feed_with_410(env):
    settings, db, sink = env
    sub = subscribers.add(db, "ada@example.org", topics=["graph neural networks"])
    text = send_one(db, settings, sink, "ada@example.org")
    feed, unsubscribe = link_in(text, "feed"), link_in(text, "unsubscribe")
    c = client(settings, db)
    assert c.get(feed).status_code == 200
    assert c.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    gone = c.get(feed)
    assert gone.status_code == 410 and "feed has ended" in gone.text
    assert c.get(feed, headers={"If-None-Match": "*"}).status_code == 410
    subscribers.remove(db, sub.email)  # a deleted subscriber's feed is gone too
    assert c.get(feed).status_code == 410


def test_bad_expired_and_wrong_purpose_feed_tokens(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    with db.session() as s:
        s.get(SubscriberRow, sid).created_at = datetime.now(UTC) - timedelta(days=6 * 365)
    lk = links_for(settings)
    c = client(settings, db)
    good = lk.feed(sid).removeprefix(BASE)
    assert c.get(good).status_code == 200
    forged = good.removesuffix(".atom")[:-3] + "aaa.atom"
    for url in (forged, "/feed/not-a-token.atom", "/feed/%3Cscript%3E.atom",
                "/feed/" + lk.preferences(sid).rsplit("/", 1)[1] + ".atom",
                "/feed/" + lk.unsubscribe(sid).rsplit("/", 1)[1] + ".atom",
                "/feed/" + tokens.make("another-secret", "feed", sid) + ".atom"):
        r = c.get(url)
        assert r.status_code == 400 and "not valid" in r.text, url
    assert c.get(good.removesuffix(".atom")).status_code == 404  # the feed's address ends in .atom
    assert c.get("/preferences/" + good.rsplit("/", 1)[1].removesuffix(".atom")).status_code == 400
    # feed links never expire: a reader keeps one for years
    assert c.get(f"/feed/{old_token(settings, 'feed', sid, 5 * 365)}.atom").status_code == 200


def test_feed_before_any_digest_is_valid_and_empty(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    r = client(settings, db).get(links_for(settings).feed(sid).removeprefix(BASE))
    assert r.status_code == 200
    check_rfc4287(r.content)
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo and parsed.entries == []


# ----------------------------------------------------------------------------- delivery status


def prefs(settings, db, sid) -> str:
    page = client(settings, db).get(links_for(settings).preferences(sid).removeprefix(BASE))
    assert page.status_code == 200
    return page.text


def reason_of(html: str) -> str:
    return re.search(r'class="delivery"[^>]*data-reason="([a-z_]+)"', html).group(1)


def slot_passed(db, sid) -> None:
    """Subscribed two days ago, delivering at the hour that has just passed (UTC)."""
    now = datetime.now(UTC)
    with db.session() as s:
        row = s.get(SubscriberRow, sid)
        row.created_at, row.hour, row.timezone = (now - timedelta(days=2), (now - timedelta(hours=1)).hour,
                                                  "UTC")


def test_status_sent_and_the_feed_link(env):
    settings, db, sink = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    slot_passed(db, sid)
    send_one(db, settings, sink, "ada@example.org")
    html = prefs(settings, db, sid)
    assert reason_of(html) == "sent" and "Delivery status" in html and "None yet" not in html
    assert re.search(r'href="http://testserver/feed/[\w.\-]+\.atom"', html)
    assert "Next slot" in html and "UTC" in html


def test_status_nothing_new_and_below_the_bar(env):
    settings, db, sink = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    other = subscribers.add(db, "bob@example.org", topics=["quantum error correction codes"]).id
    for s in (sid, other):
        slot_passed(db, s)
    send_one(db, settings, sink, "ada@example.org")
    with db.session() as s:  # ada's edition went out in an earlier period: nothing is new for her since
        d = s.query(Delivery).filter_by(subscriber_id=sid).one()
        d.period, d.window_end = "2000-01-01", datetime.now(UTC)
        d.planned_at = datetime.now(UTC) - timedelta(days=1)
    html = prefs(settings, db, sid)
    assert reason_of(html) == "nothing_new" and "No new papers came in" in html
    # bob's topics match none of the new papers: nothing sent, and it says why
    assert planning.plan(db, settings, email="bob@example.org").planned == 0
    html = prefs(settings, db, other)
    assert reason_of(html) == "below_bar" and "none matched your topics closely enough" in html
    assert "None yet" in html  # no digest sent to bob


def test_status_preparing_when_the_slot_passed_and_papers_wait(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    slot_passed(db, sid)
    assert reason_of(prefs(settings, db, sid)) == "preparing"
    # `digest due` agrees
    assert planning.due_at(StoreReads(db), datetime.now(UTC), email="ada@example.org")[0]["due"]


def test_status_paused(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    slot_passed(db, sid)
    now = datetime.now(UTC)
    subscribers.pause(db, sid, 2, now)
    html = prefs(settings, db, sid)
    assert reason_of(html) == "paused" and "paused until" in html
    view = pages.delivery_status(db, settings, sid)
    assert view.status.next_at > now + timedelta(days=13)  # the next slot is after the pause


def test_status_bounced_after_a_real_550(env):
    settings, db, sink = env
    sid = subscribers.add(db, "gone@example.org", topics=["graph neural networks"]).id
    slot_passed(db, sid)
    sink.handler.faults.reject.add("gone@example.org")
    planning.plan(db, settings)
    assert sending.send(db, settings).failed == 1
    html = prefs(settings, db, sid)
    assert reason_of(html) == "bounced" and "refused our digests" in html
    with db.session() as s:
        assert s.get(Suppression, "gone@example.org").reason == "hard_bounce"


def test_status_first_digest_and_unsubscribed(env):
    settings, db, _ = env
    sid = subscribers.add(db, "new@example.org", topics=["graph neural networks"]).id  # created just now
    with db.session() as s:
        s.get(SubscriberRow, sid).hour = (datetime.now(UTC) - timedelta(hours=1)).hour
    assert reason_of(prefs(settings, db, sid)) == "first"
    subscribers.unsubscribe(db, sid, datetime.now(UTC))
    html = prefs(settings, db, sid)
    assert reason_of(html) == "unsubscribed" and "/feed/" not in html
