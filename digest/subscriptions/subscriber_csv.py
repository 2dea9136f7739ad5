"""Subscribers in and out of CSV files: `digest subscribers export` and `import`. A row goes through the
same rules as the forms (a profile change, digest.subscriptions.profile); the rows are written in bulk."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO

from sqlalchemy import insert, select

from digest.records import SubscriberStatus as Status
from digest.records import quoted, utcnow
from digest.store import subscribers as subscriber_store
from digest.store.db import Database, among
from digest.store.models import Subscriber as SubscriberRow
from digest.store.models import Topic
from digest.subscriptions.profile import (
    COLUMNS,
    KEEP,
    PHRASES,
    ProfileChange,
    ProfileError,
    check,
    set_phrases,
)
from digest.subscriptions.rules import SubscriberError, check_email, check_status, clean_weighted_topics
from digest.subscriptions.subscribers import exportable, list_all

CSV_FIELDS = ["email", "name", "status", "topics", "excludes", "frequency", "weekday", "hour", "timezone",
              "max_items",
              "authors", "min_papers", "best_of_week"]
# read, never written: weights apart from the topics ("diffusion models=2; GNN=0.5"), each naming one of
# the row's topics; an export writes the weights in `topics` ("diffusion models=2")
IMPORT_ONLY = ["topic_weights"]


def export_csv(db: Database, out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    subs = exportable(list_all(db))  # a secret address (a webhook's URL): not in a file
    for v in subs:
        writer.writerow({
            "email": v.email, "name": v.name or "", "status": v.status, "topics": "; ".join(v.written_topics),
            "excludes": "; ".join(v.excludes), "frequency": v.frequency, "weekday": v.weekday, "hour": v.hour,
            "timezone": v.timezone, "max_items": v.max_items or "", "authors": "; ".join(v.authors),
            "min_papers": v.min_papers or "", "best_of_week": "yes" if v.best_of_week else "",
        })
    return len(subs)


IMPORT_CHUNK = 2000  # rows written per transaction by `import_csv`


def import_csv(db: Database, src: IO[str], now: datetime | None = None,
               progress: Callable[[int], None] | None = None,
               stop: threading.Event | None = None) -> tuple[int, int, list[str]]:
    """Add or update subscribers from CSV (columns as export writes them; only `email` is required).

    Every row is validated first; a bad row is reported with its line number and skipped. The rest is
    written in chunks of IMPORT_CHUNK rows, one transaction each, new subscribers and their topics in
    bulk. An existing subscriber gets only the columns the file has: a column left out keeps its
    stored value; a status of "unsubscribed" suppresses the address as an unsubscribe does. A later
    row for the same address wins. Returns (added, updated, errors). Once `stop` is set (a signal),
    nothing more is written: while validating, nothing at all; while writing, the chunks written stay
    (importing the same file again updates those rows in place and writes the rest).
    """
    reader = csv.DictReader(src)
    if not reader.fieldnames or "email" not in reader.fieldnames:
        raise SubscriberError("CSV needs a header row with at least an 'email' column")
    columns = {c.strip() for c in reader.fieldnames}
    unknown = columns - set(CSV_FIELDS) - set(IMPORT_ONLY)
    if unknown:
        raise SubscriberError(f"unknown CSV column(s): {', '.join(sorted(unknown))}")
    rows: dict[str, dict] = {}
    errors: list[str] = []
    try:
        for row in reader:
            if stop is not None and stop.is_set():
                return 0, 0, errors
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
        if stop is not None and stop.is_set():
            break
        new, changed = _import_chunk(db, todo[start : start + IMPORT_CHUNK], columns, now)
        if progress:
            progress(len(todo[start : start + IMPORT_CHUNK]))
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
                 "unsubscribed_at": now if f["status"] == Status.UNSUBSCRIBED else None,
                 **{k: f[k] for k in COLUMNS}} for f in fresh])
            ids = dict(s.execute(select(SubscriberRow.email, SubscriberRow.id)
                                 .where(among(SubscriberRow.email, [f["email"] for f in fresh]))).all())
            topics = [{"subscriber_id": ids[f["email"]], "kind": kind, "phrase": phrase, "weight": weight}
                      for f in fresh for kind, column in (("include", "topics"), ("exclude", "excludes"),
                                                          ("author", "authors"))
                      for phrase, weight in (f[column] if kind == "include"
                                             else ((p, 1.0) for p in f[column]))]
            if topics:
                s.execute(insert(Topic.__table__), topics)
        for f in rows:
            if f["email"] in existing:
                _apply(existing[f["email"]], f, columns, now)
        for f in rows:
            if f["status"] == Status.UNSUBSCRIBED and (f["email"] not in existing or "status" in columns):
                subscriber_store.suppress(s, f["email"], "unsubscribed", "import", now)
    return len(fresh), len(rows) - len(fresh)


def _apply(sub: SubscriberRow, fields: dict, columns: set[str], now: datetime) -> None:
    """Set the columns the file has on a stored subscriber."""
    for key in COLUMNS:
        if key in columns:
            setattr(sub, key, fields[key])
    if "status" in columns and fields["status"] != sub.status:
        sub.status = fields["status"]
        if sub.status == Status.UNSUBSCRIBED:
            sub.unsubscribed_at, sub.paused_until = now, None
    if set(PHRASES) & columns:
        set_phrases(sub, *(fields[c] if c in columns else None for c in PHRASES))


def _row_fields(row: dict) -> dict:
    """One CSV row through the same rules as the forms (an empty cell: the default); an error names
    the column."""
    def cell(column: str) -> str:
        return (row.get(column) or "").strip()

    def given(column: str) -> object:
        if column in PHRASES:
            return [p for p in cell(column).split(";") if p.strip()] or KEEP
        return cell(column) or KEEP

    try:
        email = check_email(cell("email"))
    except SubscriberError as err:
        raise SubscriberError(f"column email: {err}") from None
    try:
        status = check_status(cell("status") or Status.ACTIVE)
    except SubscriberError as err:
        raise SubscriberError(f"column status: {err}") from None
    try:
        checked = check(ProfileChange(**{c: given(c) for c in (*COLUMNS, *PHRASES)}))
    except ProfileError as err:
        raise SubscriberError(f"column {err.field}: {err}") from None
    fields = {"email": email, "status": status, **{c: getattr(checked, c) for c in (*COLUMNS, *PHRASES)}}
    if cell("topic_weights"):
        fields["topics"] = _weighed(fields["topics"], cell("topic_weights"))
    return fields


def _weighed(topics: list[tuple[str, float]] | None, cell: str) -> list[tuple[str, float]]:
    """The row's topics with the weights of a `topic_weights` cell ("diffusion models=2; GNN=0.5", read
    by the same rule as a weight in `topics`, none is 1; the cell's weight wins); a phrase there that is not
    one of the row's topics is refused naming the column."""
    try:
        given = clean_weighted_topics(p for p in cell.split(";") if p.strip())
    except SubscriberError as err:
        raise SubscriberError(f"column topic_weights: {err}") from None
    weights = dict(topics or [])
    by_key = {t.lower(): t for t in weights}
    for phrase, weight in given:
        if phrase.lower() not in by_key:
            raise SubscriberError(f"column topic_weights: {quoted(phrase)} is not one of the row's topics")
        weights[by_key[phrase.lower()]] = weight
    return list(weights.items())
