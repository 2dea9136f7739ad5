"""The schema revisions this version knows, read from the migration files' names: what a command checks
a database against without importing Alembic or SQLAlchemy (digest.store.db, digest.store.quick_read)."""

from __future__ import annotations

import re
from importlib import resources

MIGRATIONS = resources.files("digest.store") / "migrations"
_REVISION_FILE = re.compile(r"(\d{4})_\w+\.py")  # versions/NNNN_what.py holds revision NNNN


def known_revisions() -> tuple[str, ...]:
    """The schema revisions this version knows, oldest first; the last is the head. Speed work (issue 25):
    read from the migration files' names, so a command finds a current database without importing
    Alembic (a tenth of a second of its start). Contract: each `versions/NNNN_what.py` is revision NNNN
    and revises the one before it (tests/test_migrations.py checks this against Alembic's own reading)."""
    found = (_REVISION_FILE.fullmatch(f.name) for f in (MIGRATIONS / "versions").iterdir())
    return tuple(sorted(m.group(1) for m in found if m))
