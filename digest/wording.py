"""Words, in one room: every sentence the product says about a subscriber's digest, from the records
the stages return. Ranking says why a paper was picked as a `Reason`; planning says whether an edition
is due as a `DueState` and what became of the last slot as a `SlotStatus`; this module turns them into
the email's, the pages' and the CLI's sentences. The schedule, too, is described here, in each of the
forms the email, the pages and the CLI use.

Plain functions of records: it imports nothing of the digest but them.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from digest.records import DAY_NAMES, DueState, Reason, Schedule, SlotStatus

_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def one_line(text: str | None) -> str:
    """Collapse all whitespace (CR/LF included) so untrusted text can never split a header.
    Remembered: a run shows the same reasons and titles in thousands of digests."""
    return _SPACE.sub(" ", text or "").strip()


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# ------------------------------------------------------------------------------ why a paper is in it


@lru_cache(maxsize=65536)
def why(reason: Reason) -> str:
    """A pick's reason in one sentence: "Matches “diffusion models”: diffusion, denoising"."""
    if reason.kind == "trending":
        text = f"Trending: {reason.upvotes} upvote{_s(reason.upvotes)}" if reason.upvotes > 0 \
            else "Trending: newly listed"
    elif reason.kind == "liked":
        text = f"Similar to “{_title(reason.liked_title)}”, which you liked" if reason.liked_title \
            else "Similar to papers you liked"
    elif reason.kind == "meaning":
        quote = (reason.quote if reason.quote is None or len(reason.quote) <= 160
                 else reason.quote[:157].rstrip() + "…")
        text = f"Close in meaning to “{reason.topic}”{_weighed(reason)}" + (f": “{quote}”" if quote else "")
    else:
        text = f"Matches “{reason.topic}”{_weighed(reason)}" + (f": {', '.join(reason.terms)}" if reason.terms
                                                               else "")
    if reason.also:
        text += "; also " + ", ".join(f"“{o}”" for o in reason.also)
    if reason.author is None:
        return text
    by = f"By {reason.author}, whom you follow"
    return by + (f"; {text[0].lower()}{text[1:]}" if reason.topic is not None else "")


def _weighed(reason: Reason) -> str:
    """When the topic's weight gave the pick its place: " (weighted ×2)"."""
    return f" (weighted ×{reason.weight:g})" if reason.weight is not None else ""


def _title(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77].rstrip() + "…"


# ------------------------------------------------------------------------------- the email's words


def subject_line(n: int, top: str, personal: bool) -> str:
    """Says how many papers and names the top one."""
    top = one_line(top)
    if len(top) > 80:
        top = top[:79].rsplit(" ", 1)[0] + "…"
    noun = "paper" if n == 1 else "papers"
    kind = "new" if personal else "trending"
    return one_line(f"{n} {kind} {noun} for you: {top}")


def heading_and_intro(n: int, topics: tuple[str, ...] | list[str], authors: tuple[str, ...] | list[str],
                      likes: bool,
                      best_of_week: bool) -> tuple[str, str]:
    """The digest's heading and the line under it: what it was picked for."""
    topic_list = ", ".join(f"“{one_line(t)}”" for t in topics)
    follow = f" and new work by {', '.join(one_line(a) for a in authors)}" if authors else ""
    noun = "paper" if n == 1 else "papers"
    if topics and best_of_week:
        return (f"Best of the week: {n} {noun} on your topics",
                f"The week's best for {topic_list}{follow}, picked from every paper listed in the last seven "
                "days.")
    if topics:
        return (f"{n} new {noun} on your topics",
                f"Picked and ranked for {topic_list}{follow}, newest listings first seen since your last "
                "digest.")
    if likes:
        return (f"{n} new {noun} for you",
                f"Picked and ranked for papers like the ones you gave or liked{follow}, newest listings "
                "first "
                "seen since your last digest.")
    if authors:
        return ("Trending papers",
                f"New work by {', '.join(one_line(a) for a in authors)} first, then what the community "
                "upvoted "
                "most. Add topics in your preferences.")
    return ("Trending papers",
            "You have no topics yet, so here is what the community upvoted most. Add topics in your "
            "preferences.")


FREQUENCY_LABEL = {"daily": "daily", "weekdays": "weekday", "weekly": "weekly"}


def frequency_label(frequency: str, best_of_week: bool) -> str:
    """The digest's kind in its footer: "You receive this <daily> digest"."""
    return "best-of-the-week" if best_of_week else FREQUENCY_LABEL.get(frequency, frequency)


# ---------------------------------------------------------------------------------- the schedule


def schedule_line(s: Schedule) -> str:
    """"daily at 08:00 UTC", "Mondays at 08:00 Europe/Paris" (`digest due`, the CLI)."""
    when = {"daily": "daily", "weekdays": "weekdays", "weekly": f"{DAY_NAMES[s.weekday]}s"}[s.frequency]
    return f"{when} at {s.hour:02d}:00 {s.timezone}"


def schedule_label(s: Schedule) -> str:
    """"every day at 08:00 (UTC)", "every Monday at ..." (the pages)."""
    at = f"at {s.hour:02d}:00 ({s.timezone})"
    if s.frequency == "weekly":
        return f"every {DAY_NAMES[s.weekday]} {at}"
    return f"on weekdays {at}" if s.frequency == "weekdays" else f"every day {at}"


