"""What `digest status` and `digest due` read, as one small interface (`Reads`), so their rules stay in
their use cases (digest.usecases.status, digest.usecases.planning.due_at) whichever reader answers:
`StoreReads`, through the ORM store and the ledger (any database), or digest.store.quick_read, the
plain DB-API reader these two commands start with when it can (issue 25). Both return the same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from digest.delivery import ledger
from digest.records import LastEdition, SourceStateView, Subscriber
from digest.sources import ingest as ingest_stage
from digest.store import jobs
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database


class Reads(Protocol):
    where: str  # the database's URL, without its password

    def paper_count(self) -> int: ...
    def subscriber_counts(self) -> dict[str, int]: ...
    def source_states(self) -> dict[str, SourceStateView]: ...
    def ledger_summary(self, failures: int = 5) -> dict: ...
    def lease_holders(self) -> list[dict]: ...
    def suppressed_count(self) -> int: ...
    def job_states(self) -> dict[str, dict]: ...
    def mailable_batch(self, now: datetime, after_id: int, limit: int,
                       email: str | None = None) -> list[Subscriber]: ...
    def suppressed(self, emails: Iterable[str]) -> dict[str, str]: ...
    def last_editions(self, subscriber_ids: Sequence[int]) -> dict[int, LastEdition | None]: ...


class StoreReads:
    """`Reads` through the ORM store and the ledger: each method is the store function it names."""

    def __init__(self, db: Database):
        self.db = db
        self.where = db.engine.url.render_as_string(hide_password=True)

    def paper_count(self) -> int:
        with self.db.session() as s:
            return paper_store.count(s)

    def subscriber_counts(self) -> dict[str, int]:
        with self.db.session() as s:
            return subscriber_store.count_by_status(s)

    def source_states(self) -> dict[str, SourceStateView]:
        return ingest_stage.source_states(self.db)

    def ledger_summary(self, failures: int = 5) -> dict:
        return ledger.summary(self.db, failures)

    def lease_holders(self) -> list[dict]:
        return ledger.holders(self.db)

    def suppressed_count(self) -> int:
        with self.db.session() as s:
            return subscriber_store.count_suppressed(s)

    def job_states(self) -> dict[str, dict]:
        return jobs.states(self.db)

    def mailable_batch(self, now: datetime, after_id: int, limit: int,
                       email: str | None = None) -> list[Subscriber]:
        with self.db.session() as s:
            return subscriber_store.mailable_batch(s, now, after_id=after_id, limit=limit, email=email)

    def suppressed(self, emails: Iterable[str]) -> dict[str, str]:
        with self.db.session() as s:
            return subscriber_store.suppressed(s, emails)

    def last_editions(self, subscriber_ids: Sequence[int]) -> dict[int, LastEdition | None]:
        return {sid: h.last for sid, h in ledger.history(self.db, subscriber_ids).items()}
