"""Plain data handed between pipeline stages: no ORM row and no open session crosses a stage line.

Also the few facts every stage shares: the one clock (`utcnow`, `as_utc`, `iso`), the delivery and
subscriber statuses, and the frequency and weekday names.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources

# ------------------------------------------------------------------------------------------- clock


def utcnow() -> datetime:
    """The one clock: an aware UTC instant."""
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """An aware UTC instant; a naive datetime (SQLite forgets zones) is taken as UTC already."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return as_utc(dt).isoformat() if dt else None


# --------------------------------------------------------------------------------------- schedules

FREQUENCIES = ("daily", "weekdays", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = tuple(d.capitalize() for d in WEEKDAYS)
# The IANA zone names, from the tzdata package (a dependency): the same list on every machine. Not
# `zoneinfo.available_timezones()` alone, which also lists the files it finds under /usr/share/zoneinfo
# (Debian's `localtime` follows the server's own zone); `Factory` is a placeholder, not a place.
_ZONES = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
TIME_ZONES = frozenset(_ZONES.split()) - {"Factory"}


def quoted(value: object, limit: int = 40) -> str:
    """A value a user gave, for an error message: repr (so control characters show escaped), cut if long."""
    text = str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, C1 and the Unicode line separators
# names email-validator refuses as special-use, which a test or an intranet relay sends from all the same
_LOCAL_DOMAINS = ("localhost", "localdomain", "local", "internal", "lan", "test")


def check_address(value: str, named: bool) -> str:
    """A configured sender-side address, as the mail it goes into needs it: `Name <addr>` or a bare
    address when `named`, else a bare address only (it goes into a `mailto:` URL). The address is checked
    as subscribers' are (email-validator), its local part ASCII (no SMTPUTF8); a local domain
    (`localhost`) is allowed for tests and intranets."""
    text = value.strip()
    if CONTROL.search(text):
        raise ValueError("holds a line break or a control character")
    from email.utils import parseaddr  # imported here, as email_validator below (issue 25)

    name, addr = parseaddr(text)
    if "@" not in addr:
        raise ValueError("not an email address (name@example.org" + (", or Name <name@example.org>)"
                                                                      if named else ")"))
    if not named and (name or addr != text):
        raise ValueError(f"must be a bare address ({addr}), not a display name and <address>: it goes "
                         "into a mailto: link")
    local, _, domain = addr.rpartition("@")
    if not local.isascii():
        raise ValueError(f"{addr}: a non-ASCII local part needs SMTPUTF8, which is not supported")
    checked = f"{local}@example.org" if domain.lower().rsplit(".", 1)[-1] in _LOCAL_DOMAINS else addr
    # imported here: compiling its patterns costs every command's start a few hundredths of a second,
    # and only a configured address needs it (issue 25)
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(checked, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"{addr} is not a valid email address: {err}") from None
    return text


def check_zone(name: object) -> str:
    """`name` if it is an IANA time zone name; else ValueError naming it (the one zone rule: forms, the
    CLI, CSV import and the config all use it)."""
    if isinstance(name, str) and name in TIME_ZONES:
        return name
    raise ValueError(f"unknown time zone {quoted(name)} (use an IANA name like Europe/Paris)")


@dataclass(frozen=True)
class Schedule:
    frequency: str  # daily | weekdays | weekly
    hour: int  # local delivery hour, 0..23
    timezone: str  # IANA name
    weekday: int = 0  # for weekly: 0 = Monday



# ----------------------------------------------------------------------------------------- cadence


def cadence_problem(frequency: str, min_papers: int | None, best_of_week: bool,
                    max_items: int | None) -> str | None:
    """The cadence rule, one behaviour everywhere (add, update, the forms, the import): why these
    settings cannot go together, or None. A minimum of papers above the subscriber's own papers per
    digest could never be met; best of the week is a kind of weekly digest."""
    if max_items and min_papers and min_papers > max_items:
        return (f"min papers ({min_papers}) cannot be more than the papers per digest ({max_items}): "
                "no edition could ever be sent")
    if best_of_week and frequency != "weekly":
        return f"best of the week is a weekly digest: set the frequency to weekly, not {quoted(frequency)}"
    return None


def least_papers(min_papers: int | None, max_items: int | None, default_max: int) -> int | None:
    """The fewest papers an edition may hold under a subscriber's minimum (None: no minimum), never
    more than the papers an edition may hold (the configured default when they set none)."""
    return min(min_papers, max_items or default_max) if min_papers else None


# ---------------------------------------------------------------------------------------- statuses


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # awaiting confirmation
    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"


class DeliveryStatus(StrEnum):
    """A ledger row: planned -> sending -> sent | retry | failed | suppressed; or a quiet day (stored as
    "skipped"), never sent."""

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    QUIET = "skipped"  # a quiet day under the subscriber's cadence: nothing sent, its papers roll over


# ---------------------------------------------------------------------------------------- listings

MAX_TITLE_KEY = 300
MAX_URL = 2_000


def web_url(value: object) -> str | None:
    """An http(s) URL with a host and without whitespace, quotes or control characters, else None (no
    javascript: links, no empty links): the one URL rule for what ingest stores and what a digest links."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_URL or not value.lower().startswith(("https://", "http://")):
        return None
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "<>\"'`\\" for ch in value):
        return None
    host = value.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return value if host.strip(".:@") else None


def title_key(title: str) -> str:
    """Normalised title for dedupe: casefolded letters and digits, single spaces, no accents."""
    text = unicodedata.normalize("NFKD", title)
    if not text.isascii():  # ASCII has no combining marks
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold()
    text = re.sub(r"[\W_]+", " ", text).strip()
    return text[:MAX_TITLE_KEY]




@dataclass
class Listing:
    """One paper as a source saw it. Only `title` is required; everything else is optional."""

    title: str
    abstract: str = ""
    source: str = ""
    arxiv_id: str | None = None  # canonical, without version ("2410.17243", "astro-ph/0601001")
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    thumbnail_url: str | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    github_stars: int | None = None
    ai_summary: str | None = None
    categories: list[str] = field(default_factory=list)
    doi: str | None = None
    comment: str | None = None
    version: int | None = None
    withdrawn: bool = False
    entry_id: str | None = None  # the entry's own id in its file, as given ("paper_id", "id"); not stored


@dataclass
class Cleaned(Listing):
    """A listing as `sources.clean.clean_listing` made it (nothing else makes these), with its title's
    `title_key`: ingest stores it as it is, where it cleans any other listing (one cleaning each)."""

    key: str = ""


def key_of(listing: Listing) -> str:
    """The listing's `title_key` (kept on a cleaned one, made once)."""
    return listing.key if isinstance(listing, Cleaned) else title_key(listing.title)


@dataclass(slots=True)  # no dict per record: a run's window holds 200,000 of them
class Paper:
    """A stored paper, as the ranker and renderer see it."""

    id: int
    title: str
    abstract: str
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    thumbnail_url: str | None = None
    upvotes: int = 0
    num_comments: int = 0
    github_stars: int | None = None
    ai_summary: str | None = None
    categories: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    first_seen_at: datetime | None = None
    comment: str | None = None  # the arXiv comment ("Accepted at NeurIPS 2024; 12 pages"), as listed


@dataclass
class Profile:
    """What the ranker needs to know about one subscriber."""

    subscriber_id: int
    topics: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    max_items: int = 10
    weights: list[float] = field(default_factory=list)  # each topic's weight, in order (empty: all 1)
    liked: list[int] = field(default_factory=list)  # paper ids marked "more like this"
    disliked: list[int] = field(default_factory=list)  # paper ids marked "less like this"
    authors: list[str] = field(default_factory=list)  # followed authors, as the subscriber wrote them
    whole_window: bool = False  # best of the week: trending counts upvotes without favouring the newest


@dataclass(frozen=True)
class Reason:
    """Why a paper was picked, as data (digest.wording says it in a sentence)."""

    kind: str  # "topic" (matched words), "meaning" (hybrid: close in meaning), "liked", "trending"
    topic: str | None = None  # the subscriber's topic it matched best, as they wrote it
    terms: tuple[str, ...] = ()  # "topic": the matched terms or phrases
    quote: str | None = None  # "meaning": the abstract's sentence closest in meaning to the topic
    also: tuple[str, ...] = ()  # the subscriber's other topics it matches
    liked_title: str | None = None  # "liked": the liked paper it is closest to
    upvotes: int = 0  # "trending"
    author: str | None = None  # by an author they follow: the name as the paper spells it
    weight: float | None = None  # the topic's weight, when weighing the topics gave this pick its place


@dataclass
class Pick:
    """One ranked paper for one subscriber, with the reason it was picked."""

    paper_id: int
    score: float
    topic: str | None = None  # the topic it matched best; None for a trending pick
    terms: list[str] = field(default_factory=list)  # matched terms or phrases
    why: str = ""  # the reason in one sentence (digest.wording.why), as the ledger keeps it
    reason: Reason | None = None  # the reason as the ranker gave it (not kept by the ledger)


# ------------------------------------------------------------------------------------- subscribers


def written_topic(phrase: str, weight: float) -> str:
    """A topic as a user writes it: "diffusion models=2", the weight left out when it is 1."""
    return phrase if weight == 1 else f"{phrase}={weight:g}"


@dataclass(frozen=True)
class Subscriber:
    """A subscriber as planning, rendering and the pages see them."""

    id: int
    email: str
    name: str | None = None
    status: str = SubscriberStatus.ACTIVE
    frequency: str = "daily"
    weekday: int = 0
    hour: int = 8
    timezone: str = "UTC"
    max_items: int | None = None
    min_papers: int | None = None  # skip an edition with fewer picks than this (they roll over)
    best_of_week: bool = False  # weekly: the best of the whole week's papers, not the newest
    topics: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    liked: tuple[int, ...] = ()  # paper ids marked "more like this"
    disliked: tuple[int, ...] = ()  # paper ids marked "less like this"
    authors: tuple[str, ...] = ()  # followed authors, as written ("Yann LeCun", "Y. Bengio")
    # each topic's weight, in the order of `topics`: its share of the digest's slots (empty: all 1)
    topic_weights: tuple[float, ...] = ()
    created_at: datetime | None = None
    paused_until: datetime | None = None
    unsubscribed_at: datetime | None = None
    channel: str = "email"  # or a chat webhook: slack | discord | generic (then `email` is its identity)
    webhook: str | None = None  # a webhook's URL, redacted (the URL itself never leaves the store unsealed)

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.frequency, self.hour, self.timezone, self.weekday)

    def mailable(self, now: datetime) -> bool:
        """May get a digest now: active, or a pause that has ended (store.subscribers.mailable in SQL)."""
        return self.status == SubscriberStatus.ACTIVE or (
            self.status == SubscriberStatus.PAUSED and self.paused_until is not None and self.paused_until
            <= now)

    def paused(self, now: datetime) -> bool:
        return self.status == SubscriberStatus.PAUSED and not self.mailable(now)

    def profile(self, default_max_items: int) -> Profile:
        return Profile(subscriber_id=self.id, topics=list(self.topics), excludes=list(self.excludes),
                       max_items=self.max_items or default_max_items, weights=list(self.topic_weights),
                       liked=list(self.liked),
                       disliked=list(self.disliked), authors=list(self.authors),
                       whole_window=self.best_of_week)

    @property
    def written_topics(self) -> list[str]:
        """The topics as a user writes them (a form, a file, a listing): "diffusion models=2", the weight
        left out when it is 1 (read back by digest.subscriptions.rules.clean_weighted_topics)."""
        weights = self.topic_weights or (1.0,) * len(self.topics)
        return [written_topic(t, w) for t, w in zip(self.topics, weights, strict=True)]

    def as_dict(self) -> dict:
        """The profile as `subscribers list/show --json` print it."""
        d = asdict(self)
        for k in ("liked", "disliked", "unsubscribed_at"):
            del d[k]
        d["status"] = str(self.status)
        d["topics"], d["excludes"], d["authors"] = list(self.topics), list(self.excludes), list(self.authors)
        d["topic_weights"] = list(self.topic_weights) or [1.0] * len(self.topics)
        for k in ("created_at", "paused_until"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


# ------------------------------------------------------------------------------ planning's states


@dataclass(frozen=True)
class DueState:
    """Whether an edition is due at an instant, and why, as data (digest.wording.due_reason says it).

    `kind`: "no_day" (the period has no delivery day: `weekday`), "quiet" (its edition was a quiet
    one: `note`), "planned" (its edition is planned: at `at`), "not_yet" (its slot `at` has not
    come), "planned_after" (an edition `period` was planned at `at`, after this slot), "first",
    "catch_up" (the last edition was `period`, quiet when `note`), "due"; `at` the slot otherwise."""

    kind: str
    schedule: Schedule
    period: str = ""
    at: datetime | None = None
    weekday: int = 0
    note: str | None = None


@dataclass(frozen=True)
class SlotStatus:
    """A subscriber's delivery status (the preferences page): the last slot, what it sent or why not,
    the next slot. `reason` is one of digest.wording.SLOT_LABELS; digest.wording.slot_text says it."""

    reason: str
    last_slot: datetime | None
    next_at: datetime | None
    period: str | None  # the last slot's period
    suppression: str | None = None  # why the address is suppressed, when that is the reason
    sent_at: datetime | None = None  # "sent": when
    subject: str | None = None  # "sent": the subject
    retrying: bool = False  # "on_its_way": the mail server asked us to retry
    paused_until: datetime | None = None  # "paused"
    count: int = 0  # "preparing", "nothing_new": papers matched since; "below_bar": papers new


# ---------------------------------------------------------------------------------------- editions


@dataclass(frozen=True)
class LastEdition:
    """A subscriber's most recent edition: its period and when it was planned (what due-ness needs);
    for a quiet one (a quiet day), why."""

    period: str
    planned_at: datetime
    quiet: str | None = None  # the reason, when that edition was a quiet day with nothing sent


@dataclass(frozen=True)
class Edition:
    """One subscriber's digest for one period: planned by the planner, kept by the ledger.

    `id` and `message_id` are set once the ledger has written it; `status` and `attempts` come back
    with it when it is read for sending."""

    subscriber_id: int
    email: str
    period: str
    window_start: datetime | None
    window_end: datetime | None
    planned_at: datetime
    picks: tuple[Pick, ...] = ()
    trending: tuple[Pick, ...] = ()
    id: int | None = None
    message_id: str = ""
    status: DeliveryStatus = DeliveryStatus.PLANNED
    attempts: int = 0
    subject: str | None = None
    sent_at: datetime | None = None
    note: str | None = None  # why a quiet edition (status QUIET) was quiet


# ------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class SourceStateView:
    """A source's stored state, as `digest sources` and `digest status` show it."""

    name: str
    watermark: str | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    total_fetched: int
    total_new: int
    total_updated: int
    total_skipped: int
    http_cache: dict


# ------------------------------------------------------------------------------------------- jobs

# What is kept of each scheduler job (a row of job_state): its next run and last result
JOB_STATE = ("next_run_at", "last_started_at", "last_finished_at", "last_ok", "last_summary", "instance")
