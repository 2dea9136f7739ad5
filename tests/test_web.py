"""The subscriber web app through its HTTP interface, with a real SMTP server and real databases."""

from __future__ import annotations

import mailbox
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from starlette.testclient import TestClient

from digest.cli import main
from digest.mail.sink import SmtpSink
from digest.store import subscribers as subscriber_store
from digest.store.models import Delivery, Feedback, Paper, Subscriber, Suppression
from digest.subscriptions import signup, subscribers, tokens, topics
from digest.subscriptions.links import links_for
from digest.subscriptions.unsubscribes import process_maildir, process_mbox
from digest.usecases import planning, sending
from digest.web.app import create_app
from tests.factories import add_titled

BASE = "http://testserver"
PAPERS = [
    "Graph neural networks for molecule property prediction",
    "Scaling diffusion models for video generation",
    "Differential privacy in federated learning",
    "Graph neural networks meet large language models",
    "A survey of reinforcement learning from human feedback",
]


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def env(db, settings_for, sink):
    """(settings, db, sink) with mail going to the real SMTP sink and a few fresh papers."""
    sink.messages.clear()
    settings = settings_for(db.url, web={"base_url": BASE},
                            mail={"transport": "smtp", "smtp": {"host": sink.host, "port": sink.port},
                                  "from_address": "Trending Papers <digest@example.org>"})
    add_titled(db, PAPERS, upvotes=lambda i: 10 - i)
    return settings, db, sink


