"""What the subscriber's pages show: the first digest to come (after confirming), the editions sent,
"why no email today?", and an edition again in the browser (the archive)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from digest.config import Settings
from digest.delivery import ledger
from digest.delivery.channels.email import render
from digest.delivery.loop import setup_for
from digest.planning import candidates, planner
from digest.records import DeliveryStatus, Paper, Pick, utcnow
from digest.render.compose import paper_url
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.subscriptions.links import links_for
from digest.usecases.planning import select
from digest.usecases.preview_pool import preview_pool
from digest.wording import SLOT_LABELS, one_line, slot_text

DELIVERY_REASONS = SLOT_LABELS  # the delivery status's reasons, as the preferences page labels them


@dataclass
class Item:
    """A paper as the pages list it."""

    title: str
    url: str
    why: str = ""


@dataclass
class SentEdition:
    """A sent edition as the preferences page lists it."""

    label: str
    subject: str
    archive_url: str
    items: list[Item] = field(default_factory=list)


def _items(picks: Sequence[Pick], papers: dict[int, Paper]) -> list[Item]:
    return [Item(one_line(papers[p.paper_id].title), paper_url(papers[p.paper_id]), p.why)
            for p in picks if p.paper_id in papers]


def first_preview(db: Database, settings: Settings, subscriber_id: int,
                  now: datetime | None = None) -> tuple[list[Item], list[Item]]:
    """The picks and 'also trending' papers the subscriber's next digest would hold now, from the
    pages' bounded preview (digest.usecases.preview_pool); nothing is stored."""
    now = now or utcnow()
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
    if sub is None:
        raise LookupError(f"no subscriber #{subscriber_id}")
    run = preview_pool(db, settings, now)
    sel = select(db, settings, run, [sub], now)[subscriber_id]
    return _items(sel.picks, run.papers), _items(sel.trending, run.papers)


def recent_editions(db: Database, settings: Settings, subscriber_id: int,
                    limit: int = 3) -> list[SentEdition]:
    """The last editions sent to a subscriber, newest first, each with its papers and archive link."""
    links = links_for(settings)
    editions = ledger.recent(db, subscriber_id, limit, status=DeliveryStatus.SENT)
    with db.session() as s:
        papers = paper_store.by_ids(s, sorted({p.paper_id for e in editions for p in e.picks}))
    return [SentEdition(label=e.sent_at.strftime("%d %b %Y") if e.sent_at else e.period,
                        subject=e.subject or "",
                        archive_url=links.archive(subscriber_id, e.id or 0), items=_items(e.picks, papers))
            for e in editions]


@dataclass(frozen=True)
class SlotView:
    """The last slot's outcome as the page shows it: `reason` (a DELIVERY_REASONS key) and its sentence."""

    reason: str
    text: str
    last_slot: datetime | None
    next_at: datetime | None
    period: str | None


@dataclass(frozen=True)
class DeliveryView:
    """"Why no email today?" on the preferences page: the last edition sent, the last slot's outcome
    (`planner.slot_status`), the next slot."""

    last_sent_at: datetime | None
    last_subject: str | None
    status: SlotView


def delivery_status(db: Database, settings: Settings, subscriber_id: int,
                    now: datetime | None = None) -> DeliveryView:
    """A subscriber's delivery status, by the rules planning and `digest due` use; nothing is written.
    What their edition would hold now is ranked on the bounded preview (digest.usecases.preview_pool),
    never the whole window."""
    now = now or utcnow()
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
        if sub is None:
            raise LookupError(f"no subscriber #{subscriber_id}")
        suppression = subscriber_store.suppression(s, sub.email)
    past = ledger.history(db, [sub.id]).get(sub.id)
    recent = ledger.recent(db, sub.id, 3)
    sent = ledger.recent(db, sub.id, 1, status=DeliveryStatus.SENT)

    def news() -> planner.News:
        run = preview_pool(db, settings, now)
        sel = select(db, settings, run, [sub], now)[sub.id]
        had = ledger.sent_papers(db, [sub.id], sorted(run.papers))[sub.id]
        return planner.News(fresh=candidates.fresh(run, sel.window_start, had), picks=len(sel.picks))

    st = planner.slot_status(sub, now, past.last if past else None, recent, suppression, news)
    return DeliveryView(last_sent_at=sent[0].sent_at if sent else None,
                        last_subject=sent[0].subject if sent else None,
                        status=SlotView(st.reason, slot_text(st), st.last_slot, st.next_at, st.period))


def archive_html(db: Database, settings: Settings, subscriber_id: int, delivery_id: int) -> str | None:
    """A sent edition rebuilt as its email HTML ("view in browser"); None if it is not theirs."""
    edition = ledger.edition_of(db, subscriber_id, delivery_id)
    if edition is None:
        return None
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
        papers = paper_store.by_ids(s, sorted({p.paper_id for p in (*edition.picks, *edition.trending)}))
    if sub is None:
        return None
    return render(setup_for(settings), sub, edition, papers).html
