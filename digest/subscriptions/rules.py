"""The rules at the door: every way in (the web forms, the CLI, the CSV import, sign-up) checks what
a user gives through these, and gets one line fit to show back when it is refused."""

from __future__ import annotations

import re
from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email

from digest.mail.message import ascii_address
from digest.ranking.authors import name_key
from digest.records import FREQUENCIES, WEEKDAYS, SubscriberStatus, cadence_problem, check_zone, quoted
from digest.sources.clean import clean_text

MAX_TOPICS = 20
MAX_TOPIC_CHARS = 100
MAX_NAME_CHARS = 200  # the column's size
MAX_AUTHORS = 50
_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits only (int() also takes "٣", "1_0" and 4,000 digits)


class SubscriberError(ValueError):
    """Bad subscriber input, with a message fit to show a user."""


def normalise_email(address: str) -> str:
    """An address in its stored form: email-validator's normalised form (an IDN domain in Unicode), lower
    case. For finding a subscriber; a new address goes through `check_email`."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as err:
        raise SubscriberError(f"{quoted(address, 80)} is not a valid email address: {err}") from None


def check_email(address: str) -> str:
    """A new address, normalised, if the mailer can send to it (`digest.mail.message.ascii_address`, the
    rule every message follows): a non-ASCII local part needs SMTPUTF8, which is not supported."""
    normalised = normalise_email(address)
    try:
        ascii_address(normalised)
    except ValueError as err:
        raise SubscriberError(f"{err}; use an address with only ASCII letters before the @") from None
    return normalised


def clean_line(value: object, limit: int, what: str) -> str:
    """Free text from a form, the CLI or a file, as titles are cleaned (digest.sources.clean): one line,
    NFC, no control characters, terminal escapes or bidi overrides. Too long is refused, not cut."""
    text = clean_text(value, limit * 4)
    if len(text) > limit:
        raise SubscriberError(f"{what} too long (max {limit} characters): {quoted(text)}")
    return text


def clean_name(value: str | None) -> str | None:
    return clean_line(value or "", MAX_NAME_CHARS, "name") or None


def clean_topics(phrases: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in phrases:
        phrase = clean_line(raw, MAX_TOPIC_CHARS, "topic")
        if phrase and phrase.lower() not in (p.lower() for p in out):
            out.append(phrase)
    if len(out) > MAX_TOPICS:
        raise SubscriberError(f"too many topics ({len(out)}; max {MAX_TOPICS})")
    return out


# A topic's weight: how much of the digest it gets ("diffusion models=2": twice the share of the others).
MIN_WEIGHT, MAX_WEIGHT = 0.1, 10.0
_WEIGHTED = re.compile(r"^(?P<phrase>.*?)\s*=\s*(?P<weight>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*$", re.S)


def clean_weighted_topics(items: Iterable[str]) -> list[tuple[str, float]]:
    """Topics as the user wrote them, each with an optional weight after "=" ("diffusion models=2"; none
    is 1; written back by `records.written_topic`), cleaned as `clean_topics` cleans phrases (the first
    of two spellings wins, with its weight). A weight must be a number from MIN_WEIGHT to MAX_WEIGHT; a
    phrase that only ends in "=" and words ("P=NP") is a phrase."""
    weighed: list[tuple[str, float]] = []
    for item in items:
        text = str(item)
        m = _WEIGHTED.match(text)
        phrase, weight = (m.group("phrase"), float(m.group("weight"))) if m else (text, 1.0)
        if m and not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise SubscriberError(f"topic {quoted(phrase.strip())}: weight {m.group('weight')} is out of "
                                  f"range (from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}; 1 is the usual share)")
        weighed.append((phrase, weight))
    phrases = clean_topics(p for p, _ in weighed)
    first = {}
    for phrase, weight in weighed:
        first.setdefault(clean_line(phrase, MAX_TOPIC_CHARS, "topic").lower(), weight)
    return [(p, first[p.lower()]) for p in phrases]


def clean_authors(names: Iterable[str]) -> list[str]:
    """Followed authors as written, one line each, each with letters; the same person twice (by the
    one name rule, `ranking.authors.same_author`, written the same way) is kept once."""
    out: list[str] = []
    for raw in names:
        name = clean_line(raw, MAX_NAME_CHARS, "author")
        if not name:
            continue
        key = name_key(name)
        if key is None:
            raise SubscriberError(f"author {quoted(name)} has no letters")
        if all(name_key(o) != key for o in out):
            out.append(name)
    if len(out) > MAX_AUTHORS:
        raise SubscriberError(f"too many followed authors ({len(out)}; max {MAX_AUTHORS})")
    return out


def parse_int(value: int | str | None, what: str, low: int, high: int,
              default: int | None = None) -> int | None:
    """A whole number low..high from a form field, an option or a CSV cell; empty gives `default`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SubscriberError(f"{what} must be a whole number, not {quoted(value)}")
    if isinstance(value, str) and not _WHOLE.fullmatch(value.strip()):
        raise SubscriberError(f"{what} must be a whole number, not {quoted(value)}")
    number = int(value)
    if not low <= number <= high:
        raise SubscriberError(f"{what} must be {low}..{high}, not {quoted(value)}")
    return number


def check_frequency(frequency: str) -> str:
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {quoted(frequency)}")
    return frequency


def check_timezone(timezone: str) -> str:
    try:
        return check_zone(timezone)
    except ValueError as err:
        raise SubscriberError(str(err)) from None


def check_weekday(weekday: int | str) -> int:
    """0..6 (Monday = 0), from a number or a day name."""
    if isinstance(weekday, str) and weekday.strip() and not weekday.strip().isdigit():
        if weekday.strip().lower() not in WEEKDAYS:
            raise SubscriberError(f"weekday must be one of {', '.join(WEEKDAYS)}, not {quoted(weekday)}")
        return WEEKDAYS.index(weekday.strip().lower())
    return parse_int(weekday, "weekday", 0, 6, 0)  # type: ignore[return-value]


def check_max_items(max_items: int | str | None) -> int | None:
    return parse_int(max_items, "max items", 1, 100)


def check_cadence(frequency: str, min_papers: int | str | None, best_of_week: object = False,
                  max_items: int | None = None) -> tuple[int | None, bool]:
    """The cadence rules: skip an edition with fewer than `min_papers` papers (1..100, none by default,
    never more than the subscriber's own papers per digest), and best of the week, which is a kind of
    weekly digest. Returns (min_papers, best_of_week)."""
    least = parse_int(min_papers, "min papers", 1, 100)
    best = check_flag(best_of_week, "best of week")
    if (problem := cadence_problem(frequency, least, best, max_items)) is not None:
        raise SubscriberError(problem)
    return least, best


def check_flag(value: object, what: str) -> bool:
    """A yes/no from an option, a form checkbox or a CSV cell (true/false, yes/no, on/off, 1/0, empty)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise SubscriberError(f"{what} must be yes or no, not {quoted(value)}")


def check_schedule(frequency: str, hour: int | str, timezone: str, weekday: int | str = 0) -> tuple[int, int]:
    """Validate the delivery schedule; returns (hour, weekday as 0..6, Monday = 0)."""
    check_frequency(frequency)
    hour_ = parse_int(hour, "hour", 0, 23, 8)
    check_timezone(timezone)
    return hour_, check_weekday(weekday)  # type: ignore[return-value]


def check_status(status: str) -> SubscriberStatus:
    try:
        return SubscriberStatus(status)
    except ValueError:
        raise SubscriberError(f"unknown status {quoted(status)}") from None