def client(settings, db, **limits) -> TestClient:
    return TestClient(create_app(settings, db, **limits), base_url=BASE, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def subscribe(c: TestClient, email: str, wait: bool = True, **fields) -> object:
    """Post the form and (`wait`) let the request queued for it be handled: its email is then sent."""
    token = csrf_of(c.get("/").text)
    data = {"csrf": token, "email": email, "topics": "graph neural networks", "frequency": "daily",
            "hour": "8",
            "timezone": "Europe/Paris", **fields}
    page = c.post("/subscribe", data=data)
    if wait:
        c.app.state.site.signups.join()
    return page


def link_in(msg: EmailMessage, path: str) -> str:
    text = msg.get_body(("plain",)).get_content()
    return re.search(rf"{BASE}/{path}/[\w.\-]+", text).group(0).removeprefix(BASE)


def status_of(db, email: str) -> str:
    return subscribers.get(db, email).status


def old_token(settings, purpose: str, sid: int, days: float, **extra) -> str:
    """A real token signed `days` ago (to test expiry without waiting)."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - days * 86400)

    return URLSafeTimedSerializer(settings.secret(), salt=f"digest.{purpose}",
                                  signer=Then).dumps({"s": sid, **extra})


# --------------------------------------------------------------------------- subscribe and confirm


def test_subscribe_confirm_and_preview(env):
    settings, db, sink = env
    c = client(settings, db)
    page = c.get("/")
    assert page.status_code == 200 and 'name="viewport"' in page.text
    assert "graph neural networks" in page.text  # a suggestion drawn from the recent titles
    r = subscribe(c, "Ada@Example.org", topics="graph neural networks\nlarge language models")
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert status_of(db, "ada@example.org") == "pending"

    (got,) = sink.messages
    msg = got.message
    assert got.recipients == ["ada@example.org"] and msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("html",)) is not None and msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith(".confirm@example.org>") and msg["List-Unsubscribe"] is None
    assert msg["From"] == "Trending Papers <digest@example.org>" and msg["To"] == "ada@example.org"
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == ["quoted-printable"] * 2
    url = link_in(msg, "confirm")
    assert url in msg.get_body(("html",)).get_content()

    page = c.get(url)  # a link scanner's fetch changes nothing
    assert page.status_code == 200 and "Confirm subscription" in page.text
    assert status_of(db, "ada@example.org") == "pending"
    done = c.post(url, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert status_of(db, "ada@example.org") == "active"
    assert "Graph neural networks for molecule property prediction" in done.text  # the first-digest preview
    assert "/preferences/" in done.text
    again = c.post(url, data={"csrf": csrf_of(page.text)})  # idempotent
    assert again.status_code == 200 and status_of(db, "ada@example.org") == "active"


def test_same_answer_for_known_and_unknown_addresses(env):
    settings, db, sink = env
    subscribers.add(db, "known@example.org", topics=["privacy"], hour=6, timezone="Asia/Tokyo")
    subscribers.add(db, "waiting@example.org", status="pending")
    c = client(settings, db)
    pages = {e: subscribe(c, e, topics="something else") for e in
             ("new@example.org", "known@example.org", "waiting@example.org")}
    bodies = {e: r.text.replace(e, "EMAIL") for e, r in pages.items()}
    assert {r.status_code for r in pages.values()} == {200}
    assert len(set(bodies.values())) == 1  # byte-for-byte the same page

    by_to = {m.recipients[0]: m.message for m in sink.messages}
    assert set(by_to) == set(pages)
    assert "/preferences/" in by_to["known@example.org"].get_body(("plain",)).get_content()
    assert "/confirm/" not in by_to["known@example.org"].get_body(("plain",)).get_content()
    assert "/confirm/" in by_to["waiting@example.org"].get_body(("plain",)).get_content()
    known = subscribers.get(db, "known@example.org")  # an anonymous form never edits a live subscription
    assert known.topics == ("privacy",) and known.hour == 6 and known.status == "active"


def test_suppressed_address_is_mailed_nothing_but_sees_the_same_page(env):
    settings, db, sink = env
    with db.session() as s:
        s.add(Suppression(email="bounced@example.org", reason="hard_bounce"))
    c = client(settings, db)
    r = subscribe(c, "bounced@example.org")
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert sink.messages == []


# ------------------------------------------------------------------------------------------ tokens


def test_forged_expired_and_cross_purpose_tokens_get_a_plain_400(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    with db.session() as s:  # a long-standing subscriber, so old links are theirs
        s.get(Subscriber, sid).created_at = datetime.now(UTC) - timedelta(days=6 * 365)
    lk = links_for(settings)
    c = client(settings, db)
    manage = lk.preferences(sid).removeprefix(BASE)
    forged = manage[:-3] + ("aaa" if not manage.endswith("aaa") else "bbb")
    for url in (forged, "/confirm/not-a-token", "/unsubscribe/x.y.z", "/archive/%3Cscript%3E",
                "/feedback/..."):
        r = c.get(url)
        assert r.status_code == 400 and "not valid" in r.text and "Traceback" not in r.text, url
    # a token for one purpose is refused for another
    assert c.get("/preferences/" + lk.unsubscribe(sid).rsplit("/", 1)[1]).status_code == 400
    assert c.get("/unsubscribe/" + lk.preferences(sid).rsplit("/", 1)[1]).status_code == 400
    assert c.get("/confirm/" + lk.preferences(sid).rsplit("/", 1)[1]).status_code == 400
    # expiry: confirm after 3 days, manage after 180; unsubscribe never
    assert c.get("/confirm/" + old_token(settings, "confirm", sid, 4, at=0)).status_code == 400
    assert c.get("/preferences/" + old_token(settings, "manage", sid, 181)).status_code == 400
    assert c.get("/preferences/" + old_token(settings, "manage", sid, 170)).status_code == 200
    ancient = old_token(settings, "unsubscribe", sid, 5 * 365)
    assert c.post("/unsubscribe/" + ancient, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert status_of(db, "ada@example.org") == "unsubscribed"
    # a token signed with another secret is refused
    other = tokens.make("another-secret", "manage", sid)
    assert c.get(f"/preferences/{other}").status_code == 400


# -------------------------------------------------------------------------------------------- CSRF


def test_forms_need_a_csrf_token_from_this_site(env):
    settings, db, sink = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    c = client(settings, db)
    token = csrf_of(c.get("/").text)
    form = {"email": "eve@example.org", "topics": "x", "frequency": "daily", "hour": "8", "timezone": "UTC"}
    assert c.post("/subscribe", data=form).status_code == 403  # no token
    assert c.post("/subscribe", data={**form, "csrf": token + "x"}).status_code == 403  # tampered
    assert c.post("/subscribe", data={**form, "csrf": token},
                  headers={"Origin": "https://evil.example"}).status_code == 403  # cross-site post
    fresh = TestClient(create_app(settings, db), base_url=BASE)  # valid token, but not this browser's cookie
    assert fresh.post("/subscribe", data={**form, "csrf": token}).status_code == 403
    assert sink.messages == [] and "Traceback" not in c.post("/subscribe", data=form).text

    prefs = links_for(settings).preferences(sid).removeprefix(BASE)
    r = c.post(prefs, data={"topics": "hijacked", "frequency": "daily", "hour": "8", "timezone": "UTC"})
    assert r.status_code == 403 and subscribers.get_by_id(db, sid).topics == ("graph neural networks",)
    assert c.post(prefs + "/pause", data={"weeks": "4"}).status_code == 403
    assert subscribers.get_by_id(db, sid).status == "active"
    assert c.post("/subscribe", data={**form, "csrf": token}).status_code == 200  # the real form works
    c.app.state.site.signups.join()
    assert [m.recipients for m in sink.messages] == [["eve@example.org"]]


def test_a_notice_the_mail_server_refuses_is_logged_and_the_page_is_the_same(env, caplog):
    settings, db, sink = env
    sink.handler.faults.reject.add("ada@example.org")
    try:
        r = subscribe(client(settings, db), "ada@example.org")
    finally:
        sink.handler.faults.reject.discard("ada@example.org")
    assert r.status_code == 200 and "Check your inbox" in r.text and sink.messages == []
    assert any("could not send the email" in m for m in caplog.messages)


# ------------------------------------------------------------------------------------- rate limits


def test_rate_limits_per_ip_and_per_address(env):
    settings, db, sink = env
    c = client(settings, db, ip_limit=(100, 3600), address_limit=(2, 86400))
    for _ in range(3):
        r = subscribe(c, "target@example.org")
        assert r.status_code == 200 and "Check your inbox" in r.text  # the same page, never a hint
    assert [m.recipients[0] for m in sink.messages] == ["target@example.org"] * 2  # the third was not sent

    c = client(settings, db, ip_limit=(2, 3600))
    assert subscribe(c, "a1@example.org").status_code == 200
    assert subscribe(c, "a2@example.org").status_code == 200
    r = subscribe(c, "a3@example.org")
    assert r.status_code == 429 and "Too many requests" in r.text
    assert "a3@example.org" not in [m.recipients[0] for m in sink.messages]


# ---------------------------------------------------------------------------- input and escaping


def test_input_limits_and_escaping(env):
    settings, db, sink = env
    c = client(settings, db)
    many = "\n".join(f"topic {i}" for i in range(21))
    r = subscribe(c, "ada@example.org", topics=many)
    assert r.status_code == 400 and "too many topics" in r.text and "topic 20" in r.text  # values kept
    r = subscribe(c, "ada@example.org", topics="x" * 101)
    assert r.status_code == 400 and "topic too long" in r.text
    r = subscribe(c, "<script>alert(1)</script>@x")
    assert r.status_code == 400 and "<script>alert(1)" not in r.text and "&lt;script&gt;" in r.text
    r = subscribe(c, "ada@example.org", timezone="Mars/Olympus")
    assert r.status_code == 400 and "unknown time zone" in r.text
    r = subscribe(c, "ada@example.org", hour="25")
    assert r.status_code == 400 and "hour must be 0..23" in r.text
    assert c.post("/subscribe", content=b"email=" + b"a" * 70_000,
                  headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
    assert sink.messages == []

    r = subscribe(c, "ada@example.org", topics='<img src=x onerror="alert(1)">')
    assert r.status_code == 200
    confirm = c.get(link_in(sink.messages[-1].message, "confirm"))
    assert "<img src=x" not in confirm.text and "&lt;img src=x" in confirm.text
    assert "<img src=x" not in sink.messages[-1].message.get_body(("html",)).get_content()


# ----------------------------------------------------------------------------------- unsubscribe


def test_one_click_unsubscribe_rfc8058(env):
    settings, db, _ = env
    lk = links_for(settings)
    a = subscribers.add(db, "a@example.org", topics=["graph neural networks"]).id
    b = subscribers.add(db, "b@example.org", topics=["graph neural networks"]).id
    planning.plan(db, settings)  # both have an edition waiting in the ledger
    c = TestClient(create_app(settings, db), base_url=BASE, follow_redirects=False, cookies=None)

    page = c.get(lk.unsubscribe(a).removeprefix(BASE))  # GET only asks
    assert (page.status_code == 200 and 'value="One-Click"' in page.text and status_of(db, "a@example.org")
            == "active")

    r = c.post(lk.unsubscribe(a).removeprefix(BASE), content=b"List-Unsubscribe=One-Click",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and "set-cookie" not in r.headers and "You are unsubscribed" in r.text
    r = httpx_multipart(c, lk.unsubscribe(b).removeprefix(BASE))
    assert r.status_code == 200 and "set-cookie" not in r.headers
    for email in ("a@example.org", "b@example.org"):
        assert status_of(db, email) == "unsubscribed"
        with db.session() as s:
            assert s.get(Suppression, email).reason == "unsubscribed"
    assert c.post(lk.unsubscribe(a).removeprefix(BASE),
                  data={"List-Unsubscribe": "One-Click"}).status_code == 200

    report = sending.send(db, settings)  # the editions planned before are not sent
    assert report.sent == 0 and report.suppressed == 2
    assert planning.plan(db, settings, now=datetime.now(UTC) + timedelta(days=2)).planned == 0


def httpx_multipart(c: TestClient, url: str):
    return c.post(url, files={"List-Unsubscribe": (None, "One-Click")})


def test_resubscribe_needs_a_fresh_confirmation(env):
    settings, db, sink = env
    c = client(settings, db)
    subscribe(c, "ada@example.org")
    first = link_in(sink.messages[-1].message, "confirm")
    c.post(first, data={"csrf": csrf_of(c.get(first).text)})
    sid = subscribers.get(db, "ada@example.org").id
    c.post(links_for(settings).unsubscribe(sid).removeprefix(BASE), data={"List-Unsubscribe": "One-Click"})
    assert status_of(db, "ada@example.org") == "unsubscribed"
    time.sleep(0.01)

    assert c.get(first).status_code == 400  # the old confirmation link cannot bring it back
    r = subscribe(c, "ada@example.org", topics="diffusion models")
    assert r.status_code == 200
    second = link_in(sink.messages[-1].message, "confirm")  # a fresh confirmation, not a manage link
    assert second != first and status_of(db, "ada@example.org") == "unsubscribed"
    assert planning.plan(db, settings, dry_run=True).editions == []
    c.post(second, data={"csrf": csrf_of(c.get(second).text)})
    assert status_of(db, "ada@example.org") == "active"
    with db.session() as s:
        assert s.get(Suppression, "ada@example.org") is None
    assert subscribers.get(db, "ada@example.org").topics == ("diffusion models",)


# ------------------------------------------------------------------------------------ preferences


def test_preferences_edit_pause_resume(env):
    settings, db, sink = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    planning.plan(db, settings)
    assert sending.send(db, settings).sent == 1
    url = links_for(settings).preferences(sid).removeprefix(BASE)
    c = client(settings, db)
    page = c.get(url)
    assert page.status_code == 200 and "Recently sent" in page.text
    assert "Graph neural networks for molecule property prediction" in page.text  # papers recently sent
    assert "View this digest" in page.text
    token = csrf_of(page.text)
    form = {"csrf": token, "topics": "diffusion models\nprivacy", "excludes": "video", "frequency": "weekly",
            "weekday": "4", "hour": "7", "timezone": "America/New_York", "max_items": "5"}
    r = c.post(url, data=form)
    assert r.status_code == 303 and r.headers["location"] == f"{url}?saved=save"
    v = subscribers.get_by_id(db, sid)
    assert (v.topics, v.excludes, v.frequency, v.weekday, v.hour, v.timezone, v.max_items) == (
        ("diffusion models", "privacy"), ("video",), "weekly", 4, 7, "America/New_York", 5)
    assert "Saved" in c.get(r.headers["location"]).text

    bad = c.post(url, data={**form, "timezone": "Nowhere/Else", "topics": "kept <b>"})
    assert bad.status_code == 400 and "unknown time zone" in bad.text and "kept &lt;b&gt;" in bad.text
    assert subscribers.get_by_id(db, sid).timezone == "America/New_York"

    r = c.post(url + "/pause", data={"csrf": token, "weeks": "2"})
    assert r.status_code == 303
    v = subscribers.get_by_id(db, sid)
    assert v.status == "paused" and v.paused_until > datetime.now(UTC) + timedelta(days=13)
    assert "Paused until" in c.get(url).text
    assert planning.plan(db, settings, dry_run=True, now=datetime.now(UTC) + timedelta(days=7)).editions == []
    assert c.post(url + "/resume", data={"csrf": token}).status_code == 303
    assert subscribers.get_by_id(db, sid).status == "active"
    assert c.post(url + "/delete", data={"csrf": token}).status_code == 404


# ------------------------------------------------------------------------------- feedback, archive


def test_feedback_get_asks_post_records(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    with db.session() as s:
        pid = s.scalar(select(Paper.id).where(Paper.title == PAPERS[0]))
    lk = links_for(settings)
    c = client(settings, db)
    more = lk.feedback(sid, pid, 1).removeprefix(BASE)
    page = c.get(more)
    assert page.status_code == 200 and PAPERS[0] in page.text and "More like this" in page.text
    with db.session() as s:
        assert s.scalars(select(Feedback)).all() == []  # a link scanner's GET records nothing
    assert c.post(more, data={"csrf": csrf_of(page.text)}).status_code == 200
    less = lk.feedback(sid, pid, -1).removeprefix(BASE)
    c.post(less, data={"csrf": csrf_of(c.get(less).text)})
    with db.session() as s:
        rows = s.scalars(select(Feedback)).all()
        assert [(r.subscriber_id, r.paper_id, r.signal) for r in rows] == [(sid, pid, -1)]  # last click wins
    assert c.get(lk.feedback(sid, 999_999, 1).removeprefix(BASE)).status_code == 404
    bad = tokens.make(settings.secret(), "feedback", sid, p=pid, v=5)
    assert c.get(f"/feedback/{bad}").status_code == 400
    # one token per digest, the paper and signal in the query; nonsense there is a bad link, not a 500
    one_digest = lk.feedback_links(sid)
    def base(p: int, v: int) -> str:
        return one_digest(p, v).split("?")[0]

    assert base(pid, 1) == base(pid, -1) == base(pid + 1, 1)
    for query in ("p=abc&v=1", "p=1_0&v=1", "p=%D9%A3&v=1", f"p=+{pid}&v=1", f"p={pid}&v=1&v=",
                  f"p={pid}&v=5",
                  f"p={pid}&v=true", "p=99999999999999999999&v=1", f"p=-{pid}&v=1",
                  "v=1", ""):
        assert c.get(more.split("?")[0] + "?" + query).status_code == 400, query
    # links mailed before that carried the paper and signal in the token, and still work
    old = tokens.make(settings.secret(), "feedback", sid, p=pid, v=1)
    page = c.get(f"/feedback/{old}")
    assert page.status_code == 200 and "More like this" in page.text
    for p, v in ((True, 1), (pid, True), (str(pid), 1), (2**70, 1)):
        token = tokens.make(settings.secret(), "feedback", sid, p=p, v=v)
        assert c.get(f"/feedback/{token}").status_code in (400, 404)


def test_preferences_list_feedback_and_undo_one(env):
    settings, db, _ = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"]).id
    other = subscribers.add(db, "bob@example.org", topics=["diffusion"]).id
    with db.session() as s:
        ids = {t: s.scalar(select(Paper.id).where(Paper.title == t)) for t in PAPERS}
    lk = links_for(settings)
    c = client(settings, db)
    for who, title, vote in ((sid, PAPERS[0], 1), (sid, PAPERS[3], 1), (sid, PAPERS[1], -1),
                             (other, PAPERS[2], 1)):
        link = lk.feedback(who, ids[title], vote).removeprefix(BASE)  # the digest's links, no login
        assert c.post(link, data={"csrf": csrf_of(c.get(link).text)}).status_code == 200
    url = lk.preferences(sid).removeprefix(BASE)
    page = c.get(url)
    assert page.status_code == 200
    liked_part, _, disliked_part = page.text.partition("Less like this")
    assert PAPERS[0] in liked_part and PAPERS[3] in liked_part and PAPERS[1] in disliked_part
    assert PAPERS[1] not in liked_part and PAPERS[2] not in page.text  # another subscriber's click
    r = c.post(url + "/undo", data={"csrf": csrf_of(page.text), "paper": str(ids[PAPERS[0]])})
    assert r.status_code == 303 and r.headers["location"] == f"{url}?saved=undo"
    after = c.get(r.headers["location"]).text
    assert "forgotten" in after and PAPERS[0] not in after and PAPERS[3] in after and PAPERS[1] in after
    with db.session() as s:
        marks = {(f.subscriber_id, f.paper_id, f.signal) for f in s.scalars(select(Feedback))}
    assert marks == {(sid, ids[PAPERS[3]], 1), (sid, ids[PAPERS[1]], -1), (other, ids[PAPERS[2]], 1)}
    with db.session() as s:  # what the planner reads for the next ranking
        sub = subscriber_store.by_id(s, sid)
    assert (sub.liked, sub.disliked) == ((ids[PAPERS[3]],), (ids[PAPERS[1]],))
    # someone else's paper id, nonsense, or no CSRF token: nothing else is forgotten
    assert c.post(url + "/undo",
                  data={"csrf": csrf_of(after), "paper": str(ids[PAPERS[2]])}).status_code == 303
    assert c.post(url + "/undo", data={"csrf": csrf_of(after), "paper": "12abc"}).status_code == 400
    assert c.post(url + "/undo", data={"paper": str(ids[PAPERS[3]])}).status_code == 403
    with db.session() as s:
        assert len(s.scalars(select(Feedback)).all()) == 3


def test_archive_shows_the_sent_edition_to_its_owner_only(env):
    settings, db, sink = env
    sink.messages.clear()
    a = subscribers.add(db, "a@example.org", topics=["graph neural networks"]).id
    subscribers.add(db, "b@example.org", topics=["diffusion models"])
    planning.plan(db, settings)
    assert sending.send(db, settings).sent == 2
    mail_a = next(m.message for m in sink.messages if m.recipients == ["a@example.org"])
    url = link_in(mail_a, "archive")
    c = client(settings, db)
    r = c.get(url)
    assert (r.status_code == 200 and PAPERS[0] in r.text
            and "script-src" not in r.headers["content-security-policy"])
    with db.session() as s:
        other = s.scalar(select(Delivery.id).where(Delivery.email == "b@example.org"))
    assert c.get(links_for(settings).archive(a, other).removeprefix(BASE)).status_code == 404


# ---------------------------------------------------------------------------- health and errors


def test_healthz_and_error_pages(env, monkeypatch):
    settings, db, _ = env
    c = TestClient(create_app(settings, db), base_url=BASE, raise_server_exceptions=False)
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/no/such/page").status_code == 404
    assert c.delete("/healthz").status_code == 405

    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(topics, "suggest_topics", boom)
    r = c.get("/")
    assert r.status_code == 500 and "Something went wrong" in r.text
    assert "secret internals" not in r.text and "Traceback" not in r.text

    from digest.store.db import Database

    broken = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert TestClient(create_app(settings, broken)).get("/healthz").status_code == 503


# ------------------------------------------------------------------------------ mailto unsubscribe


def _mail(sender: str, subject: str = "unsubscribe", **headers) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "unsubscribe@example.org", subject
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content("")
    return m


def test_mailto_unsubscribe_from_maildir_and_mbox(env, tmp_path):
    settings, db, _ = env
    for e in ("ada@example.org", "alan@example.org", "grace@example.org"):
        subscribers.add(db, e, topics=["graph neural networks"])
    md = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    md.add(_mail("Ada <ADA@example.org>"))
    md.add(_mail("alan@example.org", "Out of office", Auto_Submitted="auto-replied"))
    md.add(_mail("mallory@example.org"))
    md.add(_mail("grace@example.org", "hello"))  # not a request
    report = process_maildir(db, tmp_path / "Maildir")
    assert (report.read, report.unsubscribed, report.unknown, report.skipped) == (4, 1, 1, 2)
    assert status_of(db,
                     "ada@example.org") == "unsubscribed" and status_of(db, "alan@example.org") == "active"
    assert process_maildir(db, tmp_path / "Maildir").read == 0  # handled messages are marked seen

    box = mailbox.mbox(str(tmp_path / "mbox"))
    box.add(_mail("grace@example.org", "Unsubscribe"))
    box.add(_mail("ada@example.org"))
    box.close()
    result = CliRunner().invoke(main,
                                ["--config", write_config(tmp_path, settings), "unsubscribes", "process",
                                       "--mbox", str(tmp_path / "mbox")])
    assert result.exit_code == 0, result.output
    assert "read 2: unsubscribed 1, already 1" in result.output
    assert status_of(db, "grace@example.org") == "unsubscribed"
    with db.session() as s:
        assert s.get(Suppression, "grace@example.org").detail == "mailto"
    bad = CliRunner().invoke(main, ["--config", write_config(tmp_path, settings), "unsubscribes", "process"])
    assert bad.exit_code != 0 and "--maildir" in bad.output
    with pytest.raises(ValueError):
        process_mbox(db, tmp_path / "missing")


def write_config(tmp_path, settings) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{settings.database.url}"\n[web]\nsecret_file = '
                    f'"{tmp_path / "secret"}"\n')
    return str(path)


def test_subscriber_row_is_never_made_active_by_subscribe(env):
    settings, db, _ = env
    c = client(settings, db)
    subscribe(c, "eve@example.org")
    with db.session() as s:
        assert s.scalar(select(Subscriber.status).where(Subscriber.email == "eve@example.org")) == "pending"
    assert planning.plan(db, settings, dry_run=True).editions == []


def test_links_of_a_deleted_subscriber_do_not_reach_a_new_one_with_the_same_id(env):
    settings, db, _ = env
    sid = subscribers.add(db, "old@example.org").id
    manage = old_token(settings, "manage", sid, days=0.01)  # sent in a digest a while ago
    unsub = old_token(settings, "unsubscribe", sid, days=0.01)
    subscribers.remove(db, "old@example.org")
    new = subscribers.add(db, "new@example.org")  # SQLite hands out the freed highest id again
    c = client(settings, db)
    assert new.id == sid or db.dialect != "sqlite"
    r = c.get(f"/preferences/{manage}")
    assert r.status_code == 400 and "new@example.org" not in r.text
    r = c.post(f"/unsubscribe/{unsub}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and status_of(db, "new@example.org") == "active"


# ---------------------------------------------------------------------- bad input at the door (issue 13)


NOT_ZONES = ["A" * 300, "localtime", "posixrules", "Factory", "right/UTC", "posix/UTC", "Europe/Paris\x00",
             "../../etc/passwd", "europe/paris"]


@pytest.mark.parametrize("zone", NOT_ZONES)
def test_a_time_zone_is_an_iana_name_or_one_clear_line(env, zone):
    """Subscribe and preferences answer 400 naming the value (cut if huge), never 500 (zoneinfo's
    "File name too long"), and accept no file under the zoneinfo folder that is not an IANA zone."""
    settings, db, sink = env
    sid = subscribers.add(db, "ada@example.org", topics=["graph neural networks"], timezone="Asia/Tokyo").id
    c = TestClient(create_app(settings, db), base_url=BASE, follow_redirects=False,
                   raise_server_exceptions=False)
    r = subscribe(c, "new@example.org", timezone=zone)
    assert r.status_code == 400 and "unknown time zone" in r.text, r.status_code
    assert repr(zone[:40]).strip("'")[:20] in r.text.replace("&#39;", "'")
    url = links_for(settings).preferences(sid).removeprefix(BASE)
    form = {"csrf": csrf_of(c.get(url).text), "topics": "x", "frequency": "daily", "hour": "8",
            "timezone": zone}
    r = c.post(url, data=form)
    assert r.status_code == 400 and "unknown time zone" in r.text
    assert subscribers.get_by_id(db, sid).timezone == "Asia/Tokyo" and sink.messages == []
    with pytest.raises(subscribers.SubscriberError, match="unknown time zone"):
        subscribers.add(db, "b@example.org", timezone=zone)


def test_addresses_are_decided_at_the_door(env):
    """A non-ASCII local part (it needs SMTPUTF8) and undecodable bytes are refused with a reason and
    nothing stored; an IDN domain is stored in its normalised form and mailed at its xn-- form."""
    settings, db, sink = env
    c = client(settings, db)
    for address in ("jörg@example.org", "\ufffd\ufffd@example.org"):
        r = subscribe(c, address)
        assert r.status_code == 400 and "SMTPUTF8" in r.text, address
    token = csrf_of(c.get("/").text)
    r = c.post("/subscribe", content=f"csrf={token}&email=%ff%fe%40example.org&timezone=UTC".encode(),
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "SMTPUTF8" in r.text
    assert subscribers.list_all(db) == [] and sink.messages == []
    with pytest.raises(subscribers.SubscriberError, match="SMTPUTF8"):
        subscribers.add(db, "jörg@example.org")

    assert subscribe(c, "Ada@Bücher.DE").status_code == 200
    (got,) = sink.messages
    assert [v.email for v in subscribers.list_all(db)] == ["ada@bücher.de"]
    assert got.recipients == ["ada@xn--bcher-kva.de"] and got.message["To"] == "ada@xn--bcher-kva.de"
    assert b"=?" not in got.data.split(b"\r\n\r\n", 1)[0].split(b"\r\nTo:", 1)[1].split(b"\r\n", 1)[0]


def test_free_text_from_the_form_is_cleaned_at_the_door(env):
    settings, db, sink = env
    c = client(settings, db)
    r = subscribe(c, "ada@example.org",
                  topics="\x00\x01\x1b[31mred\x1b[0m\ngraph\u202e neural\u200b networks\n\x07")
    assert r.status_code == 200
    assert subscribers.get(db, "ada@example.org").topics == ("red", "graph neural networks")
    sid = subscribers.get(db, "ada@example.org").id
    url = links_for(settings).preferences(sid).removeprefix(BASE)
    form = {"csrf": csrf_of(c.get(url).text), "topics": "\x1b]0;pwned\x07privacy", "excludes": "sur\x00vey",
            "frequency": "daily", "hour": "8", "timezone": "UTC"}
    assert c.post(url, data=form).status_code == 303
    v = subscribers.get_by_id(db, sid)
    assert all(t.isprintable() for t in v.topics + v.excludes), (v.topics, v.excludes)


def test_every_subscribe_branch_answers_before_any_of_its_work(env, monkeypatch):
    """New, live, pending, suppressed and rate-limited addresses all take one path: the form is checked,
    the request is queued, the page is sent. The lookups, writes and email happen after, so neither
    the page nor its timing can tell the branches apart."""
    settings, db, sink = env
    subscribers.add(db, "known@example.org", topics=["privacy"])
    subscribers.add(db, "waiting@example.org", status="pending")
    with db.session() as s:
        s.add(Suppression(email="bounced@example.org", reason="hard_bounce"))
    gate, done = threading.Event(), []
    real = signup.request_subscription

    def held(*args, **kwargs):
        assert gate.wait(5), "the page waited for the subscribe work"
        done.append(real(*args, **kwargs))

    monkeypatch.setattr(signup, "request_subscription", held)
    c = client(settings, db, address_limit=(1, 3600))
    addresses = ["new@example.org", "known@example.org", "waiting@example.org", "bounced@example.org",
                 "new@example.org"]  # the second time over its per-address limit
    pages = [subscribe(c, a, wait=False) for a in addresses]
    assert not gate.is_set() and done == [] and sink.messages == []  # every page came first
    assert [p.status_code for p in pages] == [200] * 5
    assert len({p.text.replace(a, "EMAIL") for p, a in zip(pages, addresses, strict=True)}) == 1
    assert {v.email for v in subscribers.list_all(db)} == {"known@example.org", "waiting@example.org"}
    gate.set()
    c.app.state.site.signups.join()
    assert done == ["confirm", "manage", "confirm", "suppressed", "limited"]
    assert sorted(m.recipients[0] for m in sink.messages) == ["known@example.org", "new@example.org",
                                                              "waiting@example.org"]


@pytest.mark.parametrize("purpose,payload", [
    ("manage", {"s": 2**64}), ("manage", {"s": 2**63}), ("manage", {"s": -2**70}), ("manage", {"s": True}),
    ("manage", {"s": 1.5}), ("manage", {"s": "1"}), ("unsubscribe", {"s": 2**64}),
    ("confirm", {"s": 2**64, "at": 0}), ("confirm", {"s": 1, "at": 2**200}), ("confirm", {"s": 1, "at": "x"}),
    ("archive", {"s": 1, "d": 2**64}), ("archive", {"s": 1, "d": "1"}), ("archive", {"s": 1, "d": -1}),
    ("feedback", {"s": 1, "p": 2**64, "v": 1}), ("feedback", {"s": 1, "p": 1, "v": 2**64}),
    ("feedback", {"s": 1, "p": 1, "v": True}), ("feedback", {"s": 1, "p": [1], "v": 1}),
])
def test_out_of_range_values_in_a_signed_token_get_a_plain_400(env, purpose, payload):
    settings, db, _ = env
    subscribers.add(db, "ada@example.org", topics=["graph neural networks"])
    token = URLSafeTimedSerializer(settings.secret(), salt=f"digest.{purpose}").dumps(payload)
    path = {"manage": "preferences"}.get(purpose, purpose)
    c = TestClient(create_app(settings, db), base_url=BASE, follow_redirects=False,
                   raise_server_exceptions=False)
    for method in ("GET", "POST"):
        r = c.request(method, f"/{path}/{token}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code in (400, 403, 404,
                                 405) and "Something went wrong" not in r.text, (method, r.status_code)
    r = c.get(f"/{path}/{token}")
    assert r.status_code in (400, 404)
    with pytest.raises(tokens.TokenError):
        tokens.read(settings.secret(), purpose, token)
