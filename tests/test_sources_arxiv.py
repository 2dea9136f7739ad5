"""`arxiv` against a real local HTTP server replaying recorded arXiv API responses."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from httpreplay import ReplayServer, Reply, arxiv_fixture

from digest.config import ArxivSource, HttpSettings
from digest.sources import Cursor
from digest.sources import arxiv as arxiv_source
from digest.sources.arxiv import parse_feed
from digest.sources.http import HttpClient
from digest.sources.ingest import ingest
from digest.store.models import Paper, SourceState
from tests.factories import all_rows

ARXIV = Path(__file__).parent / "fixtures" / "arxiv"
NOW = datetime(2026, 4, 13, tzinfo=UTC)
FAST_HTTP = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_backoff": 0.05}
QUERY_PAGES = sorted(ARXIV.glob("q_testing_s*_m10_*.json"))  # start 0, 10, 20


def fixture(name: str) -> tuple[dict, Reply]:
    (path,) = ARXIV.glob(name)
    return arxiv_fixture(path)


def serve_pages(server: ReplayServer) -> None:
    for path in QUERY_PAGES:
        params, reply = arxiv_fixture(path)
        server.add("/api/query", reply, **params)


def arxiv_settings(settings_for, db, server, **extra):
    src = {"type": "arxiv", "base_url": server.url, "query": "testing", "page_size": 10, "max_results": 30,
           "delay": 0, **extra}
    return settings_for(db.url, sources={"ax": src}, http=FAST_HTTP)


def rows(db) -> dict[str, Paper]:
    return {p.arxiv_id: p for p in all_rows(db, Paper)}


def watermark(db, name="ax") -> str | None:
    with db.session() as s:
        st = s.get(SourceState, name)
        return st.watermark if st else None


def test_pages_then_second_run_stores_nothing_new(db, settings_for, server):
    serve_pages(server)
    settings = arxiv_settings(settings_for, db, server)
    first = ingest(db, settings, since=date(1990, 1, 1), now=NOW)
    assert first.ok, first.errors
    assert (first.fetched, first.new, first.skipped) == (30, 30, 0)
    assert [(r.params["start"], r.params["max_results"])
            for r in server.requests] == [("0", "10"), ("10", "10"), ("20", "10")]
    sent = server.requests[0].params
    assert (sent["search_query"], sent["sortBy"],
            sent["sortOrder"]) == ("testing", "submittedDate", "descending")
    stored = rows(db)
    paper = stored["2202.12139"]
    assert paper.categories[:2] == ["cs.SE", "cs.LG"]
    assert paper.authors[0] == "Mohit Kumar Ahuja"
    assert paper.doi == "10.1109/ICSTW55395.2022.00035"
    assert paper.comment.startswith("Artificial Intelligence in Software Testing")
    assert paper.pdf_url == "https://arxiv.org/pdf/2202.12139v1" and paper.version == 1
    assert stored["2405.13786"].authors[0] == "Aurora Ramírez"  # UTF-8 survives the recording
    newest = max(p.published_at for p in stored.values())
    assert watermark(db) == newest.isoformat()

    server.requests.clear()
    second = ingest(db, settings, now=NOW)
    assert second.ok and (second.new, second.updated) == (0, 0)
    assert len(server.requests) == 1  # the first page already reaches what is stored: stop
    assert len(rows(db)) == 30


def test_short_page_ends_the_walk_and_old_style_ids(db, settings_for, server):
    _, reply = fixture("id_astro-ph_0601001_*.json")
    server.add("/api/query", reply)
    report = ingest(db, arxiv_settings(settings_for, db, server), since=date(2000, 1, 1), now=NOW)
    assert report.ok and report.new == 1
    assert len(server.requests) == 1
    paper = rows(db)["astro-ph/0601001"]
    assert paper.authors[:2] == ["Andrew Gould", "Susan Dorsher"]
    assert paper.categories == ["astro-ph"]
    assert "  " not in paper.abstract and paper.abstract.startswith("We derive")


def test_versions_are_one_paper_latest_wins(db, settings_for, server):
    _, v1 = fixture("id_2104.12255v1_*.json")
    v2 = Reply(body=v1.data().replace(b"2104.12255v1",
                                      b"2104.12255v2").replace(b"<title>0</title>",
                                                               b"<title>Zero, v2</title>"))
    server.add("/api/query", [v2, v1])
    settings = arxiv_settings(settings_for, db, server)
    ingest(db, settings, since=date(2021, 1, 1), now=NOW)
    ingest(db, settings, since=date(2021, 1, 1), now=NOW)  # the older version comes second
    (paper,) = rows(db).values()
    assert (paper.arxiv_id, paper.version, paper.title) == ("2104.12255", 2, "Zero, v2")
    assert paper.pdf_url == "https://arxiv.org/pdf/2104.12255v2"


def test_error_feed_is_reported_not_fatal(db, settings_for, server, tmp_path):
    _, bad = fixture("id_abc_*.json")
    assert bad.status == 400
    server.add("/api/query", bad)
    page = tmp_path / "one.jsonl"
    page.write_text(json.dumps({"id": "2410.00001", "title": "Still ingested"}))
    settings = settings_for(
        db.url,
        sources={"ax": {"type": "arxiv", "base_url": server.url, "delay": 0},
                 "local": {"type": "file", "paths": [str(page)]}},
        http=FAST_HTTP,
    )
    report = ingest(db, settings, now=NOW)
    ax, local = report.sources
    assert "arXiv API error (HTTP 400): incorrect id format for abc" in ax.error
    assert (ax.fetched, ax.new) == (0, 0) and watermark(db) is None
    assert len(server.requests) == 1  # a 400 is not retried
    assert local.ok and local.new == 1
    with db.session() as s:
        st = s.get(SourceState, "ax")
        assert st.last_error == ax.error and st.last_success_at is None


def test_empty_result(db, settings_for, server):
    _, empty = fixture("id_0000.0000_*.json")
    server.add("/api/query", empty)
    report = ingest(db, arxiv_settings(settings_for, db, server), now=NOW)
    assert report.ok and (report.fetched, report.new) == (0, 0)
    assert watermark(db) is None


def test_delay_between_calls_and_max_results(server):
    serve_pages(server)
    server.add("/api/query", arxiv_fixture(QUERY_PAGES[-1])[1], start=20)  # any max_results
    slept: list[float] = []
    cfg = ArxivSource(type="arxiv", base_url=server.url, query="testing", page_size=10, max_results=25,
                      delay=3.0)
    with HttpClient(HttpSettings(**FAST_HTTP), sleep=slept.append) as client:
        batches = list(arxiv_source.fetch(cfg, Cursor(None, NOW, since=date(1990, 1, 1)), client))
    assert slept == [3.0, 3.0]  # between calls, not before the first
    assert [r.params["max_results"] for r in server.requests] == ["10", "10", "5"]
    assert batches[-1].watermark and not any(b.watermark for b in batches[:-1])


def test_parse_feed_variants():
    historical = parse_feed((ARXIV / "id_list_1111.2011v2.xml").read_bytes())
    (x,) = historical.listings
    assert (x.arxiv_id, x.version, x.doi) == ("1111.2011", 2, "10.1103/PhysRevB.85.115117")
    assert (x.title
            == "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit")
    _, old = fixture("id_quant-ph_0201082v1_*.json")
    assert parse_feed(old.data()).listings[0].arxiv_id == "quant-ph/0201082"
    for bad in (b"<!DOCTYPE html><html><body>Rate limited</body></html>", b"", b"\x00\x01junk",
                old.data()[:700]):
        with pytest.raises(ValueError):
            parse_feed(bad)
    withdrawn = old.data().replace(b"32 pages", b"This paper has been withdrawn by the author")
    assert parse_feed(withdrawn).listings[0].withdrawn
