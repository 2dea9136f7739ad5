"""The subscriber-facing web app (Starlette): subscribe, confirm, preferences, unsubscribe, feedback,
archive and a health check. Handlers parse forms and render pages; decisions live in digest.subscriptions.
`create_app` builds the app's state (a `Site`) and its routes; each handler reads the `Site` from the request.

Link scanners fetch every URL in an email, so no GET changes anything: confirm, unsubscribe and
feedback links open a page with one button that POSTs. The unsubscribe URL also takes the RFC 8058
one-click POST straight from a mailbox provider (no cookies, no CSRF token, 200 and no redirect).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from digest import wording
from digest.config import Settings
from digest.records import DAY_NAMES, FREQUENCIES, TIME_ZONES, Subscriber, utcnow
from digest.subscriptions import feedback as feedback_clicks
from digest.subscriptions import links, seeds, signup, subscribers, tokens, topics
from digest.subscriptions.profile import KEEP, ProfileChange
from digest.subscriptions.rules import MAX_TOPICS, SubscriberError
from digest.subscriptions.signup import SignupRequest
from digest.subscriptions.tokens import TokenError
from digest.usecases import feeds, monitoring, pages, seeding
from digest.usecases.setup import Database
from digest.web.security import CSP_ARCHIVE, Csrf, SecurityHeaders, same_origin

log = logging.getLogger("digest.web")

WEB = resources.files("digest") / "web"
MAX_BODY = 64 * 1024
FORM_LIMITS = {"max_files": 0, "max_fields": 80, "max_part_size": 16 * 1024}
SEED_FORM_LIMITS = {"max_files": 1, "max_fields": 10, "max_part_size": 16 * 1024}  # one BibTeX/Zotero upload
_SPLIT = re.compile(r"[\n\r,;]+")
ZONES = sorted(z for z in TIME_ZONES if "/" in z and not z.startswith(("Etc/", "US/"))) + ["UTC"]  # suggested
LINK_HELP = {
    "confirm": "Confirmation links last a few days. Subscribe again to get a fresh one.",
    "manage": "Use the preferences link in your latest digest, or enter your address on the subscribe page "
              "and we will email you a new link.",
    "unsubscribe": "Use the unsubscribe link in one of your digests.",
    "archive": "Use the “view in browser” link in your digest.",
    "feedback": "Feedback links last a few months; use the links in a recent digest.",
    "feed": "Copy the Atom feed link from your preferences page or a recent digest.",
}


def schedule_label(v: Subscriber) -> str:
    return wording.schedule_label(v.schedule)


def local_time(at: datetime, zone: str) -> str:
    """An instant in the subscriber's own time zone ("Tue 01 Dec 2026, 08:00 CET")."""
    try:
        return at.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y, %H:%M %Z")
    except (ValueError, KeyError):  # an unreadable stored zone: say it in UTC
        return at.astimezone(UTC).strftime("%a %d %b %Y, %H:%M UTC")


def split_topics(raw: str | None) -> list[str]:
    return [p for p in _SPLIT.split(raw or "") if p.strip()]


def split_lines(raw: str | None) -> list[str]:
    """One entry a line (author names keep their commas: "LeCun, Yann")."""
    return [p for p in (raw or "").splitlines() if p.strip()]


def field(form: FormData, key: str, default: str = "") -> str:
    """A form field as text (a file part counts as empty)."""
    value = form.get(key)
    return value.strip() if isinstance(value, str) else default


# ------------------------------------------------------------------------------------- the site


class Suggestions:
    """Topic suggestions for the subscribe form, mined again at most every `ttl` seconds."""

    def __init__(self, ttl: float = 600.0):
        self.ttl, self.at = ttl, -1e9
        self.value: list[str] = []

    async def get(self, db: Database) -> list[str]:
        if time.monotonic() - self.at > self.ttl:
            self.value = await run_in_threadpool(topics.suggest_topics, db)
            self.at = time.monotonic()
        return self.value


@dataclass(frozen=True)
class Site:
    """What every handler needs, built once by `create_app` and kept in `app.state.site`."""

    settings: Settings
    db: Database
    root: str  # the path prefix of base_url ("" at the root of a host)
    csrf: Csrf
    env: jinja2.Environment
    by_ip: signup.RateLimiter  # subscribe posts per client IP
    signups: signup.SignupQueue  # checked subscribe forms, handled after the page is sent
    suggestions: Suggestions
    metrics: Any = None  # the /metrics registry (prometheus_client), None when metrics are off


