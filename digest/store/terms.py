"""Stored analysed terms (`paper_terms`): one packed record per paper, kept while the paper's text and
the analyser stay the same. What a record holds, and how it is made, is the ranking's business
(digest.ranking.stored_terms), handed in as an `Analysis`; this module only stores and reads bytes.

As with vectors (store/vectors.py), analysing happens outside transactions: `ensure` reads what is
missing in one short transaction and writes each batch in another. `stream` reads the records of a
run's papers a chunk at a time, so a large window never holds them all at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.store.db import Database, among
from digest.store.models import Paper as PaperRow
from digest.store.models import PaperTerms

log = logging.getLogger(__name__)
BATCH = 2000  # papers analysed and written together
CHUNK = 5000  # records read at a time
_ONE_AT_A_TIME = threading.Lock()


class Analysis(Protocol):
    """Where records are made: `submit([(title, abstract)])` gives their packed records (a future:
    it may run elsewhere, see ranking.term_workers); `ahead` batches may be in flight at once."""

    ahead: int

    def submit(self, docs: Sequence[tuple[str, str]]) -> Future[list[bytes]]: ...


def text_hash(title: str, abstract: str) -> str:
    return hashlib.sha1(f"{title}\n{abstract}".encode()).hexdigest()


def ensure(db: Database, analyser: str, analysis: Analysis, since: datetime | None = None,
           progress: Callable[[int], None] | None = None) -> int:
    """Analyse and store every listed paper updated since `since` (all without it) whose record is
    missing or stale (see `Follow`). Returns how many were analysed; `progress(n)` after each batch."""
    with Follow(db, analyser, analysis, since, progress) as follow:
        follow.poll()
    return follow.done


class Follow:
    """`ensure`, a step at a time: each `poll()` takes the papers stored since the last one (ids past
    the last read, updated since `since`), BATCH at a time: read, handed to `analysis` (up to
    `analysis.ahead` batches in flight while the next are read and the caller goes on), written in
    order; memory stays flat. An ingest polls after each batch it stores, so the analysis keeps up
    with it; the papers it updated (older ids) need a last `ensure` from the start. Leaving the
    `with` block writes what is in flight. One at a time in a process."""

    def __init__(self, db: Database, analyser: str, analysis: Analysis, since: datetime | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.db, self.analyser, self.analysis = db, analyser, analysis
        self.since, self.progress = since, progress
        self.done, self.seen, self.after = 0, 0, 0  # analysed, written (stale or not), the last id read
        self.pending: deque[tuple[int, list[tuple[int, str, str, str]], Future[list[bytes]] | None]] = deque()

    def poll(self) -> None:
        while rows := self._read():
            self.after = rows[-1][0]
            todo = _stale(rows, self.analyser)
            docs = [(t, a) for _, t, a, _ in todo]
            self.pending.append((len(rows), todo, self.analysis.submit(docs) if todo else None))
            while len(self.pending) > self.analysis.ahead:
                self._finish()

    def _read(self) -> list:
        with self.db.session() as s:
            q = (select(PaperRow.id, PaperRow.title, PaperRow.abstract, PaperTerms.analyser,
                        PaperTerms.text_hash)
                 .outerjoin(PaperTerms, PaperTerms.paper_id == PaperRow.id)
                 .where(PaperRow.withdrawn_at.is_(None), PaperRow.id > self.after)
                 .order_by(PaperRow.id).limit(BATCH))
            if self.since is not None:
                q = q.where(PaperRow.updated_at >= self.since)
            return list(s.execute(q).all())

    def _finish(self) -> None:
        seen, todo, blocks = self.pending.popleft()
        if blocks is not None:
            _write(self.db, self.analyser,
                   [(i, h, b) for (i, _, _, h), b in zip(todo, blocks.result(), strict=True)])
        self.done += len(todo)
        self.seen += seen
        if self.progress:
            self.progress(seen)

    def __enter__(self) -> Follow:
        _ONE_AT_A_TIME.acquire()
        return self

    def __exit__(self, *exc) -> None:
        try:
            while self.pending and not exc[0]:
                self._finish()
        finally:
            self.pending.clear()
            _ONE_AT_A_TIME.release()
        if self.done:
            log.info("analysed the terms of %d papers", self.done)


def _stale(rows: Sequence[tuple], analyser: str) -> list[tuple[int, str, str, str]]:
    """(id, title, abstract, text hash) of the rows whose record is missing or stale."""
    out = []
    for i, title, abstract, stored_analyser, stored_hash in rows:
        abstract = abstract or ""
        current = text_hash(title, abstract)
        if stored_analyser != analyser or stored_hash != current:
            out.append((i, title, abstract, current))
    return out


def _write(db: Database, analyser: str, rows: Sequence[tuple[int, str, bytes]]) -> None:
    try:
        with db.session() as s:
            s.execute(delete(PaperTerms).where(among(PaperTerms.paper_id, [i for i, _, _ in rows])))
            if s.get_bind().dialect.name == "sqlite":  # sqlite3's executemany: no bind processing per row
                s.connection().exec_driver_sql(f"INSERT INTO {PaperTerms.__tablename__} (paper_id, analyser, "
                                               "text_hash, terms) VALUES (?, ?, ?, ?)",
                                               [(i, analyser, h, b) for i, h, b in rows])
            else:
                s.execute(insert(PaperTerms.__table__), [{"paper_id": i, "analyser": analyser, "text_hash": h,
                                                          "terms": b} for i, h, b in rows])
    except IntegrityError:  # another process stored some of these first: theirs are as good
        log.info("terms: another process stored these papers first")


def stream(db: Database, analyser: str, ids: Sequence[int]) -> Iterator[bytes | tuple[str, str]]:
    """The current record of each paper id, in order, or its (title, abstract) where it has none or a
    stale one (to be analysed by the caller); a chunk at a time, the texts read beside the records."""
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        with db.session() as s:
            found = _current(s, analyser, part)
        for i in part:
            yield found[i]


def _current(s: Session, analyser: str, ids: Sequence[int]) -> dict[int, bytes | tuple[str, str]]:
    t, k = PaperRow.__table__, PaperTerms.__table__
    rows = s.execute(select(t.c.id, t.c.title, t.c.abstract, k.c.text_hash, k.c.terms)
                     .outerjoin(k, (k.c.paper_id == t.c.id) & (k.c.analyser == analyser))
                     .where(among(t.c.id, sorted(set(ids)))))
    out: dict[int, bytes | tuple[str, str]] = {}
    for i, title, abstract, h, b in rows:
        abstract = abstract or ""
        out[i] = b if h is not None and h == text_hash(title, abstract) else (title, abstract)
    return out
