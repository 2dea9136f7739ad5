"""Subscribers and their topics: validation at the door, add/update/remove, CSV import and export."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import IO

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from digest.mail import webhook as webhooks
from digest.mail.message import ascii_address
from digest.ranking.authors import name_key, same_author
from digest.records import FREQUENCIES, WEEKDAYS, Subscriber, check_zone, quoted, utcnow
from digest.sources.clean import clean_text
from digest.store import subscribers as subscriber_store
from digest.store.db import Database, among
from digest.store.models import Feedback, Topic
from digest.store.models import Subscriber as SubscriberRow

MAX_TOPICS = 20
MAX_TOPIC_CHARS = 100
MAX_NAME_CHARS = 200  # the column's size
MAX_AUTHORS = 50
_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits only (int() also takes "٣", "1_0" and 4,000 digits)
CSV_FIELDS = ["email", "name", "status", "topics", "excludes", "frequency", "weekday", "hour", "timezone", "max_items",
              "authors", "min_papers", "best_of_week"]


class SubscriberError(ValueError):
    """Bad subscriber input, with a message fit to show a user."""


# The rules at the door: every way in (the web forms, the CLI, the CSV import) goes through these.


def normalise_email(address: str) -> str:
    """An address in its stored form: email-validator's normalised form (an IDN domain in Unicode), lower
    case. For finding a subscriber; a new address goes through `check_email`."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as err:
        raise SubscriberError(f"{quoted(address, 80)} is not a valid email address: {err}") from None


def check_email(address: str) -> str:
    """A new address, normalised, if the mailer can send to it (`digest.mail.message.ascii_address`, the
    rule every message follows): a non-ASCII local part needs SMTPUTF8, which is not supported."""
    normalised = normalise_email(address)
    try:
        ascii_address(normalised)
    except ValueError as err:
        raise SubscriberError(f"{err}; use an address with only ASCII letters before the @") from None
    return normalised


def clean_line(value: object, limit: int, what: str) -> str:
    """Free text from a form, the CLI or a file, as titles are cleaned (digest.sources.clean): one line,
    NFC, no control characters, terminal escapes or bidi overrides. Too long is refused, not cut."""
    text = clean_text(value, limit * 4)
    if len(text) > limit:
        raise SubscriberError(f"{what} too long (max {limit} characters): {quoted(text)}")
    return text


def clean_name(value: str | None) -> str | None:
    return clean_line(value or "", MAX_NAME_CHARS, "name") or None