def site_of(request: Request) -> Site:
    return request.app.state.site


def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page; a page that shows a form gets a CSRF token (and its cookie, if new)."""
    csrf = site_of(request).csrf
    state: dict[str, Any] = {}

    def csrf_token() -> str:
        if "nonce" not in state:
            state["nonce"], state["new"] = csrf.nonce(request)
        return csrf.token(state["nonce"])

    response = HTMLResponse(site_of(request).env.get_template(name).render(csrf_token=csrf_token, **ctx), status)
    if state.get("new"):
        csrf.set_cookie(response, state["nonce"])
    return response


def error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", status, title=title, message=message)


def bad_link(request: Request, purpose: str) -> HTMLResponse:
    return error(request, 400, "This link is not valid", f"It may be incomplete, altered or expired. {LINK_HELP[purpose]}")


async def form_of(request: Request, check_csrf: bool = True, limits: dict | None = None) -> FormData:
    site = site_of(request)
    form = await request.form(**(limits or FORM_LIMITS))
    if check_csrf and not (same_origin(request, site.settings.web.base_url) and site.csrf.valid(request, form)):
        raise HTTPException(403, "This form has expired or did not come from this site. "
                                 "Reload the page and try again.")
    return form


async def open_link(request: Request, purpose: str) -> tuple[Subscriber | None, dict]:
    """The subscriber the path's token names, and its payload; raises TokenError for a bad token."""
    site = site_of(request)
    return await run_in_threadpool(signup.open_link, site.db, site.settings, purpose, request.path_params["token"])


async def subscriber_of(request: Request, purpose: str) -> tuple[Subscriber | None, dict]:
    """(subscriber or None, payload); a bad token counts as no subscriber."""
    try:
        return await open_link(request, purpose)
    except TokenError:
        return None, {}


# ------------------------------------------------------------------------------------ subscribe


async def subscribe_page(request: Request) -> Response:
    values = {"email": "", "topics": "", "suggested": [], "frequency": "daily", "weekday": 0, "hour": 8,
              "timezone": "UTC"}
    site = site_of(request)
    return page(request, "subscribe.html", values=values, suggestions=await site.suggestions.get(site.db), errors=[])


