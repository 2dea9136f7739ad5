"""Rendering claimed deliveries: each becomes what its subscriber's channel sends (`Outgoing`).

A run keeps one `Entries` (each paper's part of an entry made once) and one `Channels` for making
items, across all its batches. A delivery whose subscriber may not be mailed now (gone, paused,
unsubscribed, suppressed) is held back instead; one that cannot be addressed or rendered fails in
one line, and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from digest.delivery import ledger
from digest.delivery.channel import Outgoing, Unaddressable
from digest.delivery.channels import Channels
from digest.render.compose import Entries
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database

log = logging.getLogger("digest.sender")


@dataclass
class Batch:
    """A claimed batch, rendered: the items to send, the deliveries to hold back (suppressed), and
    (id, error) of those that could not be made."""

    items: list[Outgoing] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    broken: list[tuple[int, str]] = field(default_factory=list)


def render_batch(db: Database, channels: Channels, ids: Sequence[int], now: datetime, entries: Entries,
                 held_until: datetime | None = None) -> Batch:
    """The claimed deliveries `ids`, made into items by their subscribers' channels. `held_until` is
    when the claim's lease runs out."""
    editions = ledger.read(db, ids)
    with db.session() as s:
        subs = subscriber_store.by_ids(s, [e.subscriber_id for e in editions])
        suppressed = subscriber_store.suppressed(s, [e.email for e in editions])
        sealed = subscriber_store.sealed_addresses(
            s, [sid for sid, sub in subs.items() if channels.of(sub.channel).sealed])
        missing = {p.paper_id for e in editions for p in (*e.picks, *e.trending)} - entries.papers.keys()
        entries.add(paper_store.by_ids(s, sorted(missing)))
    out = Batch()
    for e in editions:
        assert e.id is not None
        sub = subs.get(e.subscriber_id)
        if sub is None or not sub.mailable(now) or e.email in suppressed:
            out.held.append(e.id)
            continue
        channel = channels.of(sub.channel)
        try:  # an address stored before the door refused it, or a URL sealed with another secret
            item = channel.outgoing(sub, e, entries, now, sealed.get(sub.id))
        except Unaddressable as err:
            log.warning("cannot send delivery=%s: %s", e.id, err)
            out.broken.append((e.id, f"{channel.address} error: {err}"))
            continue
        except Exception as err:  # bad data in one delivery must not stop the others
            log.exception("cannot render delivery=%s", e.id)
            out.broken.append((e.id, f"render error: {type(err).__name__}: {err}"))
            continue
        item.held_until = held_until
        out.items.append(item)
    return out
