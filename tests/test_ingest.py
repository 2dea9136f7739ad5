"""Ingest: upsert, dedupe, merge across sources, untrusted text, source status (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.config import ConfigError, Settings, bundled_listings
from digest.records import Listing
from digest.sources.ingest import ingest, source_status
from digest.store.models import Paper
from digest.store.papers import upsert
from tests.factories import all_rows

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2024, 10, 25, 12, tzinfo=UTC)


def papers(db) -> list[Paper]:
    return all_rows(db, Paper)


def file_settings(settings_for, db, **paths: list[str]):
    return settings_for(db.url, sources={name: {"type": "file", "paths": p} for name, p in paths.items()})


def test_default_sample_source_twice(db, settings_for):
    settings = settings_for(db.url)
    assert list(settings.sources) == ["sample"]
    first = ingest(db, settings, now=T0)
    assert first.ok, first.errors
    assert (first.fetched, first.skipped) == (29 + 60 + 48, 0)
    assert first.new == 135  # two papers are on both listing pages
    second = ingest(db, settings, now=T0 + timedelta(hours=1))
    assert (second.new, second.updated) == (0, 0)
    rows = papers(db)
    assert len(rows) == 135
    assert all(r.first_seen_at == T0 for r in rows)
    assert all(r.sources == ["sample"] for r in rows)
    status = source_status(db, settings)
    assert status[0]["name"] == "sample" and status[0]["type"] == "file"
    assert status[0]["total_new"] == 135 and status[0]["total_fetched"] == 2 * 137
    assert status[0]["last_success_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert status[0]["last_error"] is None
    json.dumps(status)


def test_refetch_updates_counters_keeps_first_seen(db, settings_for, tmp_path):
    items = json.loads((FIXTURES / "hf_daily_papers_2024-10-25.json").read_text())[:3]
    path = tmp_path / "daily.json"
    path.write_text(json.dumps(items))
    settings = file_settings(settings_for, db, hf=[str(path)])
    assert ingest(db, settings, now=T0).new == 3
    items[0]["paper"]["upvotes"] = 99
    items[1]["numComments"] = 7
    path.write_text(json.dumps(items))
    report = ingest(db, settings, now=T0 + timedelta(days=1))
    assert (report.new, report.updated) == (0, 2)
    rows = {r.arxiv_id: r for r in papers(db)}
    assert rows[items[0]["paper"]["id"]].upvotes == 99
    assert rows[items[1]["paper"]["id"]].num_comments == 7
    assert all(r.first_seen_at == T0 for r in rows.values())
    assert rows[items[0]["paper"]["id"]].updated_at == T0 + timedelta(days=1)


def test_same_paper_from_two_sources_is_one_row(db, settings_for, tmp_path):
    hf = tmp_path / "hf.json"
    hf.write_text(json.dumps([{"paper": {"id": "2410.17243", "title": "Breaking the Memory\n  Barrier",
                                         "summary": "From HF.", "upvotes": 64}}]))
    ax = tmp_path / "ax.jsonl"
    ax.write_text(json.dumps({"id": "2410.17243v2", "title": "Breaking the Memory Barrier",
                              "abstract": "From arXiv v2.",
                              "categories": ["cs.LG", "cs.CV"], "doi": "10.1/x",
                              "published": "2024-10-22T17:59:30Z"}))
    page = tmp_path / "page.txt"
    page.write_text("Breaking the memory barrier\n\n" + "An abstract with enough words to count as one. " * 3)
    settings = file_settings(settings_for, db, page=[str(page)], hf=[str(hf)], arxiv=[str(ax)])
    # the page (no id) arrives first, then HF and arXiv fold into the same row
    report = ingest(db, settings, now=T0)
    assert report.ok and report.new == 1 and report.updated == 2
    (row,) = papers(db)
    assert row.arxiv_id == "2410.17243" and row.version == 2
    assert row.upvotes == 64 and row.categories == ["cs.LG", "cs.CV"] and row.doi == "10.1/x"
    assert row.abstract == "From arXiv v2."
    assert row.sources == ["page", "hf", "arxiv"]
    # an older version never overwrites a newer one's metadata
    ax.write_text(json.dumps({"id": "2410.17243v1", "title": "Old Title", "abstract": "v1 text"}))
    ingest(db, settings, source="arxiv", now=T0 + timedelta(days=1))
    (row,) = papers(db)
    assert (row.title, row.abstract, row.version) == ("Breaking the Memory Barrier", "From arXiv v2.", 2)
    assert row.first_seen_at == T0


def test_first_seen_is_the_earliest(db):
    with db.session() as s:
        upsert(s, [Listing(title="A paper", arxiv_id="2401.00001", source="x")], T0)
    with db.session() as s:  # a backfill that claims an earlier time moves it back, never forward
        upsert(s, [Listing(title="A paper", arxiv_id="2401.00001", source="y")], T0 - timedelta(days=2))
        upsert(s, [Listing(title="A paper", arxiv_id="2401.00001", source="z")], T0 + timedelta(days=2))
    (row,) = papers(db)
    assert row.first_seen_at == T0 - timedelta(days=2)
    assert row.sources == ["x", "y", "z"]


def test_untrusted_text_and_malformed_entries(db, settings_for, tmp_path):
    items = [
        {"paper": {"id": "2410.00001", "title": "<b>Bold</b> \x1b[31mtitle\u202e\x00",
                   "summary": "abc\u0007 " * 10}},
        {"paper": {"id": "2410.00002", "title": "Huge", "summary": "word " * 1_000_000, "upvotes": "many",
                   "githubRepo": "javascript:alert(1)", "githubStars": 10**30, "withdrawnAt": "2024-10-26"}},
        {"paper": {"id": 5, "title": None}},
        {"paper": []},
        "string",
        {"paper": {"id": "2410.00003", "title": ["not", "text"]}},
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(items))
    settings = file_settings(settings_for, db, bad=[str(path)], missing=[str(tmp_path / "nope.json")])
    report = ingest(db, settings, now=T0)
    bad, missing = report.sources
    assert (bad.fetched, bad.new, bad.skipped, bad.error) == (6, 2, 4, None)
    assert missing.skipped == 1 and "nope.json" in missing.error
    rows = {r.arxiv_id: r for r in papers(db)}
    assert rows["2410.00001"].title == "Bold title"
    assert "\x07" not in rows["2410.00001"].abstract
    huge = rows["2410.00002"]
    assert len(huge.abstract) <= 10_000 and huge.upvotes == 0 and huge.code_url is None
    assert huge.github_stars == 2_000_000_000
    assert huge.withdrawn_at == T0


def test_unknown_source_is_a_config_error(db, settings_for):
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        ingest(db, settings_for(db.url), source="nope")


def test_large_batch_is_few_statements(db):
    listings = [Listing(title=f"Paper number {i}", arxiv_id=f"2401.{i:05d}", source="bulk")
                for i in range(1200)]
    with db.session() as s:
        assert upsert(s, listings, T0) == (1200, 0)
    with db.session() as s:
        for x in listings[:600]:
            x.upvotes = 5
        assert upsert(s, listings, T0) == (0, 600)
        assert s.scalar(select(func.count()).select_from(Paper)) == 1200


def test_bundled_paths_exist():
    assert all(Path(p).is_file() for p in bundled_listings())
    assert Settings().sources["sample"].paths == bundled_listings()