async def subscribe(request: Request) -> Response:
    """Every valid form takes the same path: checked, queued, answered (see signup.SignupQueue)."""
    site = site_of(request)
    client = request.client.host if request.client else "unknown"
    if not site.by_ip.hit(client):
        return error(request, 429, "Too many requests", "Please wait a while before subscribing again.")
    form = await form_of(request)
    suggested = [str(t) for t in form.getlist("suggested")][: MAX_TOPICS]
    values = {"email": field(form, "email")[:320], "topics": field(form, "topics"), "suggested": suggested,
              "frequency": field(form, "frequency") or "daily", "weekday": field(form, "weekday") or "0",
              "hour": field(form, "hour") or "8", "timezone": field(form, "timezone") or "UTC"}
    try:
        req = signup.check_request(SignupRequest(
            email=values["email"], topics=suggested + split_topics(values["topics"]), frequency=values["frequency"],
            hour=values["hour"], timezone=values["timezone"], weekday=values["weekday"]))
    except SubscriberError as err:
        return page(request, "subscribe.html", 400, values=values, suggestions=await site.suggestions.get(site.db),
                    errors=[str(err)])
    site.signups.put(req)
    return page(request, "check_inbox.html", email=values["email"], days=tokens.MAX_AGE["confirm"] // 86400)


# -------------------------------------------------------------------------------------- confirm


async def confirm(request: Request) -> Response:
    site = site_of(request)
    activate = request.method == "POST"
    if activate:
        await form_of(request)
    try:
        sub = await run_in_threadpool(signup.confirm, site.db, site.settings, request.path_params["token"], utcnow(),
                                      activate=activate)
    except TokenError:
        return bad_link(request, "confirm")
    if not activate:
        return page(request, "confirm.html", sub=sub)
    picks, trending = await run_in_threadpool(pages.first_preview, site.db, site.settings, sub.id)
    return page(request, "confirmed.html", sub=sub, picks=picks, trending=trending,
                manage_url=links.links_for(site.settings).preferences(sub.id))


# ---------------------------------------------------------------------------------- preferences


async def preferences(request: Request, errors: list[str] | None = None, values: dict | None = None) -> Response:
    site = site_of(request)
    sub, _ = await subscriber_of(request, "manage")
    if sub is None:
        return bad_link(request, "manage")
    editions = await run_in_threadpool(pages.recent_editions, site.db, site.settings, sub.id)
    delivery = await run_in_threadpool(pages.delivery_status, site.db, site.settings, sub.id)
    rated = await run_in_threadpool(feedback_clicks.rated_papers, site.db, sub.id)
    paused = sub.paused(utcnow())
    seeded = await run_in_threadpool(seeds.seeded, site.db, sub.id)
    values = values or {"topics": "\n".join(sub.topics), "excludes": "\n".join(sub.excludes),
                        "authors": "\n".join(sub.authors),
                        "frequency": sub.frequency, "weekday": sub.weekday, "hour": sub.hour,
                        "timezone": sub.timezone, "max_items": sub.max_items or ""}
    return page(request, "preferences.html", 400 if errors else 200, sub=sub, editions=editions, paused=paused,
                seeded=seeded, seed_limit=seeds.MAX_FILE_BYTES // 1_000_000,
                liked=[r for r in rated if r.signal > 0], disliked=[r for r in rated if r.signal < 0],
                values=values, errors=errors or [], saved=request.query_params.get("saved", ""),
                default_max=site.settings.digest.max_items, request_token=request.path_params["token"],
                unsubscribe_url=links.links_for(site.settings).unsubscribe(sub.id), delivery=delivery,
                feed_url=links.links_for(site.settings).feed(sub.id) if sub.status != "unsubscribed" else "")


async def preferences_save(request: Request) -> Response:
    site = site_of(request)
    form = await form_of(request)
    sub, _ = await subscriber_of(request, "manage")
    if sub is None:
        return bad_link(request, "manage")
    action = request.path_params.get("action", "save")
    if action not in ("save", "pause", "resume", "cadence", "undo"):
        raise HTTPException(404)
    if action == "undo":  # forget one "more/less like this" mark, listed on the page
        paper = field(form, "paper")
        if not (paper.isascii() and paper.isdigit() and len(paper) < 19):
            raise HTTPException(400, "No such paper in your feedback.")
        await run_in_threadpool(feedback_clicks.undo_feedback, site.db, sub.id, int(paper))
        return RedirectResponse(f"{site.root}/preferences/{request.path_params['token']}?saved=undo", status_code=303)
    values = {k: field(form, k) for k in ("topics", "excludes", "authors", "frequency", "weekday", "hour",
                                          "timezone", "max_items")}
    try:
        if action == "pause":
            await run_in_threadpool(subscribers.pause, site.db, sub.id, field(form, "weeks"), utcnow())
        elif action == "resume":
            await run_in_threadpool(subscribers.resume, site.db, sub.id)
        elif action == "cadence":  # the quiet-days block
            change = ProfileChange(min_papers=field(form, "min_papers"), best_of_week=field(form, "best_of_week"))
            await run_in_threadpool(subscribers.update, site.db, sub.id, change)
        else:
            change = ProfileChange(
                topics=split_topics(values["topics"]), excludes=split_topics(values["excludes"]),
                frequency=values["frequency"], timezone=values["timezone"], hour=values["hour"],
                weekday=values["weekday"], max_items=values["max_items"],
                authors=split_lines(values["authors"]) if "authors" in form else KEEP)
            await run_in_threadpool(subscribers.update, site.db, sub.id, change)
    except SubscriberError as err:
        return await preferences(request, [str(err)], values if action == "save" else None)
    return RedirectResponse(f"{site.root}/preferences/{request.path_params['token']}?saved={action}", status_code=303)


async def preferences_seed(request: Request) -> Response:
    """Seed the profile from the preferences page: pasted arXiv ids, or an uploaded BibTeX file or
    Zotero CSV export (one of the two)."""
    site = site_of(request)
    form = await form_of(request, limits=SEED_FORM_LIMITS)
    sub, _ = await subscriber_of(request, "manage")
    if sub is None:
        return bad_link(request, "manage")
    ids, upload = field(form, "arxiv_ids"), form.get("seed_file")
    data = await upload.read(seeds.MAX_FILE_BYTES + 1) if isinstance(upload, UploadFile) and upload.filename else b""
    try:
        if bool(ids) == bool(data):
            raise SubscriberError("paste arXiv ids or choose a BibTeX or Zotero CSV file (one of the two)")
        if ids:
            report = await run_in_threadpool(seeding.seed_arxiv, site.db, site.settings, sub.email, [ids])
        else:
            name = upload.filename if isinstance(upload, UploadFile) else ""
            report = await run_in_threadpool(seeding.seed_file, site.db, sub.email, name or "", data)
    except SubscriberError as err:
        return await preferences(request, [str(err)])
    return RedirectResponse(f"{site.root}/preferences/{request.path_params['token']}?saved=seed&n={report.seeded}",
                            status_code=303)


# ---------------------------------------------------------------------------------- unsubscribe


async def unsubscribe(request: Request) -> Response:
    try:  # a subscriber deleted since (None) gets nothing more anyway
        sub, _ = await open_link(request, "unsubscribe")
    except TokenError:
        return bad_link(request, "unsubscribe")
    if request.method == "GET":
        if sub is None or sub.status == "unsubscribed":
            return page(request, "unsubscribed.html", sub=sub)
        return page(request, "unsubscribe.html", sub=sub)
    # RFC 8058: "List-Unsubscribe=One-Click" as a form body, no cookies, no CSRF token; answer 200.
    form = await form_of(request, check_csrf=False)
    how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    if sub is not None:
        await run_in_threadpool(subscribers.unsubscribe, site_of(request).db, sub.id, utcnow(), how)
        log.info("unsubscribed subscriber=%s via %s", sub.id, how)
    return page(request, "unsubscribed.html", sub=sub)


# --------------------------------------------------------------------------- feedback, archive


async def feedback(request: Request) -> Response:
    db = site_of(request).db
    sub, data = await subscriber_of(request, "feedback")
    target = links.feedback_target(data, request.query_params)
    if sub is None or target is None:
        return bad_link(request, "feedback")
    pid, signal = target
    title = await run_in_threadpool(feedback_clicks.paper_title, db, pid)
    if title is None:
        return error(request, 404, "Paper not found", "This paper is no longer in our listings.")
    if request.method == "GET":
        return page(request, "feedback.html", title=title, signal=signal, done=False)
    await form_of(request)
    await run_in_threadpool(feedback_clicks.record_feedback, db, sub.id, pid, signal)
    return page(request, "feedback.html", title=title, signal=signal, done=True)


async def archive(request: Request) -> Response:
    site = site_of(request)
    try:
        sub, data = await open_link(request, "archive")
    except TokenError:
        return bad_link(request, "archive")
    if not isinstance(data.get("d"), int):
        return bad_link(request, "archive")
    html = await run_in_threadpool(pages.archive_html, site.db, site.settings, sub.id, data["d"]) if sub else None
    if html is None:
        return error(request, 404, "Edition not found", "This digest is no longer available.")
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP_ARCHIVE})


