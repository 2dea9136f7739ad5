"""The hybrid ranker's paper vectors: embedded at ingest and before planning, read back when ranking."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from digest.config import Settings
from digest.ranking import semantic
from digest.records import Paper
from digest.store import vectors
from digest.store.db import Database

log = logging.getLogger("digest.pipeline")


def encoder(settings: Settings) -> semantic.Encoder:
    """The embedding model of `[ranking]` (model, device)."""
    return semantic.Encoder(settings.ranking.model, settings.ranking.device)


def embed_papers(db: Database, since: datetime | None = None,
                 encoder: semantic.Encoder = semantic.DEFAULT, progress: Callable[[int], None] | None = None,
                 ) -> int:
    """Embed and store, with `encoder`'s model, the vectors of papers updated since `since` that lack
    current ones under that model (after a model change: every paper, as the runs reach it)."""
    return vectors.ensure(db, encoder.key, lambda docs: semantic.pack_papers(docs, encoder), since=since,
                          progress=progress)


def paper_vectors(db: Database, papers: Sequence[Paper],
                  encoder: semantic.Encoder = semantic.DEFAULT) -> semantic.PaperVectors:
    """The papers' vectors under `encoder`'s model, in order: stored ones read back; a paper not
    embedded yet (or whose text changed since) is embedded in memory and not stored, so planning
    writes nothing here."""
    with db.session() as s:
        packed = vectors.stored(s, encoder.key, papers)
    todo = [p for p in papers if p.id not in packed]
    blocks = {pid: semantic.unpack(b, encoder.dim) for pid, b in packed.items()}
    if todo:
        computed = semantic.PaperVectors.of([(p.title, p.abstract) for p in todo], encoder)
        blocks.update((p.id, computed.row(i)) for i, p in enumerate(todo))
        log.info("embedded %d papers in memory (%d read back)", len(todo), len(packed))
    return semantic.PaperVectors.from_rows([blocks[p.id] for p in papers], encoder)
