"""TODO(merge): a shim, only until the branches that rewrite tests/test_hybrid.py,
tests/test_feedback_model.py and tests/test_embedding_model.py are merged; they still import from
here. Everything else calls the use cases (digest.usecases); delete this module then.
"""

from __future__ import annotations

from digest.usecases.embedding import embed_papers, encoder, paper_vectors
from digest.usecases.ingesting import ingest
from digest.usecases.planning import plan
from digest.usecases.setup import load_settings

__all__ = ["embed_papers", "encoder", "ingest", "load_settings", "paper_vectors", "plan"]