async def feed(request: Request) -> Response:
    """The subscriber's Atom feed; 304 to a conditional GET that has it already, 410 once they left."""
    site = site_of(request)
    try:
        sub, _ = await open_link(request, "feed")
    except TokenError:
        return bad_link(request, "feed")
    self_url = site.settings.web.base_url + request.url.path  # the link the reader polls, as they have it
    doc = await run_in_threadpool(feeds.feed, site.db, site.settings, sub.id, self_url=self_url) if sub else None
    if doc is None:
        return error(request, 410, "This feed has ended", "You unsubscribed, so this feed has no more papers.")
    headers = {"ETag": doc.etag, "Last-Modified": formatdate(doc.updated.timestamp(), usegmt=True),
               "Cache-Control": "private, max-age=300"}
    if not_modified(request, doc.etag, doc.updated):
        return Response(status_code=304, headers=headers)
    return Response(doc.body, media_type="application/atom+xml; charset=utf-8", headers=headers)


def not_modified(request: Request, etag: str, updated: datetime) -> bool:
    """RFC 9110 13.1: If-None-Match decides when present (weak comparison), else If-Modified-Since."""
    if (tags := request.headers.get("if-none-match")) is not None:
        return any(t.strip().removeprefix("W/") in (etag, "*") for t in tags.split(","))
    if (since := request.headers.get("if-modified-since")) is not None:
        try:
            at = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False  # a date we cannot read is ignored, as the RFC says
        return at.tzinfo is not None and int(updated.timestamp()) <= at.timestamp()
    return False


# -------------------------------------------------------------------------------- health, errors


