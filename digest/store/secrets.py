"""The signing secret kept in the database (`signing_secrets`): one database, one signing secret,
whichever directory or process (send, serve, the scheduler, a worker) signs with it."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from digest.config import earlier_secret
from digest.records import utcnow
from digest.store.db import Database
from digest.store.models import SigningSecret


def stored(db: Database) -> list[str]:
    """The secrets this database keeps, the signing one (the earliest) first."""
    with db.Session() as s:
        return list(s.scalars(select(SigningSecret.secret)
                              .order_by(SigningSecret.created_at, SigningSecret.secret)))


def _add(db: Database, secret: str, origin: str) -> None:
    """Keep `secret` (a second process adding the same one at the same time is no error)."""
    try:
        with db.Session.begin() as s:
            s.add(SigningSecret(secret=secret, origin=origin[:200], created_at=utcnow()))
    except IntegrityError:
        pass


def database_secrets(db: Database, earlier_file: Path | None, generate: bool) -> list[str]:
    """The database's secrets, signing one first. An earlier version's `.digest-secret` file
    (`earlier_file`) is adopted the first time it is seen: the links made with it keep working, and when
    the database had none it becomes the one that signs. With none kept and `generate`, a random one is
    made and kept."""
    kept = stored(db)
    value = earlier_secret(earlier_file)
    if value and value not in kept:
        _add(db, value, str(earlier_file))
        kept = stored(db)
    if not kept and generate:
        _add(db, secrets.token_urlsafe(32), "generated")
        kept = stored(db)
    return kept
