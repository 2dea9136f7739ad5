"""Sign-up with double opt-in: the subscribe request, its notice email, the confirmation, and what a
clicked link's token names.

The web app (`digest.web`) and the mailto processor (`digest.subscriptions.unsubscribes`) are thin shells
over these
functions. Every link a subscriber clicks carries a token from `digest.subscriptions.tokens`; this module
decides
what each token may do, and never lets an unsubscribed or suppressed address be mailed a digest again.
Topic suggestions are in `digest.subscriptions.topics`, feedback clicks in `digest.subscriptions.feedback`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

import jinja2
from sqlalchemy.exc import IntegrityError

from digest.background import Worker
from digest.config import Settings
from digest.mail import signing
from digest.mail.message import Envelope, ascii_address, message_bytes, new_message_id, parse_address
from digest.mail.ratelimit import RateLimiter
from digest.mail.transport import DeliveryError, PermanentFailure, Transport, TransportUnavailable
from digest.mail.transport import from_settings as transport_from_settings
from digest.records import Subscriber, utcnow, written_topic
from digest.records import SubscriberStatus as Status
from digest.render import checks, templates
from digest.store import subscriber_rows
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.store.models import Subscriber as SubscriberRow
from digest.subscriptions import rules, subscribers, tokens
from digest.subscriptions.links import links_for
from digest.subscriptions.profile import set_phrases
from digest.subscriptions.subscribers import SubscriberError
from digest.subscriptions.tokens import TokenError

log = logging.getLogger("digest.subscriptions.signup")

Outcome = Literal["confirm", "manage", "suppressed", "limited"]

# ------------------------------------------------------------------------------------- subscribe


@dataclass(frozen=True)
class SignupRequest:
    email: str
    topics: Sequence[str] = ()
    frequency: str = "daily"
    hour: int | str = 8
    timezone: str = "UTC"
    weekday: int | str = 0


def check_request(req: SignupRequest) -> SignupRequest:
    """The form checked by the rules at the door (digest.subscriptions.subscribers), normalised: what it
    says alone, never what is stored. Raises SubscriberError (shown next to the form)."""
    hour, weekday = rules.check_schedule(req.frequency, req.hour, req.timezone, req.weekday)
    topics = tuple(written_topic(*t) for t in rules.clean_weighted_topics(req.topics))  # "x=2" as written
    return replace(req, email=rules.check_email(req.email), hour=hour, weekday=weekday, topics=topics)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class NoticeNotSent(Exception):
    """The mail server did not take the confirmation or manage email (try again later)."""


def limiter(count: int, seconds: float) -> RateLimiter:
    """At most `count` hits per key in any `seconds` (0: no limit)."""
    return RateLimiter(window_limit=count, window_seconds=seconds)


def request_subscription(db: Database, settings: Settings, req: SignupRequest, *, limiter: RateLimiter,
                         transport: Transport | None = None, now: datetime | None = None) -> Outcome:
    """Handle a subscribe form: the caller shows the same page whatever the outcome (no enumeration).

    New, pending or unsubscribed address: store the wished-for settings (status unchanged) and mail a
    confirmation link. Active or paused: mail a link to the preferences instead. A bounced or
    complained-about address, or one over its per-address limit, is mailed nothing.
    Raises SubscriberError for invalid input (shown next to the form).
    """
    now = now or utcnow()
    req = check_request(req)
    address, topics, weekday = req.email, list(req.topics), req.weekday
    if not limiter.hit(address):
        log.warning("subscribe: per-address limit reached, nothing sent")
        return "limited"
    kind: Outcome
    for attempt in range(2):
        try:
            with db.session() as s:
                blocked = subscriber_store.suppression(s, address)
                if blocked is not None and blocked != "unsubscribed":
                    log.info("subscribe: address suppressed (%s), nothing sent", blocked)
                    return "suppressed"
                sub = subscriber_store.row(s, email=address)
                if sub is not None and sub.status in (Status.ACTIVE, Status.PAUSED) and blocked is None:
                    kind = "manage"
                else:
                    if sub is None:
                        sub = SubscriberRow(email=address, status=Status.PENDING, created_at=now)
                        s.add(sub)
                    sub.frequency, sub.hour = req.frequency, req.hour
                    sub.timezone, sub.weekday = req.timezone, weekday
                    set_phrases(sub, rules.clean_weighted_topics(topics), None, None)
                    kind = "confirm"
                s.flush()
                sid, shown_topics = sub.id, subscriber_rows.split(sub.topics)[0]
            break
        except IntegrityError:  # the same address submitted twice at once: look again
            if attempt:
                raise
    url = links_for(settings).confirm(sid, now) if kind == "confirm" else links_for(settings).preferences(sid)
    try:
        send_notice(settings, address, kind, url, shown_topics, transport=transport, now=now)
    except (DeliveryError, TransportUnavailable) as err:
        raise NoticeNotSent(str(err)) from err
    log.info("subscribe: %s link sent subscriber=%s", kind, sid)
    return kind


class SignupQueue:
    """Subscribe requests, handled one at a time by a background thread after the page is sent.

    The web app checks a form (`check_request`), puts it here and answers: every address, new, live,
    pending, suppressed or over its limit, takes that one path, so neither the page nor the time it
    takes says which it was. The lookups, writes and the email happen in `handle` afterwards; a failure
    there is logged (the page cannot say more without telling the branches apart).
    """

    def __init__(self, handle: Callable[[SignupRequest], object], maxsize: int = 1000):
        self.handle = handle
        self._worker = Worker("signups", self._handle, maxsize, log)

    def put(self, req: SignupRequest) -> None:
        """Queue a checked request; never blocks (a full queue drops it, and says so in the log)."""
        if not self._worker.offer(req):
            log.error("subscribe: %d requests waiting, this one is dropped", self._worker.waiting)

    def join(self) -> None:
        """Wait until every request queued so far is handled."""
        self._worker.join()

    def close(self) -> None:
        """Handle what is queued, then stop the thread."""
        self._worker.close()

    def _handle(self, req: SignupRequest) -> None:
        try:
            self.handle(req)
        except NoticeNotSent as err:
            log.error("subscribe: could not send the email: %s", err)
        except Exception:  # noqa: BLE001 - logged here in the pages' own words; the next request goes on
            log.exception("subscribe: the request failed")


def signup_queue(db: Database, settings: Settings, *, limiter: RateLimiter,
                 transport: Callable[[], Transport] | None = None) -> SignupQueue:
    """The queue the web app puts subscribe forms in; each is handled by `request_subscription`."""
    return SignupQueue(lambda req: request_subscription(db, settings, req, limiter=limiter,
                                                        transport=transport() if transport else None))


# ----------------------------------------------------------------------------------- notice mail


@lru_cache(maxsize=4)
def _mail_env(search_path: tuple[str, ...]) -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.FileSystemLoader(list(search_path))  # an admin's folder first (digest.render.templates)
    html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    text = jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)
    return html, text


def _notice_context(settings: Settings, to: str, kind: str, url: str, topics: Sequence[str]) -> dict:
    return {"kind": kind, "url": url, "topics": list(topics), "site_name": settings.digest.site_name,
            "email": to, "days": (tokens.MAX_AGE["confirm"] or 0) // 86400}


def _notice_bodies(settings: Settings, ctx: dict) -> tuple[str, str]:
    """The notice's text and HTML, from the templates `[render] templates_dir` chooses."""
    html_env, text_env = _mail_env(tuple(templates.folders(settings.render.templates_dir).search_path()))
    return (text_env.get_template("email_notice.txt").render(ctx),
            html_env.get_template("email_notice.html").render(ctx))


