"""Stored paper embeddings for the hybrid ranker (`paper_vectors`): one packed block per paper and
model, kept while the paper's text stays the same. `model` is the embedding model's key
(semantic.Encoder.key): another model finds no vectors and embeds again, paper by paper, only what
it lacks; the vectors of the model used before stay, for a change back.

This module only stores and reads bytes; what a block holds, and how it is computed, is the
ranking's business (`digest.ranking.semantic`), handed in as `embed`. Embedding takes seconds of CPU,
so it never happens inside a transaction: `ensure` reads what is missing in one short transaction,
computes with none open, and writes each batch in another short one (a long-open transaction would
hold SQLite's write lock or go stale under WAL).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.records import Paper
from digest.store.db import Database
from digest.store.models import Paper as PaperRow
from digest.store.models import PaperVector

log = logging.getLogger(__name__)
BATCH = 256  # papers embedded and written together
_ONE_AT_A_TIME = threading.Lock()  # the scheduler's ingest and tick threads would embed the same papers

Embed = Callable[[Sequence[tuple[str, str]]], list[bytes]]  # (title, abstract) pairs -> packed blocks


def text_hash(model: str, title: str, abstract: str) -> str:
    return hashlib.sha1(f"{model}\n{title}\n{abstract}".encode()).hexdigest()


def ensure(db: Database, model: str, embed: Embed, since: datetime | None = None,
           progress: Callable[[int], None] | None = None) -> int:
    """Embed and store every listed paper updated since `since` (all without it) whose vectors are
    missing or stale. Returns how many were embedded."""
    with _ONE_AT_A_TIME:
        with db.session() as s:
            q = (
                select(PaperRow.id, PaperRow.title, PaperRow.abstract, PaperVector.text_hash)
                .outerjoin(PaperVector, (PaperVector.paper_id == PaperRow.id) & (PaperVector.model == model))
                .where(PaperRow.withdrawn_at.is_(None))
                .order_by(PaperRow.id.desc())
            )
            if since is not None:
                q = q.where(PaperRow.updated_at >= since)
            todo = [Paper(id=i, title=t, abstract=a or "") for i, t, a, h in s.execute(q)
                    if h != text_hash(model, t, a or "")]
        for start in range(0, len(todo), BATCH):
            part = todo[start : start + BATCH]
            _write(db, model, part, embed([(p.title, p.abstract) for p in part]))
            if progress:
                progress(len(part))
    if todo:
        log.info("embedded %d papers", len(todo))
    return len(todo)


def _write(db: Database, model: str, papers: Sequence[Paper], blocks: Sequence[bytes]) -> None:
    try:
        with db.session() as s:
            stored = {r.paper_id: r for r in s.scalars(select(PaperVector).where(
                PaperVector.paper_id.in_([p.id for p in papers]), PaperVector.model == model))}
            for p, block in zip(papers, blocks, strict=True):
                row = stored.get(p.id) or PaperVector(paper_id=p.id, model=model)
                row.text_hash, row.vectors = text_hash(model, p.title, p.abstract), block
                s.add(row)
    except IntegrityError:  # another process stored some of these first: theirs are as good
        log.info("embedding: another process stored these papers first")


def stored(session: Session, model: str, papers: Sequence[Paper]) -> dict[int, bytes]:
    """The packed blocks of those `papers` whose stored vectors are current (same model and text)."""
    ids = [p.id for p in papers]
    rows: dict[int, PaperVector] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows.update((r.paper_id, r) for r in session.scalars(
            select(PaperVector).where(PaperVector.paper_id.in_(chunk), PaperVector.model == model)))
    return {p.id: rows[p.id].vectors for p in papers
            if p.id in rows and rows[p.id].text_hash == text_hash(model, p.title, p.abstract)}
