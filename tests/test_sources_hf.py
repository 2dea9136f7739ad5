"""`hf_daily` against a real local HTTP server replaying the recorded daily_papers response."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from httpreplay import ReplayServer, Reply
from sqlalchemy import select

from digest.ingest import ingest, source_status
from digest.models import Paper, SourceState
from digest.sources.hf_daily import parse_payload

FIXTURES = Path(__file__).parent / "fixtures"
DAY = "2024-10-25"
NOW = datetime(2024, 10, 25, 18, tzinfo=UTC)
FAST_HTTP = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_backoff": 0.05}
ITEMS = json.loads((FIXTURES / "hf_daily_papers_2024-10-25.json").read_text())


@pytest.fixture
def server():
    with ReplayServer() as srv:
        yield srv


def hf_settings(settings_for, db, server, **extra):
    src = {"type": "hf_daily", "base_url": server.url, "backfill_days": 0, "refresh_days": 0, **extra}
    return settings_for(db.url, sources={"hf": src}, http=FAST_HTTP)


def pages(items: list, size: int) -> list[bytes]:
    return [json.dumps(items[i : i + size]).encode() for i in range(0, len(items) + 1, size)]


def rows(db) -> list[Paper]:
    with db.session() as s:
        return list(s.scalars(select(Paper).order_by(Paper.id)))


def state(db, name="hf") -> SourceState:
    with db.session() as s:
        return s.get(SourceState, name)


def test_one_day_then_nothing_new(db, settings_for, server):
    server.add("/api/daily_papers", Reply(body=(FIXTURES / "hf_daily_papers_2024-10-25.json").read_bytes()), date=DAY)
    settings = hf_settings(settings_for, db, server)
    report = ingest(db, settings, now=NOW)
    assert report.ok, report.errors
    assert (report.fetched, report.new, report.skipped) == (29, 29, 0)
    (seen,) = server.requests
    assert seen.params == {"date": DAY, "p": "0", "limit": "50"}
    assert seen.headers["user-agent"].startswith("trending-digest/")
    assert state(db).watermark == DAY
    stored = {r.arxiv_id: r for r in rows(db)}
    assert stored["2410.17243"].upvotes == 64
    assert stored["2410.17243"].url == "https://huggingface.co/papers/2410.17243"
    again = ingest(db, settings, now=NOW)
    assert (again.fetched, again.new, again.updated) == (29, 0, 0)
    assert len(rows(db)) == 29
    assert source_status(db, settings)[0]["watermark"] == DAY


def test_paging_and_sort(db, settings_for, server):
    for p, body in enumerate(pages(ITEMS, 10)):
        server.add("/api/daily_papers", Reply(body=body), date=DAY, p=p, limit=10)
    report = ingest(db, hf_settings(settings_for, db, server, page_size=10, sort="trending"), now=NOW)
    assert report.ok and report.new == 29
    assert [r.params["p"] for r in server.requests] == ["0", "1", "2"]  # 10, 10, 9: a short page ends the day
    assert all(r.params["sort"] == "trending" for r in server.requests)


def test_parse_payload_rejects_whole_page():
    for bad in (b"<!doctype html><title>Oops</title>", b'{"error": "Invalid date"}', b"[1, 2", b'"str"'):
        with pytest.raises(ValueError):
            parse_payload(bad)
    assert parse_payload(b"[]") == ([], 0)
    assert parse_payload(b'[{"paper": {"id": "2410.1"}}, {}]') == ([], 2)


def test_walks_days_from_watermark(db, settings_for, server):
    server.add("/api/daily_papers", Reply(body=b"[]"))
    settings = hf_settings(settings_for, db, server, backfill_days=2, refresh_days=1)
    ingest(db, settings, now=NOW)
    assert [r.params["date"] for r in server.requests] == ["2024-10-23", "2024-10-24", DAY]
    assert state(db).watermark == DAY
    server.requests.clear()
    ingest(db, settings, now=datetime(2024, 10, 27, 1, tzinfo=UTC))
    # the watermark day and one more before it are refreshed, then the new days
    assert [r.params["date"] for r in server.requests] == ["2024-10-24", DAY, "2024-10-26", "2024-10-27"]
    server.requests.clear()
    ingest(db, settings, source="hf", since=date(2024, 10, 20), now=datetime(2024, 10, 21, tzinfo=UTC))
    assert [r.params["date"] for r in server.requests] == ["2024-10-20", "2024-10-21"]
    assert state(db).watermark == "2024-10-27"  # a re-pull never moves it back