async def healthz(request: Request) -> Response:
    try:
        await run_in_threadpool(site_of(request).db.ping)
    except Exception as err:  # any database failure makes the instance unhealthy
        log.error("health check failed: %s", err)
        return JSONResponse({"status": "error", "database": "unavailable"}, 503)
    return JSONResponse({"status": "ok"})


async def metrics_page(request: Request) -> Response:
    """Prometheus /metrics: this process's counters and the database's gauges, read now. Only for the
    client networks in `metrics.allow` (after the proxy's X-Forwarded-For); others see a plain 404."""
    site = site_of(request)
    if site.metrics is None or not allowed(request, site.settings.metrics.allow):
        raise HTTPException(404)
    body, content_type = await run_in_threadpool(monitoring.metrics_text, site.metrics)
    return Response(body, media_type=content_type)


def allowed(request: Request, networks: list[str]) -> bool:
    try:
        client = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(n, strict=False) for n in networks)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {400: "Bad request", 403: "Forbidden", 404: "Page not found", 405: "Method not allowed",
              413: "Too much data"}
    detail = exc.detail if exc.status_code == 403 else "Check the address, or start again from the home page."
    return error(request, exc.status_code, titles.get(exc.status_code, "Error"), detail)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return HTMLResponse(site_of(request).env.get_template("error.html").render(
        title="Something went wrong", message="Please try again in a moment.", csrf_token=lambda: ""), 500)


# -------------------------------------------------------------------------------------- the app

TOKEN = "/{token:str}"


def routes() -> list[Route | Mount]:
    return [
        Route("/", subscribe_page, methods=["GET"]),
        Route("/subscribe", subscribe_page, methods=["GET"]),  # a reload after an error
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm" + TOKEN, confirm, methods=["GET", "POST"]),
        Route("/preferences" + TOKEN, preferences, methods=["GET"]),
        Route("/preferences" + TOKEN, preferences_save, methods=["POST"]),
        Route("/preferences" + TOKEN + "/seed", preferences_seed, methods=["POST"]),
        Route("/preferences" + TOKEN + "/{action:str}", preferences_save, methods=["POST"]),
        Route("/unsubscribe" + TOKEN, unsubscribe, methods=["GET", "POST"]),
        Route("/feedback" + TOKEN, feedback, methods=["GET", "POST"]),
        Route("/archive" + TOKEN, archive, methods=["GET"]),
        Route("/feed" + TOKEN + ".atom", feed, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(WEB / "static")), name="static"),
    ]


def templates(settings: Settings, root: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(WEB / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.globals.update(site_name=settings.digest.site_name, root=root, frequencies=FREQUENCIES,
                       weekdays=DAY_NAMES, zones=ZONES, schedule=schedule_label, local=local_time,
                       reasons=pages.DELIVERY_REASONS)
    return env


def create_app(settings: Settings, db: Database, *, ip_limit: tuple[int, float] = (10, 3600.0),
               address_limit: tuple[int, float] = (3, 86400.0),
               transport: Callable[[], signup.Transport] | None = None) -> Starlette:
    """The ASGI app. `ip_limit` bounds subscribe posts per client IP, `address_limit` the emails one
    address can be sent (each is (count, seconds); a count of 0 is no limit); `transport` overrides the
    configured mail transport."""
    base = urlsplit(settings.web.base_url)
    root = base.path.rstrip("/")  # the app may live under a path prefix of base_url
    signups = signup.signup_queue(db, settings, limiter=signup.limiter(*address_limit), transport=transport)
    site = Site(settings=settings, db=db, root=root, csrf=Csrf(settings.secret(), secure=base.scheme == "https"),
                env=templates(settings, root), by_ip=signup.limiter(*ip_limit), signups=signups,
                suggestions=Suggestions(),
                metrics=monitoring.metrics_registry(db, settings) if settings.metrics.enabled else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(signups.close)  # the requests already answered still get their email

    app = Starlette(routes=routes(), exception_handlers={HTTPException: http_error, Exception: server_error},
                    max_body_size=MAX_BODY, lifespan=lifespan)
    app.state.site = site
    app.add_middleware(SecurityHeaders)
    return app


def serve(settings: Settings, db: Database, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn (honours X-Forwarded-For from a proxy on 127.0.0.1)."""
    import uvicorn

    uvicorn.run(create_app(settings, db), host=host, port=port, proxy_headers=True, server_header=False,
                log_level="info")
