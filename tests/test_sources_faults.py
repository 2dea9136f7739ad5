"""Faults on the wire, served by a real local HTTP server: each run ends with the right counts, an
intact database, a watermark that moved only over what was stored, and a next run that heals."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from httpreplay import ReplayServer, Reply, arxiv_fixture
from sqlalchemy import select

from digest.records import Paper as RecordPaper
from digest.sources.ingest import SourceStateView, ingest, source_states
from digest.store import papers as paper_store
from digest.store.models import Paper

FIXTURES = Path(__file__).parent / "fixtures"
DAILY = (FIXTURES / "hf_daily_papers_2024-10-25.json").read_bytes()
EARLIER = json.dumps([{"paper": {"id": f"2410.1000{i}", "title": f"Earlier paper {i}", "upvotes": i}}
                      for i in range(3)])
NOW = datetime(2024, 10, 25, 18, tzinfo=UTC)
HTTP = {"timeout": 0.25, "retries": 2, "backoff": 0.01, "max_backoff": 0.05}
GOOD = Reply(body=DAILY)


def state(db, name: str) -> SourceStateView | None:
    return source_states(db).get(name)


def stored(db) -> dict[str, RecordPaper]:
    with db.session() as s:
        return {p.arxiv_id: p for p in paper_store.load(s, ids=list(s.scalars(select(Paper.id))))}


# (id, replies for 2024-10-25, requests the client makes for that day, error or None)
FAULTS = [
    ("timeout-then-ok", [Reply(body=DAILY, delay=0.6), GOOD], 2, None),
    ("reset-then-ok", [Reply(fault="reset"), GOOD], 2, None),
    ("500-then-200", [Reply(status=500, body=b"oops"), GOOD], 2, None),
    ("429-retry-after-then-200", [Reply(status=429, headers={"Retry-After": "0"}), GOOD], 2, None),
    ("truncated-then-ok", [Reply(body=DAILY, fault="truncate"), GOOD], 2, None),
    ("always-timeout", [Reply(body=DAILY, delay=0.6)], 3, "read timeout"),
    ("always-reset", [Reply(fault="reset")], 3, "after 3 attempts"),
    ("always-503", [Reply(status=503)], 3, "HTTP 503 after 3 attempts"),
    ("cut-without-length", [Reply(body=DAILY, fault="close")], 1, "invalid JSON"),
    ("html-with-200",
     [Reply(body=b"<!DOCTYPE html><html><body>We'll be back</body></html>", content_type="text/html")],
     1, "got an HTML/XML page"),
    ("404", [Reply(status=404, body=b"{}")], 1, "HTTP 404"),
]


@pytest.mark.parametrize("replies, calls, error", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_hf_daily_faults(db, settings_for, server, replies, calls, error):
    server.add("/api/daily_papers", Reply(body=EARLIER), date="2024-10-24")
    server.add("/api/daily_papers", replies, date="2024-10-25")
    settings = settings_for(
        db.url,
        sources={"hf": {"type": "hf_daily", "base_url": server.url, "backfill_days": 1, "refresh_days": 0}},
        http=HTTP,
    )
    report = ingest(db, settings, now=NOW)
    (hf,) = report.sources
    assert len(server.hits("/api/daily_papers", date="2024-10-25")) == calls
    if error is None:
        assert hf.ok, hf.error
        assert (hf.fetched, hf.new, hf.skipped) == (32, 32, 0)
        assert state(db, "hf").watermark == "2024-10-25"
        assert len(stored(db)) == 32
        return
    assert error in hf.error
    assert (hf.fetched, hf.new, hf.skipped) == (3, 3, 0)  # the good day is stored, the bad one is not
    st = state(db, "hf")
    assert st.watermark == "2024-10-24" and st.last_error == hf.error and st.last_success_at is None
    assert set(stored(db)) == {"2410.10000", "2410.10001", "2410.10002"}
    # the service recovers: the next run starts from the stored day and completes
    server.add("/api/daily_papers", GOOD, date="2024-10-25")
    healed = ingest(db, settings, now=NOW)
    assert healed.ok and healed.new == 29
    assert state(db, "hf").watermark == "2024-10-25" and state(db, "hf").last_error == hf.error
    assert len(stored(db)) == 32


def test_connection_refused_does_not_stop_other_sources(db, settings_for, tmp_path):
    with ReplayServer() as gone:
        url = gone.url  # a port that is closed once the server stops
    local = tmp_path / "local.jsonl"
    local.write_text(json.dumps({"id": "2410.00001", "title": "Local"}))
    settings = settings_for(
        db.url,
        sources={
            "hf": {"type": "hf_daily", "base_url": url, "backfill_days": 0},
            "ax": {"type": "arxiv", "base_url": url, "delay": 0},
            "local": {"type": "file", "paths": [str(local)]},
        },
        http=HTTP,
    )
    report = ingest(db, settings, now=NOW)
    hf, ax, loc = report.sources
    assert "connection failed" in hf.error and "connection failed" in ax.error
    assert loc.ok and report.new == 1 and len(report.errors) == 2


def test_arxiv_faults_keep_watermark(db, settings_for, server):
    pages = sorted((FIXTURES / "arxiv").glob("q_testing_s*_m10_*.json"))
    p0, r0 = arxiv_fixture(pages[0])
    p1, r1 = arxiv_fixture(pages[1])
    server.add("/api/query", [Reply(status=500), r0], **p0)
    server.add("/api/query", Reply(body=r1.data(), fault="close"), **p1)
    src = {"type": "arxiv", "base_url": server.url, "query": "testing", "page_size": 10, "max_results": 20,
           "delay": 0}
    settings = settings_for(db.url, sources={"ax": src}, http=HTTP)
    report = ingest(db, settings, since=date(1990, 1, 1), now=NOW)
    (ax,) = report.sources
    assert "start=10: invalid XML" in ax.error
    assert (ax.fetched, ax.new) == (10, 10)  # page one stored (after a 500), page two cut
    assert state(db, "ax").watermark is None  # a newest-first walk that did not finish moves nothing
    server.add("/api/query", r1, **p1)
    healed = ingest(db, settings, since=date(1990, 1, 1), now=NOW)
    assert healed.ok and (healed.new, healed.updated) == (10, 0)
    assert state(db, "ax").watermark is not None and len(stored(db)) == 20


KILLED_RUN = """
import json, sys
from datetime import date, datetime
from digest.config import from_dict
from digest.store.db import Database
from digest.sources.ingest import ingest
settings = from_dict(json.loads(sys.argv[1]))
ingest(Database(settings.database.url), settings, since=date(1990, 1, 1),
       now=datetime.fromisoformat(sys.argv[2]))
