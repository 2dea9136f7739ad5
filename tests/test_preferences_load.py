"""The preferences page under load and against a hanging arXiv (issue 23, item 13): a view ranks a
bounded, shared preview (never the whole window, never once per view); its "next slot" is `digest due`'s;
seeding from arXiv ids never holds a request, so `/healthz` answers while arXiv hangs."""

from __future__ import annotations

import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import time_machine
import uvicorn
from starlette.testclient import TestClient

from digest.planning import candidates
from digest.subscriptions import subscribers
from digest.subscriptions.links import links_for
from digest.subscriptions.profile import ProfileChange
from digest.usecases import pages, planning, preview_pool, sending
from digest.usecases.reads import StoreReads
from digest.web.app import create_app
from tests.factories import add_tagged

BASE = "http://testserver"
TOPIC = "graph neural networks"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_next_slot_on_the_page_is_digest_dues_after_todays_digest_went_out(db, settings_for):
    """Today's digest went out at 06:05 (hour 6); the subscriber then moved their hour to 9. At 08:00
    the page must say today's went out and the next comes tomorrow at 09:00, as `digest due` does."""
    settings = settings_for(db.url, sources={})
    with time_machine.travel(at("2024-06-03T05:00Z"), tick=False):
        sid = subscribers.add(db, "ada@example.org", topics=[TOPIC], hour=6).id
    add_tagged(db, 3, at("2024-06-03T04:00Z"), "monday")
    with time_machine.travel(at("2024-06-03T06:05Z"), tick=False):
        assert sending.run_pass(db, settings, due_only=True).send.sent == 1
    subscribers.update(db, sid, ProfileChange(hour=9))
    now = at("2024-06-03T08:00Z")
    with time_machine.travel(now, tick=False):
        view = pages.delivery_status(db, settings, sid, now=now)
        (row,) = planning.due_at(StoreReads(db), now)
    assert view.status.reason == "sent" and view.last_sent_at is not None
    assert row["due"] is False
    assert view.status.next_at == at("2024-06-04T09:00Z")
    assert row["next_at"] is not None and datetime.fromisoformat(row["next_at"]) == view.status.next_at


def test_a_manual_send_before_the_slot_makes_the_next_slot_tomorrow(db, settings_for):
    """`digest send` at 05:30 sends today's edition to a subscriber whose hour is 7 (a manual send does
    not wait for the hour): the page says it went, and the next slot is tomorrow 07:00, as `digest
    due` says."""
    settings = settings_for(db.url, sources={})
    with time_machine.travel(at("2024-06-03T05:00Z"), tick=False):
        sid = subscribers.add(db, "ada@example.org", topics=[TOPIC], hour=7).id
    add_tagged(db, 3, at("2024-06-03T04:00Z"), "monday")
    with time_machine.travel(at("2024-06-03T05:30Z"), tick=False):
        assert sending.run_pass(db, settings).send.sent == 1
    now = at("2024-06-03T06:00Z")
    with time_machine.travel(now, tick=False):
        view = pages.delivery_status(db, settings, sid, now=now)
        (row,) = planning.due_at(StoreReads(db), now)
    assert view.status.reason == "sent" and row["due"] is False
    assert view.status.next_at == at("2024-06-04T07:00Z") == datetime.fromisoformat(row["next_at"])


def test_a_subscriber_who_joined_after_the_slot_and_got_todays_digest_is_not_first(db, settings_for):
    settings = settings_for(db.url, sources={})
    with time_machine.travel(at("2024-06-03T07:30Z"), tick=False):
        sid = subscribers.add(db, "ada@example.org", topics=[TOPIC], hour=6).id
    add_tagged(db, 3, at("2024-06-03T04:00Z"), "monday")
    with time_machine.travel(at("2024-06-03T07:35Z"), tick=False):
        assert sending.run_pass(db, settings, due_only=True).send.sent == 1
    now = at("2024-06-03T09:00Z")
    with time_machine.travel(now, tick=False):
        view = pages.delivery_status(db, settings, sid, now=now)
        (row,) = planning.due_at(StoreReads(db), now)
    assert view.status.reason == "sent"
    assert view.status.next_at == at("2024-06-04T06:00Z") == datetime.fromisoformat(row["next_at"])


