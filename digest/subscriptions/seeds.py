"""Seeding a profile with one's own papers: they become "more like this" examples.

A reader with no good topic phrase names a few papers instead: arXiv ids (fetched through the arXiv
source, `pipeline.seed_arxiv`), a BibTeX file, or a Zotero CSV export (read here, titles and
abstracts). Each becomes a stored paper (`store.papers.seed`: an existing one as it is, a new one
unlisted, so it is never mailed as a candidate) and a feedback row of +1 with origin "seed", so it
reaches the ranker exactly as a "more like this" click does (`Profile.liked`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import bibtexparser
from bibtexparser.bparser import BibTexParser
from bibtexparser.customization import convert_to_unicode
from sqlalchemy import select

from digest.records import Listing, quoted, utcnow
from digest.sources.clean import clean_listing, parse_arxiv_id
from digest.store import papers as paper_store
from digest.store.db import Database
from digest.store.models import Feedback
from digest.store.models import Paper as PaperRow
from digest.subscriptions.rules import SubscriberError
from digest.subscriptions.subscribers import row_of

MAX_SEEDS = 200  # papers per seed call
MAX_FILE_BYTES = 5_000_000
ZOTERO_COLUMNS = ("Title", "Abstract Note", "Author")  # of Zotero's CSV export ("Key","Item Type",...)
_BRACES = re.compile(r"[{}]")


@dataclass
class SeedFile:
    """The papers a file names, and how many of its entries had no title (skipped)."""

    listings: list[Listing] = field(default_factory=list)
    skipped: int = 0


@dataclass(frozen=True)
class SeedReport:
    email: str
    seeded: int  # papers now liked through this seed (new seeds)
    already: int  # of those named, already liked by this subscriber
    skipped: int = 0  # entries of the file without a title, ids arXiv does not know
    titles: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # arXiv ids as given that arXiv did not return

    def summary(self) -> str:
        line = f"seeded {self.email} with {self.seeded} paper{'s' if self.seeded != 1 else ''}"
        if self.already:
            line += f" ({self.already} already liked)"
        if self.skipped:
            line += f"; skipped {self.skipped}"
            if self.missing:
                line += " not on arXiv: " + ", ".join(self.missing)
            else:
                line += " without a title"
        return line


# ---------------------------------------------------------------------------------------- reading


def check_ids(raw: Sequence[str]) -> list[str]:
    """arXiv ids as given ("2104.12255", "arXiv:2104.12255v1", an abs/pdf URL), each checked; one bad
    id refuses them all. Split on commas and white space too (a pasted list)."""
    ids = [p for r in raw for p in re.split(r"[\s,]+", r) if p]
    if not ids:
        raise SubscriberError("no arXiv id given")
    if len(ids) > MAX_SEEDS:
        raise SubscriberError(f"too many papers ({len(ids)}; max {MAX_SEEDS})")
    for i in ids:
        if parse_arxiv_id(i) is None:
            raise SubscriberError(f"{quoted(i)} is not an arXiv id (like 2104.12255 or hep-th/9901001)")
    return ids


def read_file(name: str, data: bytes, kind: str | None = None) -> SeedFile:
    """The papers of a BibTeX file or a Zotero CSV export; `kind` ("bibtex" | "zotero") or else the
    file name's ending (.bib, .csv) says which. Raises SubscriberError (one line) for a file that is
    not one, or that names no paper with a title."""
    kind = kind or ("zotero" if name.lower().endswith(".csv") else "bibtex"
                    if name.lower().endswith((".bib", ".bibtex")) else None)
    if kind is None:
        raise SubscriberError(f"{quoted(name)}: give a BibTeX (.bib) file or a Zotero CSV export (.csv)")
    if len(data) > MAX_FILE_BYTES:
        raise SubscriberError(f"{quoted(name)}: file too large (max {MAX_FILE_BYTES // 1_000_000} MB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SubscriberError(f"{quoted(name)}: not UTF-8 text (byte {err.start})") from None
    found = read_bibtex(text) if kind == "bibtex" else read_zotero(text)
    if not found.listings:
        what = "BibTeX entries" if kind == "bibtex" else "Zotero CSV rows"
        raise SubscriberError(f"{quoted(name)}: no {what} with a title ({found.skipped} without one)")
    if len(found.listings) > MAX_SEEDS:
        raise SubscriberError(f"{quoted(name)}: too many papers ({len(found.listings)}; max {MAX_SEEDS})")
    return found


def read_bibtex(text: str) -> SeedFile:
    """BibTeX entries (bibtexparser): title, abstract, authors ("Surname, Given and ..."), and the
    arXiv id from `eprint` (with archivePrefix arXiv) or an arxiv.org `url`."""
    parser = BibTexParser(common_strings=True, ignore_nonstandard_types=False)
    parser.customization = convert_to_unicode
    try:
        entries = bibtexparser.loads(text, parser=parser).entries
    except Exception as err:  # noqa: BLE001 - pyparsing's errors name no user-facing type
        raise SubscriberError(f"not readable as BibTeX ({str(err).splitlines()[0][:100]})") from None
    out = SeedFile()
    for e in entries:
        arxiv = None
        if e.get("eprint") and e.get("archiveprefix", "arxiv").lower() == "arxiv":
            arxiv = e["eprint"]
        elif "arxiv.org" in e.get("url", ""):
            arxiv = e["url"]
        authors = [a.strip() for a in re.split(r"\s+and\s+", _plain(e.get("author", ""))) if a.strip()]
        _add(out, _plain(e.get("title", "")), _plain(e.get("abstract", "")), authors, arxiv)
    return out


def read_zotero(text: str) -> SeedFile:
    """A Zotero CSV export: "Title", "Abstract Note", "Author" ("Surname, Given; ..."), the arXiv id
    from "Url" or "Extra" ("arXiv: 2104.12255")."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ZOTERO_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SubscriberError(f"not a Zotero CSV export: no {', '.join(repr(c) for c in missing)} column")
    out = SeedFile()
    try:
        for row in reader:
            extra = re.search(r"arXiv:\s*(\S+)", row.get("Extra") or "")
            arxiv = row.get("Url") if "arxiv.org" in (row.get("Url") or "") else extra[1] if extra else None
            authors = [a.strip() for a in (row.get("Author") or "").split(";") if a.strip()]
            _add(out, row.get("Title") or "", row.get("Abstract Note") or "", authors, arxiv)
    except csv.Error as err:
        raise SubscriberError(f"after line {reader.line_num}: not readable as CSV ({err})") from None
    return out


