"""The preferences page: topics, schedule and followed authors, pause and resume, the quiet-days
block, undoing a "more/less like this" mark, and seeding the profile with one's own papers."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest.records import utcnow
from digest.subscriptions import feedback as feedback_clicks
from digest.subscriptions import links, seeds, subscribers
from digest.subscriptions.profile import KEEP, ProfileChange
from digest.subscriptions.rules import SubscriberError
from digest.usecases import pages, seeding
from digest.web.site import (
    SEED_FORM_LIMITS,
    bad_link,
    field,
    form_of,
    page,
    site_of,
    split_lines,
    split_topics,
    subscriber_of,
)


async def preferences(request: Request, errors: list[str] | None = None,
                      values: dict | None = None) -> Response:
    site = site_of(request)
    sub, _ = await subscriber_of(request, "manage")
    if sub is None:
        return bad_link(request, "manage")
    editions = await run_in_threadpool(pages.recent_editions, site.db, site.settings, sub.id)
    delivery = await run_in_threadpool(pages.delivery_status, site.db, site.settings, sub.id)
    rated = await run_in_threadpool(feedback_clicks.rated_papers, site.db, sub.id)
    paused = sub.paused(utcnow())
    seeded = await run_in_threadpool(seeds.seeded, site.db, sub.id)
    fetching, fetched = site.seedings.state(sub.email)  # a seeding from arXiv under way, how the last ended
    values = values or {"topics": "\n".join(sub.written_topics), "excludes": "\n".join(sub.excludes),
                        "authors": "\n".join(sub.authors),
                        "frequency": sub.frequency, "weekday": sub.weekday, "hour": sub.hour,
                        "timezone": sub.timezone, "max_items": sub.max_items or ""}
    return page(request, "preferences.html", 400 if errors else 200, sub=sub, editions=editions,
                paused=paused,
                seeded=seeded, seed_limit=seeds.MAX_FILE_BYTES // 1_000_000, fetching=fetching,
                fetched=fetched,
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
        return RedirectResponse(f"{site.root}/preferences/{request.path_params['token']}?saved=undo",
                                status_code=303)
    values = {k: field(form, k) for k in ("topics", "excludes", "authors", "frequency", "weekday", "hour",
                                          "timezone", "max_items")}
    try:
        if action == "pause":
            await run_in_threadpool(subscribers.pause, site.db, sub.id, field(form, "weeks"), utcnow())
        elif action == "resume":
            await run_in_threadpool(subscribers.resume, site.db, sub.id)
        elif action == "cadence":  # the quiet-days block
            change = ProfileChange(min_papers=field(form, "min_papers"),
                                   best_of_week=field(form, "best_of_week"))
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
    return RedirectResponse(f"{site.root}/preferences/{request.path_params['token']}?saved={action}",
                            status_code=303)


async def preferences_seed(request: Request) -> Response:
    """Seed the profile from the preferences page: pasted arXiv ids (fetched from arXiv in the
    background: `seeding.SeedingQueue`; the page says when they are in), or an uploaded BibTeX file or
    Zotero CSV export (one of the two)."""
    site = site_of(request)
    form = await form_of(request, limits=SEED_FORM_LIMITS)
    sub, _ = await subscriber_of(request, "manage")
    if sub is None:
        return bad_link(request, "manage")
    ids, upload = field(form, "arxiv_ids"), form.get("seed_file")
    data = await upload.read(seeds.MAX_FILE_BYTES + 1) if isinstance(upload,
                                                                     UploadFile) and upload.filename else b""
    try:
        if bool(ids) == bool(data):
            raise SubscriberError("paste arXiv ids or choose a BibTeX or Zotero CSV file (one of the two)")
        if ids:
            site.seedings.put(sub.email, [ids])  # never waits for arXiv
            token = request.path_params["token"]
            return RedirectResponse(f"{site.root}/preferences/{token}?saved=seed-arxiv", status_code=303)
        else:
            name = upload.filename if isinstance(upload, UploadFile) else ""
            report = await run_in_threadpool(seeding.seed_file, site.db, sub.email, name or "", data)
    except SubscriberError as err:
        return await preferences(request, [str(err)])
    token = request.path_params["token"]
    return RedirectResponse(f"{site.root}/preferences/{token}?saved=seed&n={report.seeded}", status_code=303)


