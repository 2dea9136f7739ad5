"""Stored paper embeddings for the hybrid ranker: each paper is embedded once (after ingest stores
it, or before planning at the latest) and kept in `paper_vectors`; a paper whose title or abstract
changed, or a new model, is embedded again.

Embedding takes seconds of CPU, so it never happens inside another transaction: `ensure` reads
what is missing in one short transaction, computes with none open, and writes each batch in another
short one (a long-open transaction would hold SQLite's write lock or go stale under WAL). The
planner only reads (`for_papers`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.ranking import semantic
from digest.records import Paper
from digest.store.db import Database
from digest.store.models import Paper as PaperRow
from digest.store.models import PaperVector

log = logging.getLogger(__name__)
BATCH = 256  # papers embedded and written together
_ONE_AT_A_TIME = threading.Lock()  # the scheduler's ingest and tick threads would embed the same papers


def text_hash(title: str, abstract: str) -> str:
    return hashlib.sha1(f"{semantic.MODEL}\n{title}\n{abstract}".encode()).hexdigest()


def ensure(db: Database, since: datetime | None = None) -> int:
    """Embed and store every paper updated since `since` (all papers without it) whose vectors are
    missing or stale. Returns how many were embedded."""
    with _ONE_AT_A_TIME:
        with db.session() as s:
            q = (
                select(PaperRow.id, PaperRow.title, PaperRow.abstract, PaperVector.text_hash)
                .outerjoin(PaperVector, PaperVector.paper_id == PaperRow.id)
                .where(PaperRow.withdrawn_at.is_(None))
                .order_by(PaperRow.id.desc())
            )
            if since is not None:
                q = q.where(PaperRow.updated_at >= since)
            todo = [Paper(id=i, title=t, abstract=a or "") for i, t, a, h in s.execute(q) if h != text_hash(t, a or "")]
        for start in range(0, len(todo), BATCH):
            part = todo[start : start + BATCH]
            computed = semantic.PaperVectors.of([(p.title, p.abstract) for p in part])
            try:
                with db.session() as s:
                    stored = {r.paper_id: r for r in s.scalars(
                        select(PaperVector).where(PaperVector.paper_id.in_([p.id for p in part])))}
                    for i, p in enumerate(part):
                        row = stored.get(p.id) or PaperVector(paper_id=p.id)
                        row.model, row.text_hash = semantic.MODEL, text_hash(p.title, p.abstract)
                        row.vectors = semantic.pack(computed.row(i))
                        s.add(row)
            except IntegrityError:  # another process stored some of these first: theirs are as good
                log.info("embedding: another process stored these papers first")
    if todo:
        log.info("embedded %d papers", len(todo))
    return len(todo)


def for_papers(session: Session, papers: Sequence[Paper]) -> semantic.PaperVectors:
    """The papers' vectors, in order. Stored ones are read back; a paper `ensure` has not reached
    yet (or whose text changed since) is embedded in memory and not stored, so this writes nothing."""
    ids = [p.id for p in papers]
    stored: dict[int, PaperVector] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        stored.update((r.paper_id, r) for r in session.scalars(select(PaperVector).where(PaperVector.paper_id.in_(chunk))))
    blocks: dict[int, np.ndarray] = {}
    todo: list[Paper] = []
    for p in papers:
        row = stored.get(p.id)
        if row is not None and row.text_hash == text_hash(p.title, p.abstract):
            blocks[p.id] = semantic.unpack(row.vectors)
        else:
            todo.append(p)
    if todo:
        computed = semantic.PaperVectors.of([(p.title, p.abstract) for p in todo])
        blocks.update((p.id, computed.row(i)) for i, p in enumerate(todo))
        log.info("embedded %d papers in memory (%d read back)", len(todo), len(papers) - len(todo))
    return semantic.PaperVectors.from_rows([blocks[p.id] for p in papers])
