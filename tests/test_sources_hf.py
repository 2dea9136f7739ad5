"""`hf_daily` against a real local HTTP server replaying the recorded daily_papers response."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from httpreplay import Reply

from digest.sources.hf_daily import parse_payload
from digest.sources.ingest import SourceStateView, ingest, source_states, source_status
from digest.store.models import Paper
from tests.factories import all_rows

FIXTURES = Path(__file__).parent / "fixtures"
DAY = "2024-10-25"
NOW = datetime(2024, 10, 25, 18, tzinfo=UTC)
FAST_HTTP = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_backoff": 0.05}
ITEMS = json.loads((FIXTURES / "hf_daily_papers_2024-10-25.json").read_text())


def hf_settings(settings_for, db, server, **extra):
    src = {"type": "hf_daily", "base_url": server.url, "backfill_days": 0, "refresh_days": 0, **extra}
    return settings_for(db.url, sources={"hf": src}, http=FAST_HTTP)


def pages(items: list, size: int) -> list[bytes]:
    return [json.dumps(items[i : i + size]).encode() for i in range(0, len(items) + 1, size)]


def rows(db) -> list[Paper]:
    return all_rows(db, Paper)


def state(db, name="hf") -> SourceStateView | None:
    return source_states(db).get(name)


def test_one_day_then_nothing_new(db, settings_for, server):
    server.add("/api/daily_papers", Reply(body=(FIXTURES / "hf_daily_papers_2024-10-25.json").read_bytes()),
               date=DAY)
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


NEWER = [
    {
        "paper": {
            "id": "2501.00001",
            "title": "A Newer-Shape Paper",
            "summary": "Has the optional fields.",
            "upvotes": 12,
            "ai_summary": "It does new things.",
            "ai_keywords": ["diffusion", "privacy"],
            "githubRepo": "https://github.com/example/repo",
            "githubStars": 321,
            "projectPage": "https://example.org/project",
            "submittedOnDailyAt": "2025-01-02T00:00:00.000Z",
            "authors": [{"_id": "x", "name": "Ada", "hidden": False},
                        {"_id": "y", "name": "Hidden", "hidden": True}],
        },
        "numComments": 4,
        "thumbnail": "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2501.00001.png",
    },
    {"paper": {"id": "2501.00002", "title": "Withdrawn One", "summary": "x",
               "withdrawnAt": "2025-01-03T00:00:00Z"}},
    {"paper": {"id": "2501.00003", "title": "Minimal", "authors": "not a list", "upvotes": None}},
]


def test_newer_payload_fields(db, settings_for, server):
    server.add("/api/daily_papers", Reply(body=json.dumps(NEWER)), date=DAY)
    report = ingest(db, hf_settings(settings_for, db, server), now=NOW)
    assert report.ok and report.new == 3
    stored = {r.arxiv_id: r for r in rows(db)}
    p = stored["2501.00001"]
    assert (p.upvotes, p.num_comments, p.github_stars) == (12, 4, 321)
    assert p.code_url == "https://github.com/example/repo" and p.project_url == "https://example.org/project"
    assert p.ai_summary == "It does new things." and p.authors == ["Ada"]
    assert p.thumbnail_url.endswith("2501.00001.png")
    assert stored["2501.00002"].withdrawn_at == NOW and p.withdrawn_at is None
    assert stored["2501.00003"].thumbnail_url.endswith("/2501.00003.png")


def test_refresh_is_conditional_and_updates_upvotes(db, settings_for, server):
    items = json.loads(json.dumps(ITEMS[:5]))
    server.add("/api/daily_papers", Reply(body=b"[]"))  # any other day: nothing listed
    server.add("/api/daily_papers", Reply(body=json.dumps(items), etag='"day-v1"'), date=DAY)
    settings = hf_settings(settings_for, db, server, refresh_days=1)
    assert ingest(db, settings, now=NOW).new == 5
    later = datetime(2024, 10, 26, 9, tzinfo=UTC)
    server.requests.clear()
    unchanged = ingest(db, settings, now=later)  # re-reads 10-24 and 10-25 (304), reads 10-26
    assert [r.params["date"] for r in server.requests] == ["2024-10-24", DAY, "2024-10-26"]
    assert server.hits("/api/daily_papers", date=DAY)[0].headers["if-none-match"] == '"day-v1"'
    assert unchanged.ok and (unchanged.fetched, unchanged.new, unchanged.updated) == (0, 0, 0)
    assert state(db).watermark == "2024-10-26"
    items[0]["paper"]["upvotes"] = 500
    server.add("/api/daily_papers", Reply(body=json.dumps(items), etag='"day-v2"'), date=DAY)
    later = datetime(2024, 10, 26, 20, tzinfo=UTC)  # refresh_days=1: 10-25 is still re-read
    refreshed = ingest(db, settings, now=later)
    assert refreshed.ok and (refreshed.new, refreshed.updated) == (0, 1)
    assert {r.arxiv_id: r.upvotes for r in rows(db)}[items[0]["paper"]["id"]] == 500
    cache = state(db).http_cache
    assert any(v.get("etag") == '"day-v2"' for v in cache.values())
    assert all(r.first_seen_at == NOW for r in rows(db))


def test_same_paper_from_hf_and_arxiv(db, settings_for, server):
    """arXiv categories and HF upvotes side by side in one row; first_seen_at is the earliest."""
    feed = (FIXTURES / "arxiv" / "id_2104.12255v1_s0_m100_6ae69987ffe1.json").read_text()
    server.add("/api/query", Reply(body=json.loads(feed)["body"].encode("latin-1")))
    item = {"paper": {"id": "2104.12255", "title": "0", "summary": "HF copy.", "upvotes": 9},
            "numComments": 2}
    server.add("/api/daily_papers", Reply(body=json.dumps([item])), date=DAY)
    settings = settings_for(
        db.url,
        sources={
            "ax": {"type": "arxiv", "base_url": server.url, "delay": 0},
            "hf": {"type": "hf_daily", "base_url": server.url, "backfill_days": 0},
        },
        http=FAST_HTTP,
    )
    ingest(db, settings, source="ax", since=date(2021, 1, 1), now=NOW)
    ingest(db, settings, source="hf", now=datetime(2024, 10, 27, tzinfo=UTC), since=date(2024, 10, 25))
    (p,) = rows(db)
    assert (p.arxiv_id, p.upvotes, p.num_comments, p.categories) == ("2104.12255", 9, 2, ["cs.CR"])
    assert p.sources == ["ax", "hf"] and p.first_seen_at == NOW
    assert p.abstract.startswith("What is the funniest number")  # arXiv's text is not replaced by HF's
    assert p.url == "https://arxiv.org/abs/2104.12255"


def test_untrusted_content_over_http(db, settings_for, server):
    items = [
        {"paper": {"id": "2410.20001", "title": "<script>alert(1)</script><i>Italic</i>\x1b[2J Title\u200b",
                   "summary": "A\x00b\x07c " + "long " * 1_000_000, "upvotes": -3,
                   "githubRepo": "javascript:x"}},
        {"paper": {"id": "2410.20002", "title": 12345, "summary": "wrong-typed title"}},
        {"paper": {"id": "2410.20003"}},
        {"nopaper": True},
        None,
    ]
    body = json.dumps(items).encode()
    assert len(body) > 5_000_000
    server.add("/api/daily_papers", Reply(body=body), date=DAY)
    report = ingest(db, hf_settings(settings_for, db, server), now=NOW)
    assert report.ok and (report.fetched, report.new, report.skipped) == (5, 1, 4)
    (p,) = rows(db)
    assert p.title == "Italic Title" and p.abstract.startswith("A b c long long")
    assert len(p.abstract) <= 10_000 and p.upvotes == 0 and p.code_url is None


@pytest.mark.sqlite_only
def test_since_is_bounded_like_a_watermark_and_says_so(db, settings_for, tmp_path, server):
    """issue 13: `--since 0001-01-01` walked one request a day from year 1 (about 739,000 of them)."""
    from click.testing import CliRunner

    from digest.cli import main
    from digest.sources import MAX_DAYS_BACK

    # empty days, then a 404 that stops an unbounded walk at once instead of 739,000 requests later
    server.add("/api/daily_papers", [Reply(body=b"[]")] * (MAX_DAYS_BACK + 1) + [Reply(status=404)])
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[digest]\nranker = "lexical"\n[http]\nretries = 0\n'
                   f'[sources.hf]\ntype = "hf_daily"\nbase_url = "{server.url}"\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "ingest", "--since", "0001-01-01", "--json"])
    assert result.exit_code == 0, result.output
    assert len(server.requests) == MAX_DAYS_BACK + 1
    (note,) = json.loads(result.output[result.output.index("{"):])["notes"]
    assert note.startswith("hf: --since 0001-01-01 is more than 400 days back: re-pulling from ")
    server.add("/api/daily_papers", Reply(body=b"[]"), date=DAY)
    report = ingest(db, hf_settings(settings_for, db, server), since=date(2999, 1, 1), now=NOW)
    assert report.notes == [f"hf: --since 2999-01-01 is in the future: re-pulling from {DAY}"] and report.ok
