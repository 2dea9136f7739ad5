"""The subscriber-facing web app (Starlette): subscribe, confirm, preferences, unsubscribe, feedback,
archive and a health check. Handlers parse forms and render pages; decisions live in digest.subscriptions.signup.

Link scanners fetch every URL in an email, so no GET changes anything: confirm, unsubscribe and
feedback links open a page with one button that POSTs. The unsubscribe URL also takes the RFC 8058
one-click POST straight from a mailbox provider (no cookies, no CSRF token, 200 and no redirect).
"""

from __future__ import annotations

import logging
import re
import time
import zoneinfo
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from digest.config import Settings
from digest.mail.ratelimit import RateLimiter
from digest.mail.transport import DeliveryError, Transport, TransportUnavailable
from digest.planning.planner import utcnow
from digest.store.db import Database
from digest.subscriptions import feedback as feedback_clicks
from digest.subscriptions import signup as selfservice
from digest.subscriptions import subscribers, tokens, topics
from digest.subscriptions.signup import SignupRequest, SubscriberError, TokenError
from digest.subscriptions.subscribers import FREQUENCIES, WEEKDAYS, SubscriberView
from digest.web.security import CSP_ARCHIVE, Csrf, SecurityHeaders, same_origin

log = logging.getLogger("digest.web")

WEB = resources.files("digest") / "web"
MAX_BODY = 64 * 1024
FORM_LIMITS = {"max_files": 0, "max_fields": 80, "max_part_size": 16 * 1024}
_SPLIT = re.compile(r"[\n\r,;]+")
ZONES = sorted(z for z in zoneinfo.available_timezones()
               if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))) + ["UTC"]
LINK_HELP = {
    "confirm": "Confirmation links last a few days. Subscribe again to get a fresh one.",
    "manage": "Use the preferences link in your latest digest, or enter your address on the subscribe page "
              "and we will email you a new link.",
    "unsubscribe": "Use the unsubscribe link in one of your digests.",
    "archive": "Use the “view in browser” link in your digest.",
    "feedback": "Feedback links last a few months; use the links in a recent digest.",
}


def schedule_label(v: SubscriberView) -> str:
    at = f"at {v.hour:02d}:00 ({v.timezone})"
    if v.frequency == "weekly":
        return f"every {WEEKDAYS[v.weekday].capitalize()} {at}"
    return f"on weekdays {at}" if v.frequency == "weekdays" else f"every day {at}"


def split_topics(raw: str | None) -> list[str]:
    return [p for p in _SPLIT.split(raw or "") if p.strip()]