def clean_topics(phrases: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in phrases:
        phrase = clean_line(raw, MAX_TOPIC_CHARS, "topic")
        if phrase and phrase.lower() not in (p.lower() for p in out):
            out.append(phrase)
    if len(out) > MAX_TOPICS:
        raise SubscriberError(f"too many topics ({len(out)}; max {MAX_TOPICS})")
    return out


def clean_authors(names: Iterable[str]) -> list[str]:
    """Followed authors as written, one line each, each with letters; the same person twice (by the
    one name rule, `ranking.authors.same_author`, written the same way) is kept once."""
    out: list[str] = []
    for raw in names:
        name = clean_line(raw, MAX_NAME_CHARS, "author")
        if not name:
            continue
        key = name_key(name)
        if key is None:
            raise SubscriberError(f"author {quoted(name)} has no letters")
        if all(name_key(o) != key for o in out):
            out.append(name)
    if len(out) > MAX_AUTHORS:
        raise SubscriberError(f"too many followed authors ({len(out)}; max {MAX_AUTHORS})")
    return out


def parse_int(value: int | str | None, what: str, low: int, high: int, default: int | None = None) -> int | None:
    """A whole number low..high from a form field, an option or a CSV cell; empty gives `default`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SubscriberError(f"{what} must be a whole number, not {quoted(value)}")
    if isinstance(value, str) and not _WHOLE.fullmatch(value.strip()):
        raise SubscriberError(f"{what} must be a whole number, not {quoted(value)}")
    number = int(value)
    if not low <= number <= high:
        raise SubscriberError(f"{what} must be {low}..{high}, not {quoted(value)}")
    return number


def check_frequency(frequency: str) -> str:
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {quoted(frequency)}")
    return frequency


def check_timezone(timezone: str) -> str:
    try:
        return check_zone(timezone)
    except ValueError as err:
        raise SubscriberError(str(err)) from None


def check_weekday(weekday: int | str) -> int:
    """0..6 (Monday = 0), from a number or a day name."""
    if isinstance(weekday, str) and weekday.strip() and not weekday.strip().isdigit():
        if weekday.strip().lower() not in WEEKDAYS:
            raise SubscriberError(f"weekday must be one of {', '.join(WEEKDAYS)}, not {quoted(weekday)}")
        return WEEKDAYS.index(weekday.strip().lower())
    return parse_int(weekday, "weekday", 0, 6, 0)  # type: ignore[return-value]


def check_max_items(max_items: int | str | None) -> int | None:
    return parse_int(max_items, "max items", 1, 100)


def check_cadence(frequency: str, min_papers: int | str | None, best_of_week: object = False,
                  max_items: int | None = None) -> tuple[int | None, bool]:
    """The cadence rules: skip an edition with fewer than `min_papers` papers (1..100, none by default,
    never more than the subscriber's own papers per digest), and best of the week, which is a kind of
    weekly digest. Returns (min_papers, best_of_week)."""
    least = parse_int(min_papers, "min papers", 1, 100)
    if max_items and least and least > max_items:
        raise SubscriberError(f"min papers ({least}) cannot be more than the papers per digest ({max_items}): "
                              "no edition could ever be sent")
    best = check_flag(best_of_week, "best of week")
    if best and frequency != "weekly":
        raise SubscriberError(f"best of the week is a weekly digest: set the frequency to weekly, not {quoted(frequency)}")
    return least, best


def check_flag(value: object, what: str) -> bool:
    """A yes/no from an option, a form checkbox or a CSV cell (true/false, yes/no, on/off, 1/0, empty)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise SubscriberError(f"{what} must be yes or no, not {quoted(value)}")


def check_schedule(frequency: str, hour: int | str, timezone: str, weekday: int | str = 0) -> tuple[int, int]:
    """Validate the delivery schedule; returns (hour, weekday as 0..6, Monday = 0)."""
    check_frequency(frequency)
    hour_ = parse_int(hour, "hour", 0, 23, 8)
    check_timezone(timezone)
    return hour_, check_weekday(weekday)  # type: ignore[return-value]


def view(row: SubscriberRow) -> Subscriber:
    """The record of a row this module has just read or written (its topics loaded with it)."""
    return subscriber_store.record_of(row)


def _is_url(value: str) -> bool:
    return "://" in value


WEBHOOK_KINDS = webhooks.KINDS  # what `--kind` takes


def is_channel(value: str) -> bool:
    """Whether what a user typed names a team channel ("slack:3f2a9c1b7d4e"), not an inbox."""
    return webhooks.is_identity(value.strip())


def shown(value: str) -> str:
    """What a user passed to name a subscriber, fit to print back: an address or identity as given, a
    webhook URL redacted."""
    return webhooks.redact(value) if _is_url(value) else value


def key(value: str) -> str:
    """What the ledger and the planner know a subscriber by, from what a user typed: a webhook identity
    as given, else the normalised address (`digest send --subscriber`, `digest preview --subscriber`)."""
    return value.strip() if webhooks.is_identity(value.strip()) else normalise_email(value)


def row_of(session: Session, email: str) -> SubscriberRow:
    """The subscriber's row by address, channel identity or webhook URL; SubscriberError (the URL
    redacted) if there is none."""
    sub = _find(session, email)
    if sub is None:
        raise _missing(email)
    return sub


def _find(session: Session, email: str) -> SubscriberRow | None:
    """A subscriber by address, by webhook identity ("slack:3f2a9c1b7d4e"), or by webhook URL."""
    value = email.strip()
    if webhooks.is_identity(value):
        return subscriber_store.row(session, email=value)
    if _is_url(value):
        for kind in webhooks.KINDS:  # the identity names the kind; the URL alone does not
            if (found := subscriber_store.row(session, email=webhooks.identity(kind, value))) is not None:
                return found
        return None
    return subscriber_store.row(session, email=normalise_email(email))


def _missing(email: str) -> SubscriberError:
    value = email.strip()
    if webhooks.is_identity(value) or _is_url(value):
        return SubscriberError(f"no subscriber {shown(value)}")
    return SubscriberError(f"no subscriber {normalise_email(email)}")


def _set_topics(sub: SubscriberRow, topics: Sequence[str], excludes: Sequence[str],
                authors: Sequence[str] | None = None) -> None:
    """Replace the topic rows; `authors` None keeps the followed authors as they are."""
    if authors is None:
        authors = subscriber_store.followed(sub.topics)
    wanted = ([("include", p) for p in clean_topics(topics)] + [("exclude", p) for p in clean_topics(excludes)]
              + [("author", a) for a in clean_authors(authors)])
    # Keep the rows that stay: a new row beside a doomed twin would break the unique constraint,
    # because the flush inserts before it deletes.
    kept = {(t.kind, t.phrase): t for t in sub.topics}
    sub.topics = [kept.get((k, p)) or Topic(kind=k, phrase=p) for k, p in wanted]


def add(db: Database, email: str, *, topics: Sequence[str] = (), excludes: Sequence[str] = (),
        frequency: str = "daily", timezone: str = "UTC", hour: int | str = 8, weekday: int | str = 0,
        max_items: int | str | None = None, name: str | None = None, status: str = "active",
        authors: Sequence[str] = (), min_papers: int | str | None = None, best_of_week: object = False) -> Subscriber:
    address = check_email(email)
    hour, day = check_schedule(frequency, hour, timezone, weekday)
    max_items, name = check_max_items(max_items), clean_name(name)
    min_papers, best_of_week = check_cadence(frequency, min_papers, best_of_week, max_items)
    include, exclude, follow = clean_topics(topics), clean_topics(excludes), clean_authors(authors)
    with db.session() as s:
        if _find(s, address):
            raise SubscriberError(f"{address} is already subscribed")
        sub = SubscriberRow(email=address, name=name, status=status, frequency=frequency, weekday=day,
                            hour=hour, timezone=timezone, max_items=max_items, min_papers=min_papers,
                            best_of_week=best_of_week)
        _set_topics(sub, include, exclude, follow)
        s.add(sub)
        s.flush()
        return view(sub)


def add_webhook(db: Database, secret: str, url: str, kind: str, *, topics: Sequence[str] = (),
                excludes: Sequence[str] = (), frequency: str = "daily", timezone: str = "UTC", hour: int | str = 8,
                weekday: int | str = 0, max_items: int | str | None = None, name: str | None = None,
                authors: Sequence[str] = (), min_papers: int | str | None = None,
                best_of_week: object = False) -> Subscriber:
    """A team channel as a subscriber: planned like anyone, sent to its webhook. It is known by its
    identity ("slack:3f2a9c1b7d4e"); the URL is stored sealed with `secret` and shown only redacted."""
    try:
        kind, url = webhooks.check_kind(kind), webhooks.check_url(url)
    except webhooks.WebhookError as err:
        raise SubscriberError(str(err)) from None
    hour, day = check_schedule(frequency, hour, timezone, weekday)
    max_items, name = check_max_items(max_items), clean_name(name)
    min_papers, best_of_week = check_cadence(frequency, min_papers, best_of_week, max_items)
    include, exclude, follow = clean_topics(topics), clean_topics(excludes), clean_authors(authors)
    with db.session() as s:
        if (found := _find(s, url)) is not None:
            raise SubscriberError(f"{webhooks.redact(url)} is already subscribed, as {found.email}")
        sub = SubscriberRow(email=webhooks.identity(kind, url), name=name, status="active", frequency=frequency,
                            weekday=day, hour=hour, timezone=timezone, max_items=max_items, channel=kind,
                            webhook_url=webhooks.Sealer(secret).seal(url), webhook_hint=webhooks.redact(url),
                            min_papers=min_papers, best_of_week=best_of_week)
        _set_topics(sub, include, exclude, follow)
        s.add(sub)
        s.flush()
        return view(sub)


def get(db: Database, email: str) -> Subscriber:
    with db.session() as s:
        sub = row_of(s, email)
        return view(sub)


def list_all(db: Database, status: str | None = None) -> list[Subscriber]:
    with db.session() as s:
        q = subscriber_store.query()
        if status:
            q = q.where(SubscriberRow.status == status)
        return subscriber_store.load(s, q)


def remove(db: Database, email: str) -> Subscriber:
    """Delete a subscriber and their history (the address can subscribe again later); returns who it was."""
    with db.session() as s:
        sub = row_of(s, email)
        gone = view(sub)
        s.delete(sub)
        return gone


def feedback_and_suppression(db: Database, email: str) -> dict:
    """Part of what `subscribers show` adds to the profile: feedback counts and any suppression."""
    with db.session() as s:
        sub = row_of(s, email)
        fb = s.execute(
            select(Feedback.signal, func.count()).where(Feedback.subscriber_id == sub.id, Feedback.origin == "click")
            .group_by(Feedback.signal)
        ).all()
        suppressed = subscriber_store.suppression(s, sub.email)
        return {
            "feedback": {"more_like_this": sum(n for v, n in fb if v > 0), "less_like_this": sum(n for v, n in fb if v < 0)},
            "suppressed": suppressed,
        }


def export_csv(db: Database, out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    subs = [v for v in list_all(db) if not v.by_webhook]  # a webhook's URL is a secret: not in a file
    for v in subs:
        writer.writerow({
            "email": v.email, "name": v.name or "", "status": v.status, "topics": "; ".join(v.topics),
            "excludes": "; ".join(v.excludes), "frequency": v.frequency, "weekday": v.weekday, "hour": v.hour,
            "timezone": v.timezone, "max_items": v.max_items or "", "authors": "; ".join(v.authors),
            "min_papers": v.min_papers or "", "best_of_week": "yes" if v.best_of_week else "",
        })
    return len(subs)


IMPORT_CHUNK = 2000  # rows written per transaction by `import_csv`
_PROFILE_COLUMNS = ("name", "frequency", "weekday", "hour", "timezone", "max_items", "min_papers", "best_of_week")


def import_csv(db: Database, src: IO[str], now: datetime | None = None) -> tuple[int, int, list[str]]:
    """Add or update subscribers from CSV (columns as export writes them; only `email` is required).

    Every row is validated first; a bad row is reported with its line number and skipped. The rest is
    written in chunks of IMPORT_CHUNK rows, one transaction each, new subscribers and their topics in
    bulk. An existing subscriber gets only the columns the file has: a column left out keeps its
    stored value; a status of "unsubscribed" suppresses the address as an unsubscribe does. A later
    row for the same address wins. Returns (added, updated, errors).
    """
    reader = csv.DictReader(src)
    if not reader.fieldnames or "email" not in reader.fieldnames:
        raise SubscriberError("CSV needs a header row with at least an 'email' column")
    columns = {c.strip() for c in reader.fieldnames}
    unknown = columns - set(CSV_FIELDS)
    if unknown:
        raise SubscriberError(f"unknown CSV column(s): {', '.join(sorted(unknown))}")
    rows: dict[str, dict] = {}
    errors: list[str] = []
    try:
        for row in reader:
            try:
                fields = _row_fields(row)
                rows.pop(fields["email"], None)
                rows[fields["email"]] = fields
            except SubscriberError as err:
                errors.append(f"line {reader.line_num}, {err}")
    except csv.Error as err:  # a field over csv's size limit, say: nothing is imported
        raise SubscriberError(f"after line {reader.line_num}: not readable as CSV ({err}); "
                              "nothing imported") from None
    now = now or utcnow()
    added = updated = 0
    todo = list(rows.values())
    for start in range(0, len(todo), IMPORT_CHUNK):
        new, changed = _import_chunk(db, todo[start : start + IMPORT_CHUNK], columns, now)
        added, updated = added + new, updated + changed
    return added, updated, errors


def _import_chunk(db: Database, rows: Sequence[dict], columns: set[str], now: datetime) -> tuple[int, int]:
    with db.session() as s:
        existing = {r.email: r for r in s.scalars(select(SubscriberRow).where(
            among(SubscriberRow.email, [f["email"] for f in rows])))}
        fresh = [f for f in rows if f["email"] not in existing]
        if fresh:
            # A plain executemany, then one lookup of the new ids: an INSERT ... RETURNING of many rows
            # goes as statements of 1,000 rows' placeholders, which psycopg parses anew every time
            # (a third of importing 100,000 on PostgreSQL).
            s.execute(insert(SubscriberRow.__table__), [
                {"email": f["email"], "status": f["status"], "created_at": now,
                 "unsubscribed_at": now if f["status"] == "unsubscribed" else None,
                 **{k: f[k] for k in _PROFILE_COLUMNS}} for f in fresh])
            ids = dict(s.execute(select(SubscriberRow.email, SubscriberRow.id)
                                 .where(among(SubscriberRow.email, [f["email"] for f in fresh]))).all())
            topics = [{"subscriber_id": ids[f["email"]], "kind": kind, "phrase": phrase, "weight": 1.0}
                      for f in fresh for kind, column in (("include", "topics"), ("exclude", "excludes"),
                                                          ("author", "authors"))
                      for phrase in f[column]]
            if topics:
                s.execute(insert(Topic.__table__), topics)
        for f in rows:
            if f["email"] in existing:
                _apply(existing[f["email"]], f, columns, now)
        for f in rows:
            if f["status"] == "unsubscribed" and (f["email"] not in existing or "status" in columns):
                subscriber_store.suppress(s, f["email"], "unsubscribed", "import", now)
    return len(fresh), len(rows) - len(fresh)


def _apply(sub: SubscriberRow, fields: dict, columns: set[str], now: datetime) -> None:
    """Set the columns the file has on a stored subscriber."""
    for key in _PROFILE_COLUMNS:
        if key in columns:
            setattr(sub, key, fields[key])
    if "status" in columns and fields["status"] != sub.status:
        sub.status = fields["status"]
        if sub.status == "unsubscribed":
            sub.unsubscribed_at, sub.paused_until = now, None
    if {"topics", "excludes", "authors"} & columns:
        include, exclude = subscriber_store.split(sub.topics)
        _set_topics(sub, fields["topics"] if "topics" in columns else include,
                    fields["excludes"] if "excludes" in columns else exclude,
                    fields["authors"] if "authors" in columns else None)


def _row_fields(row: dict) -> dict:
    """One CSV row through the same rules as the forms; an error names the column."""
    def cell(column: str, default: str = "") -> str:
        return (row.get(column) or "").strip() or default

    def split(column: str) -> list[str]:
        return [p for p in cell(column).split(";") if p.strip()]

    checks = {
        "email": lambda: check_email(cell("email")),
        "name": lambda: clean_name(cell("name")),
        "status": lambda: _check_status(cell("status", "active")),
        "frequency": lambda: check_frequency(cell("frequency", "daily")),
        "weekday": lambda: check_weekday(cell("weekday", "0")),
        "hour": lambda: parse_int(cell("hour"), "hour", 0, 23, 8),
        "timezone": lambda: check_timezone(cell("timezone", "UTC")),
        "max_items": lambda: check_max_items(cell("max_items")),
        "topics": lambda: clean_topics(split("topics")),
        "excludes": lambda: clean_topics(split("excludes")),
        "authors": lambda: clean_authors(split("authors")),
    }
    fields = {}
    for column, check in checks.items():
        try:
            fields[column] = check()
        except SubscriberError as err:
            raise SubscriberError(f"column {column}: {err}") from None
    try:
        fields["min_papers"], fields["best_of_week"] = check_cadence(
            fields["frequency"], cell("min_papers"), cell("best_of_week"), fields["max_items"])
    except SubscriberError as err:
        raise SubscriberError(f"column {'best_of_week' if 'best of' in str(err) else 'min_papers'}: {err}") from None
    return fields


def _check_status(status: str) -> str:
    if status not in ("active", "paused", "pending", "unsubscribed"):
        raise SubscriberError(f"unknown status {quoted(status)}")
    return status


# ------------------------------------------------------------------------ self-service (web, mailto)


def _by_id(session: Session, subscriber_id: int) -> SubscriberRow:
    sub = subscriber_store.row(session, subscriber_id=subscriber_id)
    if sub is None:
        raise SubscriberError(f"no subscriber #{subscriber_id}")
    return sub


def get_by_id(db: Database, subscriber_id: int) -> Subscriber:
    with db.session() as s:
        return view(_by_id(s, subscriber_id))


def update(db: Database, subscriber_id: int, *, topics: Sequence[str], excludes: Sequence[str] = (),
           frequency: str = "daily", timezone: str = "UTC", hour: int | str = 8, weekday: int | str = 0,
           max_items: int | str | None = None, authors: Sequence[str] | None = None) -> Subscriber:
    """Replace a subscriber's topics and schedule (all fields validated before anything is written);
    the followed authors too when `authors` is given. Best of the week is a weekly digest: another
    frequency ends it; a minimum of papers above the new papers per digest comes down to it."""
    hour, day = check_schedule(frequency, hour, timezone, weekday)
    max_items = check_max_items(max_items)
    include, exclude = clean_topics(topics), clean_topics(excludes)
    follow = clean_authors(authors) if authors is not None else None
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        sub.frequency, sub.weekday, sub.hour, sub.timezone, sub.max_items = frequency, day, hour, timezone, max_items
        sub.best_of_week = bool(sub.best_of_week) and frequency == "weekly"
        if max_items and sub.min_papers and sub.min_papers > max_items:
            sub.min_papers = max_items
        _set_topics(sub, include, exclude, follow)
        s.flush()
        return view(sub)


def follow(db: Database, email: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Subscriber:
    """Follow the authors in `add` and stop following those in `remove` (matched by the name rule, so
    "Y. LeCun" stops "Yann LeCun"); the rest of the profile stays. Removing a name not followed is an error."""
    wanted, dropping = clean_authors(add), clean_authors(remove)
    if (add or remove) and not (wanted or dropping):  # only blank names: nothing to do is a mistake
        raise SubscriberError("give an author's name (e.g. \"Yann LeCun\")")
    with db.session() as s:
        sub = row_of(s, email)
        current = subscriber_store.followed(sub.topics)
        for name in dropping:
            if not any(same_author(name, c) for c in current):
                raise SubscriberError(f"{sub.email} does not follow {quoted(name)}")
        kept = [c for c in current if not any(same_author(name, c) for name in dropping)]
        include, exclude = subscriber_store.split(sub.topics)
        _set_topics(sub, include, exclude, [*kept, *wanted])
        s.flush()
        return view(sub)


_KEEP = object()  # `change`: leave this field as stored


def change(db: Database, email: str, *, frequency: object = _KEEP, weekday: object = _KEEP, hour: object = _KEEP,
           timezone: object = _KEEP, max_items: object = _KEEP, min_papers: object = _KEEP,
           best_of_week: object = _KEEP) -> Subscriber:
    """Change only the given parts of a subscriber's schedule and cadence (`digest subscribers update`),
    checked together with what stays by the rules `add` uses; nothing is written if one is refused.
    `min_papers=None` removes the minimum."""
    with db.session() as s:
        sub = row_of(s, email)

        def given(value: object, stored: object) -> object:
            return stored if value is _KEEP else value

        freq = given(frequency, sub.frequency)
        h, day = check_schedule(freq, given(hour, sub.hour), given(timezone, sub.timezone),
                                given(weekday, sub.weekday))
        most = check_max_items(given(max_items, sub.max_items))
        best = given(best_of_week, bool(sub.best_of_week) and (freq == "weekly" or frequency is _KEEP))
        least, best = check_cadence(freq, given(min_papers, sub.min_papers), best, most)
        sub.frequency, sub.hour, sub.weekday, sub.timezone = freq, h, day, given(timezone, sub.timezone)
        sub.max_items, sub.min_papers, sub.best_of_week = most, least, best
        s.flush()
        return view(sub)


def set_cadence(db: Database, subscriber_id: int, *, min_papers: int | str | None,
                best_of_week: object) -> Subscriber:
    """The preferences page's cadence block: the minimum of papers and best of the week, by the same rules."""
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        sub.min_papers, sub.best_of_week = check_cadence(sub.frequency, min_papers, best_of_week, sub.max_items)
        s.flush()
        return view(sub)


def pause(db: Database, subscriber_id: int, weeks: int | str, now: datetime) -> Subscriber:
    """No digests for `weeks` (1..52) weeks; the planner picks the subscriber up again when the pause ends."""
    weeks = parse_int(weeks, "weeks", 1, 52, 1)  # type: ignore[assignment]
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        if sub.status not in ("active", "paused"):
            raise SubscriberError(f"cannot pause a subscription that is {sub.status}")
        sub.status, sub.paused_until = "paused", now + timedelta(weeks=weeks)
        return view(sub)


def resume(db: Database, subscriber_id: int) -> Subscriber:
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        if sub.status == "paused":
            sub.status, sub.paused_until = "active", None
        return view(sub)


def unsubscribe(db: Database, subscriber_id: int, now: datetime, detail: str = "") -> bool:
    """Unsubscribe and suppress the address so no path mails it again; True if it was subscribed.

    Idempotent. Only a fresh, confirmed subscription lifts the suppression.
    """
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        changed = sub.status != "unsubscribed"
        if changed:
            sub.status, sub.unsubscribed_at, sub.paused_until = "unsubscribed", now, None
        subscriber_store.suppress(s, sub.email, "unsubscribed", detail or None, now)
        return changed


def prune_pending(db: Database, older_than: timedelta, now: datetime) -> int:
    """Forget sign-ups never confirmed within `older_than` (their confirmation links have expired)."""
    with db.session() as s:
        stale = s.scalars(select(SubscriberRow).where(SubscriberRow.status == "pending",
                                                      SubscriberRow.created_at < now - older_than)).all()
        for sub in stale:
            s.delete(sub)
        return len(stale)
