"""A subscriber row and its topic rows as a `records.Subscriber`: the one place that conversion is
written, shared by the ORM store (digest.store.subscribers) and the quick reader (digest.store.quick_read),
so it loads no SQLAlchemy. A row is anything with the columns as attributes (a Core row, a namedtuple)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from digest.records import Subscriber, SubscriberStatus

# What a record holds of a subscriber row, in this order
COLUMNS = ("id", "email", "name", "status", "frequency", "weekday", "hour", "timezone", "max_items",
           "min_papers", "best_of_week", "created_at", "paused_until", "unsubscribed_at", "channel",
           "webhook_hint")


def record(row: Any, topics: Sequence[str], excludes: Sequence[str],
           liked: Sequence[int] = (),
           disliked: Sequence[int] = (), *, authors: Sequence[str] = (),
           weights: Sequence[float] = ()) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, name=row.name, status=SubscriberStatus(row.status),
        frequency=row.frequency,
        weekday=row.weekday, hour=row.hour, timezone=row.timezone, max_items=row.max_items,
        min_papers=row.min_papers, best_of_week=bool(row.best_of_week), topics=tuple(topics),
        excludes=tuple(excludes), liked=tuple(liked), disliked=tuple(disliked), authors=tuple(authors),
        topic_weights=tuple(weights) if any(w != 1 for w in weights) else (),
        created_at=row.created_at, paused_until=row.paused_until, unsubscribed_at=row.unsubscribed_at,
        channel=row.channel or "email", webhook=row.webhook_hint,
    )


def split(topics: Iterable) -> tuple[list[str], list[str]]:
    """A row's topic rows as (include phrases, exclude phrases), in their order."""
    rows = list(topics)
    return [t.phrase for t in rows if t.kind == "include"], [t.phrase for t in rows if t.kind == "exclude"]


def phrases(topics: Iterable) -> dict[str, list[str]]:
    """A row's topic rows by kind ("include", "exclude", "author"), each in their order."""
    out: dict[str, list[str]] = {"include": [], "exclude": [], "author": []}
    for t in topics:
        out[t.kind].append(t.phrase)
    return out


def weights(topics: Iterable) -> list[float]:
    """A row's topics' weights, in the order of `split`'s topics."""
    return [t.weight if t.weight is not None else 1.0 for t in topics if t.kind == "include"]


def followed(topics: Iterable) -> list[str]:
    """A row's followed authors (topic rows of kind "author"), in their order."""
    return [t.phrase for t in topics if t.kind == "author"]