def test_page_views_rank_one_bounded_shared_preview(db, settings_for, monkeypatch):
    """Views of the confirm and preferences pages rank against at most PREVIEW_PAPERS papers, built
    once for all of them (the real pool function runs; it is only counted)."""
    monkeypatch.setattr(preview_pool, "PREVIEW_PAPERS", 20)
    built: list[int] = []
    real = candidates.pool

    def counted(cfg, papers, *args, **kwargs):
        built.append(len(papers))
        return real(cfg, papers, *args, **kwargs)

    monkeypatch.setattr(candidates, "pool", counted)
    settings = settings_for(db.url, web={"base_url": BASE}, sources={})
    now = datetime.now(UTC)
    add_tagged(db, 60, now - timedelta(hours=30), "window")  # a window three times the preview
    ids = [subscribers.add(db, f"reader{i}@example.org", topics=[TOPIC], hour=(now.hour + 1) % 24).id
           for i in range(3)]
    with time_machine.travel(now + timedelta(days=2), tick=False):  # past their first slot
        client = TestClient(create_app(settings, db), base_url=BASE)
        for sid in ids * 2:
            page = client.get(links_for(settings).preferences(sid).removeprefix(BASE))
            assert page.status_code == 200 and 'data-reason="' in page.text
    assert built and max(built) <= 20 and len(built) == 1


# ------------------------------------------------------------------- seeding while arXiv hangs


class HangingServer:
    """An 'arXiv' that accepts every connection and never answers."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)  # held open, read from never

    def close(self):
        self.stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def hanging_arxiv():
    srv = HangingServer()
    yield srv
    srv.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_seeding_while_arxiv_hangs_holds_no_request_and_healthz_answers(db, settings_for, hanging_arxiv,
                                                                         caplog):
    seeding_before = set(threading.enumerate())  # another test's app may have left its thread
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_for(db.url, web={"base_url": base},
                            sources={"arxiv": {"type": "arxiv", "base_url": hanging_arxiv.url, "delay": 0}},
                            http={"timeout": 120, "retries": 4})  # what a patient admin may set
    sids = [subscribers.add(db, f"reader{i}@example.org", topics=[TOPIC]).id for i in range(45)]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, db), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            for _ in range(200):
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    threading.Event().wait(0.1)
            first = c.get(links_for(settings).preferences(sids[0]).removeprefix(base))
            token = re.search(r'name="csrf" value="([^"]+)"', first.text)[1]
            cookies = dict(c.cookies)

        def seed(sid: int) -> httpx.Response:
            url = links_for(settings).preferences(sid).removeprefix(base)
            with httpx.Client(base_url=base, timeout=30, cookies=cookies) as one:
                return one.post(url + "/seed", data={"csrf": token, "arxiv_ids": "2006.11239"},
                                headers={"Origin": base})

        with ThreadPoolExecutor(45) as pool:
            answers = list(pool.map(seed, sids))
            health = httpx.get(f"{base}/healthz", timeout=30)
        assert [a.status_code for a in answers] == [303] * 45  # each answered while arXiv still hangs
        assert all("saved=seed-arxiv" in a.headers["location"] for a in answers)
        assert health.status_code == 200
        assert hanging_arxiv.conns  # arXiv was asked, and has not answered
        page = httpx.get(f"{base}{links_for(settings).preferences(sids[-1]).removeprefix(base)}", timeout=30)
        assert "being fetched from arXiv" in page.text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    # stopping ends the seeding in hand (its arXiv call times out) and drops those still waiting, so
    # no seeding outlives the server
    assert not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "seeding" and t not in seeding_before]
    dropped = [r.message for r in caplog.records if "were not fetched" in r.message]
    assert len(dropped) == 1 and re.search(r"; (\d+) seedings", dropped[0])
    assert 1 <= int(re.search(r"; (\d+) seedings", dropped[0])[1]) <= 44