"""


def test_run_killed_half_way_resumes(db, settings_for, server):
    """A real process, SIGKILLed while waiting for page two: page one is stored, nothing is half-written,
    and the next run picks up."""
    pages = sorted((FIXTURES / "arxiv").glob("q_testing_s*_m10_*.json"))
    (p0, r0), (p1, r1) = arxiv_fixture(pages[0]), arxiv_fixture(pages[1])
    server.add("/api/query", r0, **p0)
    server.add("/api/query", Reply(body=r1.data(), delay=30), **p1)
    src = {"type": "arxiv", "base_url": server.url, "query": "testing", "page_size": 10, "max_results": 20,
           "delay": 0}
    data = {"database": {"url": db.url}, "sources": {"ax": src}, "http": {**HTTP, "timeout": 60}}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, json.dumps(data), NOW.isoformat()])
    try:
        deadline = time.monotonic() + 30
        while not server.hits("/api/query", start=10) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert server.hits("/api/query", start=10), "the child never asked for page two"
    finally:
        proc.kill()
        proc.wait()
    assert len(stored(db)) == 10
    st = state(db, "ax")
    assert st.watermark is None and st.total_new == 10 and st.last_run_at is None
    server.add("/api/query", r1, **p1)
    settings = settings_for(db.url, sources={"ax": src}, http=HTTP)
    resumed = ingest(db, settings, since=date(1990, 1, 1), now=NOW)
    assert resumed.ok and (resumed.new, resumed.updated) == (10, 0)
    assert len(stored(db)) == 20 and state(db, "ax").watermark is not None
