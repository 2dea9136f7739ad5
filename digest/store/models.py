"""ORM tables. Changing one means adding an Alembic migration in digest/migrations/versions/."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy import true as sa_true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from digest.records import utcnow


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Paper(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(primary_key=True)
    arxiv_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    title_key: Mapped[str] = mapped_column(String(300), index=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    code_url: Mapped[str | None] = mapped_column(Text)
    project_url: Mapped[str | None] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(Text)
    upvotes: Mapped[int] = mapped_column(Integer, default=0)
    num_comments: Mapped[int] = mapped_column(Integer, default=0)
    github_stars: Mapped[int | None] = mapped_column(Integer)
    ai_summary: Mapped[str | None] = mapped_column(Text)
    categories: Mapped[list] = mapped_column(JSON, default=list)
    doi: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    sources: Mapped[list] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # False for a paper only a subscriber's seed brought in (their own older work, from arXiv ids or a
    # BibTeX/Zotero file): it steers their ranking as a liked paper, and is never a candidate until a
    # source lists it (digest.store.papers)
    listed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())


class PaperVector(Base):
    """A paper's embeddings under one model (whole text, then each abstract sentence), float16, for
    the hybrid ranker: one row per (paper, model), so changing `[ranking] model` embeds again and
    changing it back finds the old vectors; recomputed when the paper's text changes
    (digest.store.vectors)."""

    __tablename__ = "paper_vectors"
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(40))
    vectors: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaperTerms(Base):
    """A paper's analysed index terms (digest.ranking.stored_terms), stored at ingest so a planning run
    assembles its index without analysing every paper again; `analyser` names the analysis and
    `text_hash` the text it was made from: another of either makes the row stale (digest.store.terms)."""

    __tablename__ = "paper_terms"
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    analyser: Mapped[str] = mapped_column(String(64))
    text_hash: Mapped[str] = mapped_column(String(40))
    terms: Mapped[bytes] = mapped_column(LargeBinary)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # pending (awaiting confirmation), active, paused, unsubscribed
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    frequency: Mapped[str] = mapped_column(String(20), default="daily")  # daily | weekdays | weekly
    weekday: Mapped[int] = mapped_column(Integer, default=0)  # 0 = Monday, for weekly
    hour: Mapped[int] = mapped_column(Integer, default=8)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    max_items: Mapped[int | None] = mapped_column(Integer)
    # cadence: skip an edition with fewer than min_papers picks (its papers roll over); weekly best of the
    # week
    min_papers: Mapped[int | None] = mapped_column(Integer)
    best_of_week: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # email, or a chat webhook (slack | discord | generic): then `email` is the identity "KIND:HASH",
    # `webhook_url` the URL sealed with the signing secret, `webhook_hint` its redacted form
    channel: Mapped[str] = mapped_column(String(10), default="email", server_default="email")
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_hint: Mapped[str | None] = mapped_column(String(200))

    topics: Mapped[list[Topic]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="Topic.id"
    )


class Topic(Base):
    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("subscriber_id", "kind", "phrase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    phrase: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10), default="include")  # include | exclude | author (followed)
    weight: Mapped[float] = mapped_column(Float, default=1.0)

    subscriber: Mapped[Subscriber] = relationship(back_populates="topics")


class Delivery(Base):
    """The ledger: one row per subscriber and edition period, whatever happens to it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "period"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # no index of its own: the unique (subscriber_id, period) index leads with it (migration 0013)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(40))  # "2026-11-22" (daily/weekdays) or "2026-W47"
    # planned -> sending -> sent | retry | failed | suppressed; or skipped (a quiet day: nothing to send)
    status: Mapped[str] = mapped_column(String(20), default="planned")
    note: Mapped[str | None] = mapped_column(Text)  # why a skipped edition was skipped
    email: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(Text)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[DeliveryItem]] = relationship(
        back_populates="delivery", cascade="all, delete-orphan", order_by="DeliveryItem.rank"
    )


class DeliveryItem(Base):
    """A paper in a delivery, with its rank and explanation (also: 'never sent twice')."""

    __tablename__ = "delivery_items"
    __table_args__ = (
        UniqueConstraint("delivery_id", "paper_id"),
        # "has this subscriber had this paper": a subscriber's recent items, without reading their history
        Index("ix_delivery_items_subscriber_paper", "subscriber_id", "paper_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(10), default="pick")  # pick | trending
    topic: Mapped[str | None] = mapped_column(String(200))
    why: Mapped[str] = mapped_column(Text, default="")

    delivery: Mapped[Delivery] = relationship(back_populates="items")


class SourceState(Base):
    __tablename__ = "source_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    watermark: Mapped[str | None] = mapped_column(String(100))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    total_fetched: Mapped[int] = mapped_column(Integer, default=0)
    total_new: Mapped[int] = mapped_column(Integer, default=0)
    total_updated: Mapped[int] = mapped_column(Integer, default=0)
    total_skipped: Mapped[int] = mapped_column(Integer, default=0)
    http_cache: Mapped[dict] = mapped_column(JSON, default=dict)  # url -> {etag, last_modified}


class Suppression(Base):
    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    # unsubscribed | hard_bounce | soft_bounce | complaint | manual
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    signal: Mapped[int] = mapped_column(Integer)  # +1 more like this, -1 less like this
    origin: Mapped[str] = mapped_column(String(10), default="click", server_default="click")  # click | seed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobState(Base):
    """One row per job: its next run and the outcome of its last run (`digest status`)."""

    __tablename__ = "scheduler_jobs"

    job_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_summary: Mapped[str | None] = mapped_column(Text)
    instance: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class JobRun(Base):
    """The job-run log, one row per run, pruned by housekeeping after `scheduler.keep_runs_days`."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(100), index=True)
    instance: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)


class Bounce(Base):
    """One bounce or complaint for an address. """

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # hard | soft | complaint
    source: Mapped[str] = mapped_column(String(10))  # smtp (reply while sending) | dsn | arf
    status: Mapped[str | None] = mapped_column(String(20))  # "5.1.1", or the SMTP reply code
    detail: Mapped[str | None] = mapped_column(Text)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    event_key: Mapped[str] = mapped_column(String(64), unique=True)  # the same report read twice counts once
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningSecret(Base):
    """The signing secret this database's links and sealed webhook URLs are made with, when the admin
    sets none (`$DIGEST_SECRET`, `web.secret_file`): one for the database, whichever directory or process
    signs. The earliest row signs; every row verifies (a secret adopted from an earlier version's
    per-directory `.digest-secret` file keeps the links made with it working)."""

    __tablename__ = "signing_secrets"
    __table_args__ = (UniqueConstraint("origin", name="uq_signing_secrets_origin"),)

    secret: Mapped[str] = mapped_column(String(200), primary_key=True)
    # "generated" (unique: two processes starting at once keep one), or the file it was adopted from
    origin: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
