"""Planning in bulk picks exactly what planning one subscriber at a time picks, and writes it through
the ledger in one go (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from digest.planning import candidates
from digest.store import papers as paper_store
from digest.store.models import Delivery, DeliveryItem
from digest.store.models import Paper as PaperRow
from digest.subscriptions import subscribers
from digest.usecases import planning
from digest.usecases.ingesting import ingest
from digest.usecases.planning import plan

PHRASES = ["large language models", "diffusion models", "graph neural networks", "reinforcement learning",
           "video generation", "reasoning", "image generation", "federated learning", "robotics", "speech",
           "3D reconstruction", "retrieval augmented generation", "benchmark", "agents", "quantization"]


def add_varied_subscribers(db, n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    emails = []
    for i in range(n):
        topics = rng.sample(PHRASES, rng.randint(0, 4))  # some have none: trending only
        excludes = rng.sample([p for p in PHRASES if p not in topics], rng.randint(0, 2))
        sub = subscribers.add(db, f"reader{i:02d}@example.org", topics=topics, excludes=excludes,
                              max_items=rng.choice([None, 1, 3, 5, 20]),
                              timezone=rng.choice(["UTC", "Asia/Tokyo"]))
        emails.append(sub.email)
    return emails


def picks_of(report) -> dict[str, tuple]:
    return {e.email: (e.period, [(p.paper_id, round(p.score, 6), p.topic, p.why) for p in e.picks],
                      [t.paper_id for t in e.trending]) for e in report.editions}


def test_bulk_planning_picks_what_one_at_a_time_picks(db, settings_for):
    settings = settings_for(db.url)
    now = datetime.now(UTC)
    ingest(db, settings, now=now)
    emails = add_varied_subscribers(db, 40)
    together = picks_of(plan(db, settings, now=now, dry_run=True))
    alone = {}
    for email in emails:
        alone.update(picks_of(plan(db, settings, now=now, email=email, dry_run=True)))
    assert len(together) > 30 and together == alone

    report = plan(db, settings, now=now)  # and what is written is what the dry run said
    assert report.planned == len(together)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == len(together)
        items = s.scalar(select(func.count()).select_from(DeliveryItem).where(DeliveryItem.kind == "pick"))
    assert items == sum(len(v[1]) for v in together.values())
    again = plan(db, settings, now=now)
    assert (again.planned, again.already) == (0, len(together))


def test_the_window_read_without_texts_decides_as_whole_records_analysed_in_memory(db, settings_for,
                                                                                 monkeypatch):
    """Issue 25: the pool read as records without their abstracts, indexed from the stored terms, the
    abstracts read by id for the explanations, plans exactly what the pool of whole records analysed
    in memory (as planning did before) plans: the same picks, scores, explanations and trending."""
    settings = settings_for(db.url)
    now = datetime.now(UTC)
    ingest(db, settings, now=now)
    add_varied_subscribers(db, 40)
    new = plan(db, settings, now=now, dry_run=True)
    assert all(not p.abstract for p in new.papers.values())  # no abstract was held

    def whole_records(db, settings, now, newest=None):
        with db.session() as s:
            papers = paper_store.load(s, seen_after=candidates.earliest_start(settings.digest, now))
        assert all(p.abstract for p in papers)
        return candidates.pool(settings.digest, papers, [], None, now)

    monkeypatch.setattr(planning, "candidate_pool", whole_records)
    old = plan(db, settings, now=now, dry_run=True)
    assert len(picks_of(new)) > 30 and sum(len(v[1]) for v in picks_of(new).values()) > 60
    assert picks_of(new) == picks_of(old)
    assert planning.dry_run_rows(new) == planning.dry_run_rows(old)


def test_the_light_window_holds_the_values_the_whole_records_hold(db, settings_for):
    """load_light converts its JSON and datetime columns itself: the same values as the ORM's types."""
    settings = settings_for(db.url)
    now = datetime.now(UTC)
    ingest(db, settings, now=now)
    fields = ["id", "title", "arxiv_id", "authors", "url", "pdf_url", "code_url", "project_url",
              "thumbnail_url", "upvotes", "num_comments", "github_stars", "categories", "published_at",
              "first_seen_at"]
    start = candidates.earliest_start(settings.digest, now)
    with db.session() as s:
        first = s.scalar(select(func.min(PaperRow.id)))  # the others keep the source's (none)
        s.execute(update(PaperRow).where(PaperRow.id != first).values(
            authors=["Ada B. Lovelace"], categories=["cs.LG"], published_at=now))
    with db.session() as s:
        for kw in ({"seen_after": start}, {"seen_after": start, "newest": 7}, {}):
            whole = [[getattr(p, f) for f in fields] for p in paper_store.load(s, **kw)]
            light = [[getattr(p, f) for f in fields] for p in paper_store.load_light(s, **kw)]
            assert light == whole and len(whole) >= 7
            assert any(r[3] == ["Ada B. Lovelace"] and r[12] == ["cs.LG"] for r in light)
            assert all(r[14].tzinfo is not None for r in light)
            assert any(r[13] is not None and r[13].tzinfo is not None for r in light)