def check_notice_templates(settings: Settings) -> None:
    """The notice templates keep the rules (digest.render.checks): they parse, use only what they are
    given, and link the confirmation or manage URL in both parts. Raises TemplateError naming the file."""
    where = templates.folders(settings.render.templates_dir)
    html_env, text_env = _mail_env(tuple(where.search_path()))
    trees = {}
    for name, env in zip(templates.NOTICE, (html_env, text_env), strict=True):
        path = where.path(name)
        trees[name] = checks.parse(env, path.read_text(encoding="utf-8"), path)
        given = (*_notice_context(settings, "", "confirm", "", ()), *env.globals)
        checks.check_names(trees[name], given, path)
    url = settings.web.base_url + "/confirm/eyJzIjo0MiwiayI6ImNvbmZpcm0ifQ.ZxY3Qw.q8Vn1bS2xY4rT7uK0pLmZ3aWc"
    made = [_notice_bodies(settings, _notice_context(settings, "a@example.org", kind, url, ["diffusion"]))
            for kind in ("confirm", "manage")]
    for name, i, html in (("email_notice.html", 1, True), ("email_notice.txt", 0, False)):
        path = where.path(name)
        checks.require_link(path.read_text(encoding="utf-8"), trees[name], path, "url", [m[i] for m in made],
                            url, "the confirmation or manage link", html)


