"""What every handler of the web app shares: the `Site` (settings, database, templates, limits),
rendering a page with its CSRF token, reading a form, opening a link's token, and the small
helpers that turn form fields into values."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest import wording
from digest.config import Settings
from digest.records import TIME_ZONES, Subscriber
from digest.subscriptions import signup, topics
from digest.subscriptions.tokens import TokenError
from digest.usecases import seeding
from digest.usecases.setup import Database
from digest.web.security import Csrf, same_origin

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
    seedings: seeding.SeedingQueue  # arXiv seedings from the preferences page, fetched in the background
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

    response = HTMLResponse(site_of(request).env.get_template(name).render(csrf_token=csrf_token, **ctx),
                            status)
    if state.get("new"):
        csrf.set_cookie(response, state["nonce"])
    return response


def error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", status, title=title, message=message)


def bad_link(request: Request, purpose: str) -> HTMLResponse:
    return error(request, 400, "This link is not valid",
                 f"It may be incomplete, altered or expired. {LINK_HELP[purpose]}")


async def form_of(request: Request, check_csrf: bool = True, limits: dict | None = None) -> FormData:
    site = site_of(request)
    form = await request.form(**(limits or FORM_LIMITS))
    if check_csrf and not (same_origin(request, site.settings.web.base_url)
                           and site.csrf.valid(request, form)):
        raise HTTPException(403, "This form has expired or did not come from this site. "
                                 "Reload the page and try again.")
    return form


async def open_link(request: Request, purpose: str) -> tuple[Subscriber | None, dict]:
    """The subscriber the path's token names, and its payload; raises TokenError for a bad token."""
    site = site_of(request)
    return await run_in_threadpool(signup.open_link, site.db, site.settings, purpose,
                                   request.path_params["token"])


async def subscriber_of(request: Request, purpose: str) -> tuple[Subscriber | None, dict]:
    """(subscriber or None, payload); a bad token counts as no subscriber."""
    try:
        return await open_link(request, purpose)
    except TokenError:
        return None, {}


