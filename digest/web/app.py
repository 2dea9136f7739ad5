"""The subscriber-facing web app (Starlette): subscribe, confirm, preferences (digest.web.preferences),
unsubscribe, feedback, archive and a health check. Handlers parse forms and render pages (the shared
parts in digest.web.site); decisions live in digest.subscriptions and the use cases.
`create_app` builds the app's state (a `Site`) and its routes; each handler reads the `Site` from the request.

Link scanners fetch every URL in an email, so no GET changes anything: confirm, unsubscribe and
feedback links open a page with one button that POSTs. The unsubscribe URL also takes the RFC 8058
one-click POST straight from a mailbox provider (no cookies, no CSRF token, 200 and no redirect).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from digest.config import Settings
from digest.records import DAY_NAMES, FREQUENCIES, utcnow
from digest.subscriptions import feedback as feedback_clicks
from digest.subscriptions import links, signup, subscribers, tokens
from digest.subscriptions.rules import MAX_TOPICS, SubscriberError
from digest.subscriptions.signup import SignupRequest
from digest.subscriptions.tokens import TokenError
from digest.usecases import feeds, monitoring, pages, seeding
from digest.usecases.setup import Database, page_templates
from digest.web.preferences import preferences, preferences_save, preferences_seed
from digest.web.security import CSP_ARCHIVE, Csrf, SecurityHeaders
from digest.web.site import (
    MAX_BODY,
    WEB,
    ZONES,
    Site,
    Suggestions,
    bad_link,
    error,
    field,
    form_of,
    local_time,
    open_link,
    page,
    schedule_label,
    site_of,
    split_topics,
    subscriber_of,
)

log = logging.getLogger("digest.web")


# ------------------------------------------------------------------------------------ subscribe


async def subscribe_page(request: Request) -> Response:
    values = {"email": "", "topics": "", "suggested": [], "frequency": "daily", "weekday": 0, "hour": 8,
              "timezone": "UTC"}
    site = site_of(request)
    return page(request, "subscribe.html", values=values, suggestions=await site.suggestions.get(site.db),
                errors=[])


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
            email=values["email"], topics=suggested + split_topics(values["topics"]),
            frequency=values["frequency"],
            hour=values["hour"], timezone=values["timezone"], weekday=values["weekday"]))
    except SubscriberError as err:
        return page(request, "subscribe.html", 400, values=values,
                    suggestions=await site.suggestions.get(site.db),
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
        sub = await run_in_threadpool(signup.confirm, site.db, site.settings, request.path_params["token"],
                                      utcnow(),
                                      activate=activate)
    except TokenError:
        return bad_link(request, "confirm")
    if not activate:
        return page(request, "confirm.html", sub=sub)
    picks, trending = await run_in_threadpool(pages.first_preview, site.db, site.settings, sub.id)
    return page(request, "confirmed.html", sub=sub, picks=picks, trending=trending,
                manage_url=links.links_for(site.settings).preferences(sub.id))


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
    html = await run_in_threadpool(pages.archive_html, site.db, site.settings, sub.id,
                                   data["d"]) if sub else None
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
    doc = await run_in_threadpool(feeds.feed, site.db, site.settings, sub.id,
                                  self_url=self_url) if sub else None
    if doc is None:
        return error(request, 410, "This feed has ended",
                     "You unsubscribed, so this feed has no more papers.")
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
    # an admin's folder first, file by file (`[render] templates_dir`; checked at start: check_templates)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(page_templates(settings)), autoescape=True,
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
    site = Site(settings=settings, db=db, root=root,
                csrf=Csrf(settings.secrets(), secure=base.scheme == "https"),
                env=templates(settings, root), by_ip=signup.limiter(*ip_limit), signups=signups,
                seedings=seeding.SeedingQueue(db, settings), suggestions=Suggestions(),
                metrics=monitoring.metrics_registry(db, settings) if settings.metrics.enabled else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(signups.close)  # the requests already answered still get their email
        await run_in_threadpool(site.seedings.close)  # the seeding in hand ends, those waiting are dropped

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
