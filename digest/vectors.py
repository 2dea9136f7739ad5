"""Stored paper embeddings for the hybrid ranker: each paper is embedded once (at ingest, or when
first ranked) and kept in `paper_vectors`; a paper whose text changed, or a new model, is re-embedded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.db import Database
from digest.models import Paper as PaperRow
from digest.models import PaperVector
from digest.ranking import semantic
from digest.types import Paper

log = logging.getLogger(__name__)
BATCH = 256  # papers embedded and committed together


def text_hash(title: str, abstract: str) -> str:
    return hashlib.sha1(f"{semantic.MODEL}\n{title}\n{abstract}".encode()).hexdigest()


def for_papers(session: Session, papers: Sequence[Paper]) -> semantic.PaperVectors:
    """The papers' vectors, in order: stored ones read back, missing or stale ones computed and added
    to the session (the caller's commit stores them)."""
    blocks: dict[int, np.ndarray] = {}
    ids = [p.id for p in papers]
    for start in range(0, len(ids), 5000):
        for row in session.scalars(select(PaperVector).where(PaperVector.paper_id.in_(ids[start : start + 5000]))):
            blocks[row.paper_id] = row  # type: ignore[assignment]
    todo: list[Paper] = []
    for p in papers:
        row = blocks.get(p.id)
        if isinstance(row, PaperVector) and row.model == semantic.MODEL and row.text_hash == text_hash(p.title, p.abstract):
            blocks[p.id] = semantic.unpack(row.vectors)
        else:
            todo.append(p)
    for start in range(0, len(todo), BATCH):
        part = todo[start : start + BATCH]
        computed = semantic.PaperVectors.of([(p.title, p.abstract) for p in part])
        for i, p in enumerate(part):
            block = computed.row(i)
            blocks[p.id] = block
            session.merge(PaperVector(paper_id=p.id, model=semantic.MODEL, text_hash=text_hash(p.title, p.abstract),
                                      vectors=semantic.pack(block)))
    if todo:
        log.info("embedded %d papers (%d read back)", len(todo), len(papers) - len(todo))
    return semantic.PaperVectors.from_rows([blocks[p.id] for p in papers])


def embed_missing(db: Database, limit: int | None = None) -> int:
    """Embed the stored papers that have no current vectors, BATCH per transaction. Returns how many."""
    done = 0
    while limit is None or done < limit:
        try:
            with db.session() as s:
                q = (
                    select(PaperRow.id, PaperRow.title, PaperRow.abstract)
                    .outerjoin(PaperVector, PaperVector.paper_id == PaperRow.id)
                    .where(PaperRow.withdrawn_at.is_(None), PaperVector.paper_id.is_(None))
                    .order_by(PaperRow.id.desc())
                    .limit(BATCH if limit is None else min(BATCH, limit - done))
                )
                papers = [Paper(id=i, title=t, abstract=a or "") for i, t, a in s.execute(q)]
                if papers:
                    for_papers(s, papers)
        except IntegrityError:  # another process stored some of the same papers meanwhile: leave it to them
            log.info("embedding: another process got there first")
            break
        if not papers:
            break
        done += len(papers)
    return done