def _plain(value: str) -> str:
    return " ".join(_BRACES.sub("", value).split())


def _add(out: SeedFile, title: str, abstract: str, authors: list[str], arxiv: str | None) -> None:
    parsed = parse_arxiv_id(arxiv) if arxiv else None
    listing = clean_listing(Listing(title=title, abstract=abstract, authors=authors, source="seed",
                                    arxiv_id=parsed[0] if parsed else None))
    if listing is None:
        out.skipped += 1
    else:
        out.listings.append(listing)


# ---------------------------------------------------------------------------------------- storing


def seed(db: Database, email: str, listings: Sequence[Listing], *, skipped: int = 0,
         missing: Sequence[str] = (), now: datetime | None = None) -> SeedReport:
    """Store the papers and like them for the subscriber (a paper they had marked "less like this"
    becomes liked). Nothing is written for an unknown subscriber."""
    now = now or utcnow()
    with db.session() as s:
        sub = row_of(s, email)
        ids = paper_store.seed(s, listings, now)
        rows = {f.paper_id: f for f in s.scalars(select(Feedback).where(
            Feedback.subscriber_id == sub.id, Feedback.paper_id.in_(ids)))}
        already = 0
        for pid in ids:
            row = rows.get(pid)
            if row is None:
                s.add(Feedback(subscriber_id=sub.id, paper_id=pid, signal=1, origin="seed", created_at=now))
            elif row.signal > 0:
                already += 1
            else:
                row.signal, row.origin, row.created_at = 1, "seed", now
        titles = tuple(x.title for x in listings)
        return SeedReport(sub.email, len(ids) - already, already, skipped + len(missing), titles,
                          tuple(missing))


def seeded(db: Database, subscriber_id: int) -> list[dict]:
    """The papers a subscriber seeded, oldest first: arXiv id (as stored) and title."""
    with db.session() as s:
        rows = s.execute(select(PaperRow.arxiv_id, PaperRow.title).join(Feedback,
                                                                        Feedback.paper_id == PaperRow.id)
                         .where(Feedback.subscriber_id == subscriber_id, Feedback.origin == "seed",
                                Feedback.signal > 0)
                         .order_by(Feedback.id)).all()
        return [{"arxiv_id": a, "title": t} for a, t in rows]