def _int(form: FormData, key: str, default: int | None) -> int | None:
    value = str(form.get(key) or "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SubscriberError(f"{key.replace('_', ' ')} must be a number") from None


def create_app(settings: Settings, db: Database, *, ip_limit: tuple[int, float] = (10, 3600.0),
               address_limit: tuple[int, float] = (3, 86400.0),
               transport: Callable[[], Transport] | None = None) -> Starlette:
    """The ASGI app. `ip_limit` bounds subscribe posts per client IP, `address_limit` the emails one
    address can be sent (each is (count, seconds)); `transport` overrides the configured mail transport."""
    secret = settings.secret()
    base = urlsplit(settings.web.base_url)
    root = base.path.rstrip("/")  # the app may live under a path prefix of base_url
    csrf = Csrf(secret, secure=base.scheme == "https")
    by_ip = RateLimiter(window_limit=ip_limit[0], window_seconds=ip_limit[1])
    by_address = RateLimiter(window_limit=address_limit[0], window_seconds=address_limit[1])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(WEB / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.globals.update(site_name=settings.digest.site_name, root=root, frequencies=FREQUENCIES,
                       weekdays=[d.capitalize() for d in WEEKDAYS], zones=ZONES, schedule=schedule_label)
    suggestions: dict[str, Any] = {"at": -1e9, "value": []}

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        """Render a page; a page that shows a form gets a CSRF token (and its cookie, if new)."""
        state: dict[str, Any] = {}

        def csrf_token() -> str:
            if "nonce" not in state:
                state["nonce"], state["new"] = csrf.nonce(request)
            return csrf.token(state["nonce"])

        response = HTMLResponse(env.get_template(name).render(csrf_token=csrf_token, **ctx), status)
        if state.get("new"):
            csrf.set_cookie(response, state["nonce"])
        return response

    def error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return page(request, "error.html", status, title=title, message=message)

    def bad_link(request: Request, purpose: str) -> HTMLResponse:
        return error(request, 400, "This link is not valid",
                     f"It may be incomplete, altered or expired. {LINK_HELP[purpose]}")

    async def form_of(request: Request, check_csrf: bool = True) -> FormData:
        form = await request.form(**FORM_LIMITS)
        if check_csrf and not (same_origin(request, settings.web.base_url) and csrf.valid(request, form)):
            raise HTTPException(403, "This form has expired or did not come from this site. "
                                     "Reload the page and try again.")
        return form

    # ---------------------------------------------------------------------------------- subscribe

    async def topic_suggestions() -> list[str]:
        if time.monotonic() - suggestions["at"] > 600:
            suggestions["value"] = await run_in_threadpool(topics.suggest_topics, db)
            suggestions["at"] = time.monotonic()
        return suggestions["value"]

    async def subscribe_page(request: Request) -> Response:
        values = {"email": "", "topics": "", "suggested": [], "frequency": "daily", "weekday": 0, "hour": 8,
                  "timezone": "UTC"}
        return page(request, "subscribe.html", values=values, suggestions=await topic_suggestions(), errors=[])

    async def subscribe(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        if not by_ip.hit(client):
            return error(request, 429, "Too many requests", "Please wait a while before subscribing again.")
        form = await form_of(request)
        suggested = [str(t) for t in form.getlist("suggested")][: subscribers.MAX_TOPICS]
        values = {"email": str(form.get("email") or "")[:320], "topics": str(form.get("topics") or ""),
                  "suggested": suggested, "frequency": str(form.get("frequency") or "daily"),
                  "weekday": str(form.get("weekday") or "0"), "hour": str(form.get("hour") or "8"),
                  "timezone": str(form.get("timezone") or "UTC").strip()}
        try:
            req = SignupRequest(email=values["email"], topics=suggested + split_topics(values["topics"]),
                                frequency=values["frequency"], hour=_int(form, "hour", 8) or 0,
                                timezone=values["timezone"], weekday=_int(form, "weekday", 0) or 0)
            await run_in_threadpool(selfservice.request_subscription, db, settings, req, limiter=by_address,
                                    transport=transport() if transport else None)
        except SubscriberError as err:
            return page(request, "subscribe.html", 400, values=values, suggestions=await topic_suggestions(),
                        errors=[str(err)])
        except (DeliveryError, TransportUnavailable) as err:
            log.error("subscribe: could not send the email: %s", err)
            return error(request, 503, "We could not send the email",
                         "Our mail server did not take the message. Please try again in a few minutes.")
        return page(request, "check_inbox.html", email=values["email"].strip(), days=tokens.MAX_AGE["confirm"] // 86400)

    # ------------------------------------------------------------------------------------ confirm

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        activate = request.method == "POST"
        if activate:
            await form_of(request)
        try:
            sub = await run_in_threadpool(selfservice.confirm, db, settings, token, utcnow(), activate=activate)
        except TokenError:
            return bad_link(request, "confirm")
        if not activate:
            return page(request, "confirm.html", sub=sub)
        picks, trending = await run_in_threadpool(selfservice.first_preview, db, settings, sub.id)
        return page(request, "confirmed.html", sub=sub, picks=picks, trending=trending,
                    manage_url=selfservice.links(settings).preferences(sub.id))

    # -------------------------------------------------------------------------------- preferences

    async def open_link(purpose: str, token: str) -> tuple:
        """(subscriber or None, payload); a bad token counts as no subscriber."""
        try:
            return await run_in_threadpool(selfservice.open_link, db, settings, purpose, token)
        except TokenError:
            return None, {}

    async def preferences(request: Request, errors: list[str] | None = None,
                          values: dict | None = None) -> Response:
        token = request.path_params["token"]
        sub, _ = await open_link("manage", token)
        if sub is None:
            return bad_link(request, "manage")
        editions = await run_in_threadpool(selfservice.recent_editions, db, settings, sub.id)
        paused = sub.status == "paused" and sub.paused_until is not None and sub.paused_until > utcnow()
        values = values or {"topics": "\n".join(sub.topics), "excludes": "\n".join(sub.excludes),
                            "frequency": sub.frequency, "weekday": sub.weekday, "hour": sub.hour,
                            "timezone": sub.timezone, "max_items": sub.max_items or ""}
        return page(request, "preferences.html", 400 if errors else 200, sub=sub, editions=editions, paused=paused,
                    values=values, errors=errors or [], saved=request.query_params.get("saved", ""),
                    default_max=settings.digest.max_items, request_token=token,
                    unsubscribe_url=selfservice.links(settings).unsubscribe(sub.id))

    async def preferences_save(request: Request) -> Response:
        token = request.path_params["token"]
        form = await form_of(request)
        sub, _ = await open_link("manage", token)
        if sub is None:
            return bad_link(request, "manage")
        action = request.path_params.get("action", "save")
        if action not in ("save", "pause", "resume"):
            raise HTTPException(404)
        values = {k: str(form.get(k) or "") for k in ("topics", "excludes", "frequency", "weekday", "hour",
                                                     "timezone", "max_items")}
        try:
            if action == "pause":
                await run_in_threadpool(subscribers.pause, db, sub.id, _int(form, "weeks", 1) or 0, utcnow())
            elif action == "resume":
                await run_in_threadpool(subscribers.resume, db, sub.id)
            else:
                await run_in_threadpool(
                    lambda: subscribers.update(
                        db, sub.id, topics=split_topics(values["topics"]), excludes=split_topics(values["excludes"]),
                        frequency=values["frequency"], timezone=values["timezone"].strip(),
                        hour=_int(form, "hour", 8) or 0, weekday=_int(form, "weekday", 0) or 0,
                        max_items=_int(form, "max_items", None)))
        except SubscriberError as err:
            return await preferences(request, [str(err)], values if action == "save" else None)
        return RedirectResponse(f"{root}/preferences/{token}?saved={action}", status_code=303)

    # -------------------------------------------------------------------------------- unsubscribe

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        try:  # a subscriber deleted since (None) gets nothing more anyway
            sub, _ = await run_in_threadpool(selfservice.open_link, db, settings, "unsubscribe", token)
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
            await run_in_threadpool(subscribers.unsubscribe, db, sub.id, utcnow(), how)
            log.info("unsubscribed subscriber=%s via %s", sub.id, how)
        return page(request, "unsubscribed.html", sub=sub)

    # ------------------------------------------------------------------------- feedback, archive

    async def feedback(request: Request) -> Response:
        token = request.path_params["token"]
        sub, data = await open_link("feedback", token)
        pid, signal = data.get("p"), data.get("v")
        if sub is None or not isinstance(pid, int) or signal not in (1, -1):
            return bad_link(request, "feedback")
        title = await run_in_threadpool(feedback_clicks.paper_title, db, pid)
        if title is None:
            return error(request, 404, "Paper not found", "This paper is no longer in our listings.")
        if request.method == "GET":
            return page(request, "feedback.html", title=title, signal=signal, done=False)
        await form_of(request)
        await run_in_threadpool(feedback_clicks.record_feedback, db, sub.id, pid, signal)
        return page(request, "feedback.html", title=title, signal=signal, done=True)

    async def archive(request: Request) -> Response:
        try:
            sub, data = await run_in_threadpool(selfservice.open_link, db, settings, "archive",
                                                request.path_params["token"])
        except TokenError:
            return bad_link(request, "archive")
        if not isinstance(data.get("d"), int):
            return bad_link(request, "archive")
        html = await run_in_threadpool(selfservice.archive_html, db, settings, sub.id, data["d"]) if sub else None
        if html is None:
            return error(request, 404, "Edition not found", "This digest is no longer available.")
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP_ARCHIVE})

    # ------------------------------------------------------------------------------ health, errors

    async def healthz(request: Request) -> Response:
        def ping() -> None:
            with db.engine.connect() as c:
                c.execute(text("SELECT 1"))

        try:
            await run_in_threadpool(ping)
        except Exception as err:  # any database failure makes the instance unhealthy
            log.error("health check failed: %s", err)
            return JSONResponse({"status": "error", "database": "unavailable"}, 503)
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {400: "Bad request", 403: "Forbidden", 404: "Page not found", 405: "Method not allowed",
                  413: "Too much data"}
        detail = exc.detail if exc.status_code == 403 else "Check the address, or start again from the home page."
        return error(request, exc.status_code, titles.get(exc.status_code, "Error"), detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return HTMLResponse(env.get_template("error.html").render(
            title="Something went wrong", message="Please try again in a moment.", csrf_token=lambda: ""), 500)

    token_route = "/{token:str}"
    app = Starlette(
        routes=[
            Route("/", subscribe_page, methods=["GET"]),
            Route("/subscribe", subscribe_page, methods=["GET"]),  # a reload after an error
            Route("/subscribe", subscribe, methods=["POST"]),
            Route("/confirm" + token_route, confirm, methods=["GET", "POST"]),
            Route("/preferences" + token_route, preferences, methods=["GET"]),
            Route("/preferences" + token_route, preferences_save, methods=["POST"]),
            Route("/preferences" + token_route + "/{action:str}", preferences_save, methods=["POST"]),
            Route("/unsubscribe" + token_route, unsubscribe, methods=["GET", "POST"]),
            Route("/feedback" + token_route, feedback, methods=["GET", "POST"]),
            Route("/archive" + token_route, archive, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Mount("/static", StaticFiles(directory=str(WEB / "static")), name="static"),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        max_body_size=MAX_BODY,
    )
    app.add_middleware(SecurityHeaders)
    return app


def serve(settings: Settings, db: Database, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn (honours X-Forwarded-For from a proxy on 127.0.0.1)."""
    import uvicorn

    uvicorn.run(create_app(settings, db), host=host, port=port, proxy_headers=True, server_header=False,
                log_level="info")
