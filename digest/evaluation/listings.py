"""Reading paper lists for the admin commands: the eval set's TSV/CSV layout, or any `file` source format."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from digest.records import Paper
from digest.sources.file import ID_KEYS, ListingFileError, decode, parse_path  # one reader for every format


class ListingsError(ValueError):
    """A listings file that cannot be read; the message is one line for the user."""


@dataclass
class Row:
    id: str
    title: str
    abstract: str
    keywords: str = ""


def is_table(path: str | Path) -> bool:
    """TSV/CSV by suffix, or a first line that is a header with a title column."""
    p = Path(path)
    if p.suffix.lower() in (".tsv", ".csv", ".tab"):
        return True
    try:
        with p.open(encoding="utf-8", errors="replace") as fh:
            head = fh.readline().lower()
    except OSError:
        return False
    return "title" in head and ("\t" in head or "," in head) and not head.lstrip().startswith(("{", "["))


def read_text(path: str | Path) -> str:
    """A text file the ranking commands read (a table, queries, topics), decoded by the one rule for
    listing files (`sources.file.decode`); ListingsError, one line naming the file, otherwise."""
    p = Path(path)
    try:
        return decode(p.read_bytes())
    except OSError as err:
        raise ListingsError(f"cannot read {p}: {err.strerror or err}") from err
    except ListingFileError as err:
        raise ListingsError(f"{p}: {err}") from None


def read_table(path: str | Path, require: tuple[str, ...] = ("title",)) -> list[Row]:
    """Rows of a TSV/CSV with a header (columns matched case-insensitively, extra columns ignored)."""
    p = Path(path)
    text = read_text(p)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first or p.suffix.lower() in (".tsv", ".tab") else ","
    old = csv.field_size_limit(sys.maxsize)  # long abstracts, for this table only (the limit is global)
    try:
        return _table_rows(p, text, delimiter, require)
    finally:
        csv.field_size_limit(old)


def _table_rows(p: Path, text: str, delimiter: str, require: tuple[str, ...]) -> list[Row]:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in require if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "nothing"
        raise ListingsError(f"{p}: missing column(s) {', '.join(missing)} (found: {found})")
    col = {h: i for i, h in enumerate(header)}
    id_col = next((col[c] for c in ID_KEYS if c in col), None)

    def get(cells: list[str], name: str) -> str:
        i = col.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    rows = []
    for n, cells in enumerate(reader):
        if not any(c.strip() for c in cells):
            continue
        ident = cells[id_col].strip() if id_col is not None and id_col < len(cells) else ""
        rows.append(Row(ident or str(n), get(cells, "title"), get(cells, "abstract"), get(cells, "keywords")))
    return rows


def read_papers(path: str | Path) -> tuple[list[Paper], list[str], int]:
    """Papers from any listings file, their display ids, and how many entries were rejected.

    TSV/CSV in the eval layout is read here; JSON, JSON Lines and page text go through the `file`
    source's parser. Ids: the entry's paper_id/id/arxiv_id (column or key) or its arXiv id, else the
    row number.
    """
    p = Path(path)
    if not p.is_file():
        raise ListingsError(f"no such file: {p}")
    if is_table(p):
        rows = [r for r in read_table(p) if r.title]
        papers = [Paper(i, r.title, r.abstract) for i, r in enumerate(rows)]
        return papers, [r.id for r in rows], 0
    try:
        listings, rejected = parse_path(p)
    except OSError as err:
        raise ListingsError(f"cannot read {p}: {err.strerror or err}") from err
    except ListingFileError as err:
        raise ListingsError(f"{p}: {err}") from None
    papers = [
        Paper(
            i,
            li.title,
            li.abstract or "",
            arxiv_id=li.arxiv_id,
            upvotes=li.upvotes or 0,
            published_at=li.published_at,
        )
        for i, li in enumerate(listings)
    ]
    return papers, [li.entry_id or li.arxiv_id or str(i) for i, li in enumerate(listings)], rejected