def notice_message(settings: Settings, to: str, kind: str, url: str, topics: Sequence[str],
                   now: datetime) -> bytes:
    """The confirmation (or 'manage your subscription') email as it goes on the wire: multipart/alternative,
    text first, no list headers, marked Auto-Submitted. ValueError if `to` cannot be sent without SMTPUTF8."""
    site = settings.digest.site_name
    subject = f"Confirm your subscription to {site}" if kind == "confirm" else f"Your {site} subscription"
    text, html = _notice_bodies(settings, _notice_context(settings, to, kind, url, topics))
    mail = settings.mail
    env = Envelope(from_address=mail.from_address, to_address=to, to_name=None, subject=subject,
                   message_id=new_message_id("confirm" if kind == "confirm" else "manage", mail.from_address),
                   reply_to=mail.reply_to, date=now, auto_submitted="auto-generated")
    return message_bytes(env, text, html)


def send_notice(settings: Settings, to: str, kind: str, url: str, topics: Sequence[str], *,
                transport: Transport | None = None, now: datetime | None = None) -> None:
    """Sign (DKIM, when configured) and send one notice through the configured transport.

    Raises the transport's errors: DeliveryError for this recipient (also for an address that needs
    SMTPUTF8, as the digests do), TransportUnavailable otherwise.
    """
    try:
        recipient = ascii_address(to)
        data = notice_message(settings, to, kind, url, topics, now or utcnow())
    except ValueError as err:
        raise PermanentFailure(str(err)) from None
    signer = signing.from_settings(settings)
    if signer is not None:
        data = signer.sign(data)
    transport = transport or transport_from_settings(settings)
    transport.open()
    try:
        transport.send(data, parse_address(settings.mail.from_address).addr_spec, recipient)
    finally:
        transport.close()


# --------------------------------------------------------------------------------------- confirm


def confirm(db: Database, settings: Settings, token: str, now: datetime | None = None, *,
            activate: bool = True) -> Subscriber:
    """Activate the subscription a confirmation token names; idempotent. Raises TokenError.

    A token made before the subscriber last unsubscribed (or before the row existed) is refused, so
    only a fresh confirmation can bring an unsubscribed address back. `activate=False` only checks.
    """
    now = now or utcnow()
    data = tokens.read(settings.secrets(), "confirm", token)
    at = data.get("at") if isinstance(data.get("at"), int) else 0
    with db.session() as s:
        sub = subscriber_store.row(s, subscriber_id=data["s"])
        if sub is None or at < _ms(sub.created_at) or (sub.unsubscribed_at and at < _ms(sub.unsubscribed_at)):
            raise TokenError("confirmation link no longer valid")
        if not activate:
            return subscribers.view(sub)
        if sub.status in (Status.PENDING, Status.UNSUBSCRIBED):
            sub.status, sub.confirmed_at, sub.paused_until = Status.ACTIVE, now, None
            log.info("subscription confirmed subscriber=%s", sub.id)
        subscriber_store.lift_unsubscribe(s, sub.email)
        return subscribers.view(sub)


def open_link(db: Database, settings: Settings, purpose: str, token: str) -> tuple[Subscriber | None, dict]:
    """The subscriber a link's token names (None if gone), and the token's payload. Raises TokenError.

    A token signed before the subscriber's row existed was made for an earlier subscriber with the
    same id (SQLite reuses the highest id after a delete), so that subscriber counts as gone.
    """
    secret = settings.secrets()
    data = tokens.read(secret, purpose, token)
    try:
        sub = subscribers.get_by_id(db, data["s"])
    except SubscriberError:
        return None, data
    if sub.created_at is not None and tokens.signed_at(secret, purpose,
                                                       token) < sub.created_at - timedelta(seconds=1):
        return None, data
    return sub, data


# --------------------------------------------------------------------------------- topic ideas


# --------------------------------------------------------------------------------------- archive


# ---------------------------------------------------------------------------------- unsubscribe


def unsubscribe_address(db: Database, address: str, now: datetime | None = None, detail: str = "") -> bool:
    """Unsubscribe by address (the mailto path); False if the address is not a subscriber."""
    try:
        sub = subscribers.get(db, address)
    except SubscriberError:
        return False
    subscribers.unsubscribe(db, sub.id, now or utcnow(), detail)
    return True

