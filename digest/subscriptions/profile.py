"""A change to a subscriber's profile as one value: what a user asks to set of their name, topics,
exclusions, followed authors, schedule and cadence, from the CLI's options, a form, a CSV row or the
sign-up form. Adding, updating, the preferences page and the import all take one (`ProfileChange`);
`check` puts it through every rule at the door (digest.subscriptions.rules), together with what
stays as stored, before anything is written; `apply` writes what it checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from digest.records import cadence_problem
from digest.store import subscriber_rows
from digest.store.models import Subscriber as SubscriberRow
from digest.store.models import Topic
from digest.subscriptions.rules import (
    SubscriberError,
    check_flag,
    check_frequency,
    check_max_items,
    check_timezone,
    check_weekday,
    clean_authors,
    clean_name,
    clean_topics,
    clean_weighted_topics,
    parse_int,
)


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: object = _Keep()  # a field left as stored (a new subscriber's: its default)


@dataclass(frozen=True)
class ProfileChange:
    """Each field a new value as the user gave it (a string from a form or a file, or a value), or
    KEEP. Topics, exclusions and authors are lists of phrases; a topic may end in its weight,
    "diffusion models=2" (digest.subscriptions.rules.clean_weighted_topics)."""

    name: object = KEEP
    topics: object = KEEP
    excludes: object = KEEP
    authors: object = KEEP
    frequency: object = KEEP
    weekday: object = KEEP
    hour: object = KEEP
    timezone: object = KEEP
    max_items: object = KEEP
    min_papers: object = KEEP
    best_of_week: object = KEEP

    def given(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not KEEP]


DEFAULTS = {"name": None, "topics": (), "excludes": (), "authors": (), "frequency": "daily", "weekday": 0,
            "hour": 8,
            "timezone": "UTC", "max_items": None, "min_papers": None, "best_of_week": False}
PHRASES = ("topics", "excludes", "authors")  # kept as topic rows, not columns
COLUMNS = tuple(f.name for f in fields(ProfileChange) if f.name not in PHRASES)


class ProfileError(SubscriberError):
    """A refused field, with its name (the import says "column <field>: ...")."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Checked:
    """A profile change that passed every rule: each column's value to store; topics, exclusions and
    authors as the phrases to keep (None: as stored), each topic with its weight."""

    name: str | None
    frequency: str
    weekday: int
    hour: int
    timezone: str
    max_items: int | None
    min_papers: int | None
    best_of_week: bool
    topics: list[tuple[str, float]] | None
    excludes: list[str] | None
    authors: list[str] | None


_CHECKS = {  # in the order a refusal is found (the import's column order)
    "name": clean_name,
    "frequency": check_frequency,
    "weekday": check_weekday,
    "hour": lambda v: parse_int(v, "hour", 0, 23, 8),
    "timezone": check_timezone,
    "max_items": check_max_items,
    "topics": clean_weighted_topics,
    "excludes": clean_topics,
    "authors": clean_authors,
}


def check(change: ProfileChange, stored: SubscriberRow | None = None) -> Checked:
    """`change` with every rule applied, what it leaves as stored included (a new subscriber's: the
    defaults). Best of the week is a weekly digest: another frequency ends a stored one, and asking for
    it with another is refused; a minimum of papers above the papers per digest is refused (the
    cadence rule, `records.cadence_problem`). Raises ProfileError naming the field."""
    out: dict[str, object] = {}
    for field, rule in _CHECKS.items():
        value = getattr(change, field)
        if value is KEEP:
            if field in PHRASES:
                out[field] = None if stored is not None else []
                continue
            value = getattr(stored, field) if stored is not None else DEFAULTS[field]
        try:
            out[field] = rule(value)
        except SubscriberError as err:
            raise ProfileError(field, str(err)) from None
    out["min_papers"], out["best_of_week"] = _cadence(change, stored, out)
    return Checked(**out)  # type: ignore[arg-type]


def _cadence(change: ProfileChange, stored: SubscriberRow | None, out: dict) -> tuple[int | None, bool]:
    least_given = (change.min_papers if change.min_papers is not KEEP
                   else (stored.min_papers if stored else None))
    try:
        least = parse_int(least_given, "min papers", 1, 100)
    except SubscriberError as err:
        raise ProfileError("min_papers", str(err)) from None
    if change.best_of_week is KEEP:
        best = bool(stored is not None and stored.best_of_week) and out["frequency"] == "weekly"
    else:
        try:
            best = check_flag(change.best_of_week, "best of week")
        except SubscriberError as err:
            raise ProfileError("best_of_week", str(err)) from None
    if (problem := cadence_problem(out["frequency"], least, best, out["max_items"])) is not None:
        raise ProfileError("best_of_week" if "best of" in problem else "min_papers", problem)
    return least, best


def apply(row: SubscriberRow, checked: Checked) -> None:
    """Write a checked change to a subscriber's row (its topic rows too)."""
    for column in COLUMNS:
        setattr(row, column, getattr(checked, column))
    set_phrases(row, checked.topics, checked.excludes, checked.authors)


def set_phrases(row: SubscriberRow, topics: Sequence[str | tuple[str, float]] | None,
                excludes: Sequence[str] | None, authors: Sequence[str] | None) -> None:
    """Replace the topic rows (phrases already cleaned; a topic as a phrase, weight 1, or a (phrase,
    weight) pair); None keeps that kind as it is, weights included."""
    if topics is not None:
        weights = dict((t, 1.0) if isinstance(t, str) else t for t in topics)
    else:
        weights = {t.phrase: t.weight for t in row.topics if t.kind == "include"}
    stored = subscriber_rows.phrases(row.topics)
    wanted = [(kind, p) for kind, given in (("include", list(weights)), ("exclude", excludes),
                                            ("author", authors))
              for p in (given if given is not None else stored[kind])]
    # Keep the rows that stay: a new row beside a doomed twin would break the unique constraint,
    # because the flush inserts before it deletes.
    kept = {(t.kind, t.phrase): t for t in row.topics}
    row.topics = [kept.get((k, p)) or Topic(kind=k, phrase=p) for k, p in wanted]
    for t in row.topics:
        t.weight = weights.get(t.phrase, 1.0) if t.kind == "include" else 1.0
