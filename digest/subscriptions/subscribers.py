"""Subscribers: who they are (an inbox, or a team channel known by its identity), and adding, changing
and removing them. Every change to a profile is one value (digest.subscriptions.profile) checked by
the rules at the door (digest.subscriptions.rules); the CSV import and export are in
digest.subscriptions.subscriber_csv."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.delivery.channels import is_sealed, sealed_kinds
from digest.mail import webhook as webhooks
from digest.ranking.authors import same_author
from digest.records import Subscriber, quoted
from digest.records import SubscriberStatus as Status
from digest.store import subscriber_rows
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.store.models import Feedback
from digest.store.models import Subscriber as SubscriberRow
from digest.subscriptions.profile import ProfileChange, apply, check, set_phrases
from digest.subscriptions.rules import SubscriberError, check_email, clean_authors, normalise_email, parse_int

__all__ = ["SubscriberError", "add", "add_webhook", "change", "follow", "get", "get_by_id", "list_all",
           "remove",
           "update"]


def view(row: SubscriberRow) -> Subscriber:
    """The record of a row this module has just read or written (its topics loaded with it)."""
    return subscriber_store.record_of(row)


# ---------------------------------------------------------------------------- who a user names


def _is_url(value: str) -> bool:
    return "://" in value


def webhook_kinds() -> tuple[str, ...]:
    """The webhook kinds a team channel may be (what `--kind` takes): the channels with a sealed URL."""
    return sealed_kinds()


def check_kind(kind: str) -> str:
    if kind not in webhook_kinds():
        raise SubscriberError(f"webhook kind must be one of {', '.join(webhook_kinds())}, not {kind!r}")
    return kind


def is_channel(value: str) -> bool:
    """Whether what a user typed names a team channel ("slack:3f2a9c1b7d4e"), not an inbox."""
    return webhooks.is_identity(value.strip(), webhook_kinds())


def shown(value: str) -> str:
    """What a user passed to name a subscriber, fit to print back: an address or identity as given, a
    webhook URL redacted."""
    return webhooks.redact(value) if _is_url(value) else value


def key(value: str) -> str:
    """What the ledger and the planner know a subscriber by, from what a user typed: a webhook identity
    as given, else the normalised address (`digest send --subscriber`, `digest preview --subscriber`)."""
    return value.strip() if is_channel(value) else normalise_email(value)


def row_of(session: Session, email: str) -> SubscriberRow:
    """The subscriber's row by address, channel identity or webhook URL; SubscriberError (the URL
    redacted) if there is none."""
    sub = _find(session, email)
    if sub is None:
        raise _missing(email)
    return sub


def _find(session: Session, email: str) -> SubscriberRow | None:
    """A subscriber by address, by webhook identity ("slack:3f2a9c1b7d4e"), or by webhook URL."""
    value = email.strip()
    if is_channel(value):
        return subscriber_store.row(session, email=value)
    if _is_url(value):
        for kind in webhook_kinds():  # the identity names the kind; the URL alone does not
            if (found := subscriber_store.row(session, email=webhooks.identity(kind, value))) is not None:
                return found
        return None
    return subscriber_store.row(session, email=normalise_email(email))


def _missing(email: str) -> SubscriberError:
    value = email.strip()
    if is_channel(value) or _is_url(value):
        return SubscriberError(f"no subscriber {shown(value)}")
    return SubscriberError(f"no subscriber {normalise_email(email)}")


# ------------------------------------------------------------------------------------ the admin's


def _change(profile: ProfileChange | None, fields: dict) -> ProfileChange:
    if profile is not None and fields:
        raise TypeError("give a ProfileChange or its fields, not both")
    return profile if profile is not None else ProfileChange(**fields)


def add(db: Database, email: str, profile: ProfileChange | None = None, /, *, status: str = Status.ACTIVE,
        **fields) -> Subscriber:
    """A new subscriber with an inbox; the profile as `profile` (or its fields) says, the rest default."""
    address = check_email(email)
    checked = check(_change(profile, fields))
    with db.session() as s:
        if _find(s, address):
            raise SubscriberError(f"{address} is already subscribed")
        sub = SubscriberRow(email=address, status=status)
        apply(sub, checked)
        s.add(sub)
        s.flush()
        return view(sub)


def add_webhook(db: Database, secret: str, url: str, kind: str, profile: ProfileChange | None = None, /,
                **fields) -> Subscriber:
    """A team channel as a subscriber: planned like anyone, sent to its webhook. It is known by its
    identity ("slack:3f2a9c1b7d4e"); the URL is stored sealed with `secret` and shown only redacted."""
    kind = check_kind(kind)
    try:
        url = webhooks.check_url(url)
    except webhooks.WebhookError as err:
        raise SubscriberError(str(err)) from None
    checked = check(_change(profile, fields))
    with db.session() as s:
        if (found := _find(s, url)) is not None:
            raise SubscriberError(f"{webhooks.redact(url)} is already subscribed, as {found.email}")
        sub = SubscriberRow(email=webhooks.identity(kind, url), status=Status.ACTIVE, channel=kind,
                            webhook_url=webhooks.Sealer(secret).seal(url), webhook_hint=webhooks.redact(url))
        apply(sub, checked)
        s.add(sub)
        s.flush()
        return view(sub)


def get(db: Database, email: str) -> Subscriber:
    with db.session() as s:
        sub = row_of(s, email)
        return view(sub)


def list_all(db: Database, status: str | None = None) -> list[Subscriber]:
    with db.session() as s:
        q = subscriber_store.query()
        if status:
            q = q.where(SubscriberRow.status == status)
        return subscriber_store.load(s, q)


def exportable(subs: Sequence[Subscriber]) -> list[Subscriber]:
    """The subscribers whose address may go into a file: not a secret kept sealed (a webhook's URL)."""
    return [v for v in subs if not is_sealed(v.channel)]


def remove(db: Database, email: str) -> Subscriber:
    """Delete a subscriber and their history (the address can subscribe again later); returns who it was."""
    with db.session() as s:
        sub = row_of(s, email)
        gone = view(sub)
        s.delete(sub)
        return gone


def feedback_and_suppression(db: Database, email: str) -> dict:
    """Part of what `subscribers show` adds to the profile: feedback counts and any suppression."""
    with db.session() as s:
        sub = row_of(s, email)
        fb = s.execute(
            select(Feedback.signal, func.count()).where(Feedback.subscriber_id == sub.id,
                                                        Feedback.origin == "click")
            .group_by(Feedback.signal)
        ).all()
        suppressed = subscriber_store.suppression(s, sub.email)
        return {
            "feedback": {"more_like_this": sum(n for v, n in fb if v > 0),
                         "less_like_this": sum(n for v, n in fb if v < 0)},
            "suppressed": suppressed,
        }


def change(db: Database, email: str, profile: ProfileChange | None = None, /, **fields) -> Subscriber:
    """Change only the given parts of a subscriber's profile (`digest subscribers update`), checked
    together with what stays; nothing is written if one is refused. `min_papers=None` removes the minimum."""
    wanted = _change(profile, fields)
    with db.session() as s:
        sub = row_of(s, email)
        apply(sub, check(wanted, sub))
        s.flush()
        return view(sub)


def follow(db: Database, email: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Subscriber:
    """Follow the authors in `add` and stop following those in `remove` (matched by the name rule, so
    "Y. LeCun" stops "Yann LeCun"); the rest of the profile stays. Removing a name not followed is an
    error."""
    wanted, dropping = clean_authors(add), clean_authors(remove)
    if (add or remove) and not (wanted or dropping):  # only blank names: nothing to do is a mistake
        raise SubscriberError("give an author's name (e.g. \"Yann LeCun\")")
    with db.session() as s:
        sub = row_of(s, email)
        current = subscriber_rows.followed(sub.topics)
        for name in dropping:
            if not any(same_author(name, c) for c in current):
                raise SubscriberError(f"{sub.email} does not follow {quoted(name)}")
        kept = [c for c in current if not any(same_author(name, c) for name in dropping)]
        set_phrases(sub, None, None, clean_authors([*kept, *wanted]))
        s.flush()
        return view(sub)


# ------------------------------------------------------------------------ self-service (web, mailto)


def _by_id(session: Session, subscriber_id: int) -> SubscriberRow:
    sub = subscriber_store.row(session, subscriber_id=subscriber_id)
    if sub is None:
        raise SubscriberError(f"no subscriber #{subscriber_id}")
    return sub


def get_by_id(db: Database, subscriber_id: int) -> Subscriber:
    with db.session() as s:
        return view(_by_id(s, subscriber_id))


def update(db: Database, subscriber_id: int, profile: ProfileChange | None = None, /, **fields) -> Subscriber:
    """A change from the preferences page (its topics and schedule, the followed authors when the form
    has them, or its cadence block), by the same rules as every other: nothing is written if one is
    refused. Best of the week is a weekly digest: another frequency ends it."""
    wanted = _change(profile, fields)
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        apply(sub, check(wanted, sub))
        s.flush()
        return view(sub)


def pause(db: Database, subscriber_id: int, weeks: int | str, now: datetime) -> Subscriber:
    """No digests for `weeks` (1..52) weeks; the planner picks the subscriber up again when the pause ends."""
    weeks = parse_int(weeks, "weeks", 1, 52, 1)  # type: ignore[assignment]
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        if sub.status not in (Status.ACTIVE, Status.PAUSED):
            raise SubscriberError(f"cannot pause a subscription that is {sub.status}")
        sub.status, sub.paused_until = Status.PAUSED, now + timedelta(weeks=weeks)
        return view(sub)


def resume(db: Database, subscriber_id: int) -> Subscriber:
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        if sub.status == Status.PAUSED:
            sub.status, sub.paused_until = Status.ACTIVE, None
        return view(sub)


def unsubscribe(db: Database, subscriber_id: int, now: datetime, detail: str = "") -> bool:
    """Unsubscribe and suppress the address so no path mails it again; True if it was subscribed.

    Idempotent. Only a fresh, confirmed subscription lifts the suppression.
    """
    with db.session() as s:
        sub = _by_id(s, subscriber_id)
        changed = sub.status != Status.UNSUBSCRIBED
        if changed:
            sub.status, sub.unsubscribed_at, sub.paused_until = Status.UNSUBSCRIBED, now, None
        subscriber_store.suppress(s, sub.email, "unsubscribed", detail or None, now)
        return changed


def prune_pending(db: Database, older_than: timedelta, now: datetime) -> int:
    """Forget sign-ups never confirmed within `older_than` (their confirmation links have expired)."""
    with db.session() as s:
        stale = s.scalars(select(SubscriberRow).where(SubscriberRow.status == Status.PENDING,
                                                      SubscriberRow.created_at < now - older_than)).all()
        for sub in stale:
            s.delete(sub)
        return len(stale)