def frequency_at(s: Schedule) -> str:
    """"daily at 08:00 UTC", by the frequency's name (what `digest subscribers add` prints)."""
    return f"{s.frequency} at {s.hour:02d}:00 {s.timezone}"


def cadence_line(email: str, s: Schedule, best_of_week: bool, min_papers: int | None) -> str:
    """How a subscriber's digest comes, in one line (what the CLI's add and update print)."""
    when = schedule_line(s) + (", best of the week" if best_of_week else "")
    least = f", at least {min_papers} paper{_s(min_papers)} an edition" if min_papers else ""
    return f"{email}: {when}{least}"


# -------------------------------------------------------------------------- due, quiet, suppressed


def quiet_note(picks: int, need: int) -> str:
    """Why an edition was a quiet one (kept with it in the ledger)."""
    have = f"{picks} paper{_s(picks)}" if picks else "no paper"
    return f"{have} above the bar, fewer than {need}"


SUPPRESSED_REASON = "suppressed (unsubscribed, bounced or complained)"


def due_reason(state: DueState, tz: ZoneInfo) -> str:
    """Why an edition is due or not at an instant, in one line (`digest due`)."""
    k = state.kind
    if k == "no_day":
        return f"no edition on {DAY_NAMES[state.weekday]}s ({schedule_line(state.schedule)})"
    if k == "quiet":
        unit = "week" if state.schedule.frequency == "weekly" else "day"
        return (f"quiet {unit} {state.period} ({state.note}): nothing sent, its papers roll over to the next "
                "edition")
    if k == "planned":
        return f"edition {state.period} already planned at {local(state.at, tz)}"
    if k == "not_yet":
        return f"slot {local(state.at, tz)} not reached yet"
    if k == "planned_after":
        return f"an edition ({state.period}) was planned at {local(state.at, tz)}, after this slot"
    if k == "first":
        return f"slot {local(state.at, tz)} passed; first edition"
    if k == "catch_up":
        return (f"slot {local(state.at, tz)} passed; catch-up, last edition {state.period}"
                + (" (quiet)" if state.note else ""))
    return f"slot {local(state.at, tz)} passed; no edition for {state.period} yet"


@lru_cache(maxsize=4096)
def local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


# ---------------------------------------------------------------------- "why no email today?"

# The delivery status's reasons, as the preferences page labels them
SLOT_LABELS = {
    "sent": "sent", "on_its_way": "on its way", "failed": "failed", "bounced": "bounced",
    "complained": "marked as spam", "unsubscribed": "unsubscribed", "suppressed": "suppressed",
    "pending": "not confirmed", "paused": "paused", "unreadable": "schedule unreadable",
    "first": "first digest to come", "preparing": "being prepared", "nothing_new": "nothing new",
    "below_bar": "below the bar",
}
# Why an address is suppressed (store.subscribers.suppressed), as the preferences page says it
SUPPRESSION_TEXT = {
    "hard_bounce": "your mail server refused our digests, so we stopped sending them",
    "soft_bounce": "your mail server kept deferring our digests, so we stopped sending them",
    "complaint": "a digest was reported as spam from your mailbox, so we stopped sending them",
    "unsubscribed": "you unsubscribed",
}
SUPPRESSION_REASON = {"hard_bounce": "bounced", "soft_bounce": "bounced", "complaint": "complained",
                      "unsubscribed": "unsubscribed"}


def suppression_reason(suppression: str) -> str:
    """The status key of a suppressed address (a SLOT_LABELS key)."""
    return SUPPRESSION_REASON.get(suppression, "suppressed")


def slot_text(status: SlotStatus) -> str:
    """A subscriber's delivery status in a sentence (the preferences page)."""
    r, n = status.reason, status.count
    if status.suppression is not None:
        return ("No digest: "
                f"{SUPPRESSION_TEXT.get(status.suppression, 'this address is on our do-not-mail list')}.")
    if r == "unreadable":
        return "Your schedule cannot be read; save your preferences again."
    if r == "unsubscribed":
        return "You unsubscribed, so no digests are sent."
    if r == "pending":
        return "Confirm your address (the link in our email) to start your digests."
    if r == "sent":
        return f"Sent{f' at {status.sent_at:%H:%M} UTC' if status.sent_at else ''}: “{status.subject or ''}”."
    if r == "failed":
        return "Your digest could not be delivered: your mail server refused it."
    if r == "suppressed":
        return "Your digest was held back: this address may not be mailed now."
    if r == "on_its_way":
        return "Your digest is on its way" + (" (your mail server asked us to retry)." if status.retrying
                                              else ".")
    if r == "paused":
        return f"Your digests are paused until {status.paused_until:%d %B %Y}."
    if r == "first":
        return "Your first digest comes at your next slot."
    if r == "preparing":
        return f"{n} new paper{_s(n)} matched: your digest goes out at the next run."
    if r == "nothing_new" and n:
        return (f"Nothing new matched your topics by the last slot; {n} paper{_s(n)} have since, "
                "for your next digest.")
    if r == "below_bar":
        return (f"{n} new paper{_s(n)} came in since your last digest, but none matched your topics closely "
                "enough.")
    return "No new papers came in since your last digest."
