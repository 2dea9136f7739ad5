"""`file` source: listings from local files.

Three formats, chosen by content (the suffix only breaks ties):

- a Hugging Face `daily_papers` JSON array (or a JSON array of flat objects, or `{"papers": [...]}`);
- JSON Lines, one object a line: `{"id", "title", "abstract", "authors", "url", ...}` or a daily_papers item;
- the text of a Hugging Face Papers listing page: a title line, a blank line, the abstract, repeated,
  under some page chrome ("Subscribe", "Mar 11", ...). Repeats are dropped; what cannot be a paper
  (a title with no abstract, a cut fragment, a stray paragraph) is counted as rejected.

One rule for the whole file (`parse_bytes`; `digest rank` reads through it too): it is UTF-8 (or
UTF-16/32 with a byte-order mark) text, without NUL bytes, and holds at least one paper (or is an
empty JSON list). Anything else (cut or invalid JSON, another encoding, binary data, an empty file, a
JSON scalar, entries none of which is a paper) raises ListingFileError: one line, nothing stored.
Inside a readable file, a malformed entry is skipped and counted.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path

from digest.config import FileSource
from digest.records import Listing
from digest.sources import Batch, Cursor, collect
from digest.sources.clean import clean_listing, clean_text, key_of, parse_arxiv_id
from digest.sources.hf_daily import listing_from_item

MAX_FILE_BYTES = 200_000_000  # a file read whole; JSON Lines stream, whatever their size
STREAM_BATCH = 2000  # JSON Lines entries per batch (one transaction each)
ID_KEYS = ("paper_id", "id", "arxiv_id")  # an entry's own id, first found (a table column or a JSON key)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class ListingFileError(ValueError):
    """A file that cannot be a listing at all; the message is one line for the user."""

    def __init__(self, message: str, rejected: int = 1):
        super().__init__(message)
        self.rejected = rejected  # entries seen (the file itself, when it has none)

_CHROME = re.compile(
    r"(new|subscribe|get trending papers in your email inbox!?|by ?ak and the research community|daily "
    r"papers|"
    r"trending papers|papers|upvote|submitted by "
    r".{0,80}|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* "
    r"\d{1,2}(, \d{4})?|\d{4}-\d{2}-\d{2}|[\W\d_]*)",
    re.IGNORECASE,
)


def fetch(config: FileSource, cursor: Cursor, client: object = None) -> Iterator[Batch]:
    """One batch per file, or (JSON Lines) one per STREAM_BATCH entries, read as the file streams by.
    A missing file, or one that cannot be a listing, is the source's error (named, one line); the
    other files still load."""
    for path in config.paths:
        try:
            if is_json_lines(path):
                yield from stream_json_lines(path)
                continue
            listings, rejected = parse_path(path)
        except OSError as err:
            yield Batch(rejected=1, note=str(path), error=f"{path}: {err.strerror or err}")
            continue
        except ListingFileError as err:
            yield Batch(rejected=err.rejected, note=str(path), error=f"{path}: {err}")
            continue
        yield Batch(listings=listings, rejected=rejected, note=str(path))


def parse_path(path: str | Path) -> tuple[list[Listing], int]:
    """Listings in a local file and the number of entries rejected. Raises OSError if unreadable."""
    p = Path(path)
    with p.open("rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"{p}: larger than {MAX_FILE_BYTES} bytes")
    return parse_bytes(data, p.suffix.lower())


def decode(data: bytes) -> str:
    """The text of a listings file: UTF-8 (a BOM allowed), or UTF-16/32 with their BOM; never guessed."""
    codec = next((c for bom, c in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(codec).lstrip("\ufeff")
    except UnicodeDecodeError as err:
        raise ListingFileError(f"not {codec.upper().removesuffix('-SIG')} text (byte 0x{data[err.start]:02x} "
                               "at "
                               f"offset {err.start}); save it as UTF-8 (from Latin-1: iconv -f latin1 -t "
                               "utf-8)") from None
    if "\x00" in text:
        raise ListingFileError("binary data (NUL bytes), not a text listing")
    if not text.strip():
        raise ListingFileError("empty file")
    return text


def parse_bytes(data: bytes, suffix: str = "") -> tuple[list[Listing], int]:
    """Listings in the bytes of a file, and the number of entries rejected.

    Raises ListingFileError when the file cannot be a listing (see the module's docstring)."""
    text = decode(data)
    head = text.lstrip()[:1]
    if head in ("[", "{") or suffix == ".json":
        try:
            doc = json.loads(text)
        except RecursionError:
            raise ListingFileError("JSON nested too deeply") from None
        except ValueError as err:
            if head != "{" or suffix == ".json":
                raise ListingFileError(f"not valid JSON ({err})") from None
            listings, rejected = parse_json_lines(text)
        else:
            listings, rejected = parse_json_doc(doc)
    elif suffix in (".jsonl", ".ndjson"):
        raise ListingFileError(f"not JSON Lines (it starts with {text.lstrip()[:20]!r})")
    else:
        listings, rejected = parse_page_text(text)
        if not listings:
            raise ListingFileError("no papers found: not JSON, JSON Lines or the text of a Papers page",
                                   max(rejected, 1))
    if rejected and not listings:
        some = "its only entry is not" if rejected == 1 else f"none of its {rejected} entries is"
        raise ListingFileError(f"no papers found: {some} a paper", rejected)
    return _dedupe(listings, rejected)


def parse_json_doc(doc: object) -> tuple[list[Listing], int]:
    """A daily_papers array, a single object, or `{"papers": [...]}`."""
    if isinstance(doc, dict):
        items = doc.get("papers") if isinstance(doc.get("papers"), list) else [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise ListingFileError(f"a JSON {type(doc).__name__}, not a list of papers")
    return collect(items, listing_from_dict)


def parse_json_lines(text: str) -> tuple[list[Listing], int]:
    def items() -> Iterator[object]:
        for line in text.splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except (ValueError, RecursionError):
                    yield None  # not JSON: counted as rejected

    return collect(items(), listing_from_dict)


def listing_from_dict(item: object) -> Listing | None:
    """A daily_papers item (it has a `paper` object), or a flat record {id, title, abstract, ...}."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("paper"), dict):
        return listing_from_item(item)
    ident = item.get("arxiv_id") or item.get("id") or item.get("paper_id")
    parsed = parse_arxiv_id(ident) if isinstance(ident, str) else None
    own = next((item[k] for k in ID_KEYS if type(item.get(k)) in (str, int) and str(item[k]).strip()), None)
    authors = item.get("authors")
    if isinstance(authors, list):
        authors = [a.get("name") if isinstance(a, dict) else a for a in authors]
    elif isinstance(authors, str):
        authors = [a.strip() for a in authors.split(",")]
    categories = item.get("categories")
    if isinstance(categories, str):
        categories = categories.split()
    return clean_listing(
        Listing(
            title=item.get("title"),  # type: ignore[arg-type]  # checked by clean_listing
            abstract=item.get("abstract") or item.get("summary") or "",
            arxiv_id=parsed[0] if parsed else None,
            version=parsed[1] if parsed else None,
            authors=authors if isinstance(authors, list) else [],
            published_at=item.get("published_at") or item.get("published") or item.get("publishedAt"),
            url=item.get("url"),
            pdf_url=item.get("pdf_url"),
            code_url=item.get("code_url") or item.get("githubRepo"),
            project_url=item.get("project_url") or item.get("projectPage"),
            thumbnail_url=item.get("thumbnail_url") or item.get("thumbnail"),
            upvotes=item.get("upvotes"),
            num_comments=item.get("num_comments") or item.get("numComments"),
            github_stars=item.get("github_stars") or item.get("githubStars"),
            ai_summary=item.get("ai_summary"),
            categories=categories if isinstance(categories, list) else [],
            doi=item.get("doi"),
            comment=item.get("comment"),
            withdrawn=bool(item.get("withdrawn") or item.get("withdrawnAt")),
            entry_id=str(own) if own is not None else None,
        )
    )


def is_json_lines(path: str | Path) -> bool:
    """Whether a file is JSON Lines, from its first lines only: a whole JSON object on the first line
    (UTF-8, a BOM allowed) and another line after it. UTF-16/32 files are read whole."""
    with Path(path).open("rb") as fh:
        first = fh.readline(MAX_FILE_BYTES).removeprefix(codecs.BOM_UTF8)
        while first and not first.strip():
            first = fh.readline(MAX_FILE_BYTES)
        if not first.lstrip().startswith(b"{"):
            return False
        try:
            if not isinstance(json.loads(first), dict):
                return False
        except (ValueError, RecursionError):
            return False
        return any(line.strip() for line in iter(lambda: fh.readline(1 << 16), b""))


def stream_json_lines(path: str | Path) -> Iterator[Batch]:
    """A JSON Lines file's listings in batches of (at most) STREAM_BATCH, never the whole file in memory.

    The whole-file rule holds: the file is checked for UTF-8 and NUL bytes first (a quick pass that
    keeps nothing), so a bad file stores nothing; repeats (same arXiv id, else title) keep the first."""
    _check_stream(path)
    seen = _Keys()
    listings: list[Listing] = []
    keys: list[int] = []  # of `listings`, each once
    rejected = total = 0
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.decode("utf-8").lstrip("\ufeff") if number == 1 else raw.decode("utf-8")
            if not line.strip():
                continue
            try:
                listing = listing_from_dict(json.loads(line))
            except (ValueError, RecursionError):
                listing = None
            if listing is None:
                rejected += 1
                continue
            key = hash(listing.arxiv_id or "t:" + listing.key)
            if key in seen.latest:
                continue
            seen.latest.add(key)
            listings.append(listing)
            keys.append(key)
            if len(listings) == STREAM_BATCH:
                listings = seen.first(listings, keys)
                total += len(listings)
                yield Batch(listings=listings, rejected=rejected, note=f"{path} to line {number}")
                listings, keys, rejected = [], [], 0
    listings = seen.first(listings, keys)
    total += len(listings)
    if not total:
        some = "its only entry is not" if rejected == 1 else f"none of its {rejected} entries is"
        yield Batch(rejected=rejected, note=str(path), error=f"{path}: no papers found: {some} a paper")
    elif listings or rejected:
        yield Batch(listings=listings, rejected=rejected, note=f"{path} to the end")


class _Keys:
    """The keys of the listings kept so far, 8 bytes each (a set of ints takes some 70): those of the
    batch being read in a set (`latest`), the earlier ones in a sorted numpy array that each batch
    joins at once (`first`); memory grows 8 bytes a paper."""

    def __init__(self) -> None:
        import numpy as np

        self.np, self.latest, self.older = np, set(), np.empty(0, np.int64)

    def first(self, listings: list[Listing], keys: list[int]) -> list[Listing]:
        """The listings (of `keys`, the batch's `latest`) whose key no earlier batch had; all the keys
        join the earlier ones."""
        np, older = self.np, self.older
        fresh = np.array(keys, np.int64)
        at = np.searchsorted(older, fresh)
        repeat = older[np.minimum(at, len(older) - 1)] == fresh if len(older) else np.zeros(len(fresh), bool)
        if repeat.any():
            listings = [x for x, again in zip(listings, repeat.tolist(), strict=True) if not again]
            fresh = fresh[~repeat]
        fresh.sort()
        self.older = np.insert(older, np.searchsorted(older, fresh), fresh)
        self.latest = set()
        return listings


def _check_stream(path: str | Path) -> None:
    """ListingFileError unless the file is UTF-8 text without NUL bytes (read in blocks, kept nowhere)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            if b"\x00" in block:
                raise ListingFileError("binary data (NUL bytes), not a text listing")
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                at = offset + err.start
                raise ListingFileError(f"not UTF-8 text (byte 0x{block[err.start]:02x} at offset {at}); save "
                                       "it as UTF-8 (from Latin-1: iconv -f latin1 -t utf-8)") from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ListingFileError(f"not UTF-8 text (cut at offset {offset})") from None


def parse_page_text(text: str) -> tuple[list[Listing], int]:
    """Title / blank line / abstract pairs from the text of a Papers listing page."""
    paragraphs = [clean_text(p, 200_000) for p in re.split(r"\n[ \t\r\f\v]*\n", text)]
    listings: list[Listing] = []
    rejected = 0
    title: str | None = None
    for para in paragraphs:
        if not para or _CHROME.fullmatch(para):
            continue
        if _is_title(para) and title is None:
            title = para
        elif _is_abstract(para) and title is not None:
            listing = clean_listing(Listing(title=title, abstract=para))
            if listing is None:
                rejected += 1
            else:
                listings.append(listing)
            title = None
        elif _is_title(para):  # a title after a title: the first had no abstract
            rejected += 1
            title = para
        else:  # a stray paragraph, or an abstract with no title above it
            rejected += 1
            title = None
    if title is not None:  # the page was cut after a title
        rejected += 1
    return listings, rejected


def _is_title(para: str) -> bool:
    return 3 <= len(para) <= 300 and len(para.split()) <= 40 and not _CHROME.fullmatch(para)


def _is_abstract(para: str) -> bool:
    return len(para) >= 80 and len(para.split()) >= 12


def _dedupe(listings: list[Listing], rejected: int) -> tuple[list[Listing], int]:
    """Drop repeats (same arXiv id, else same normalised title), keeping the first."""
    seen: set[str] = set()
    out: list[Listing] = []
    for listing in listings:
        key = listing.arxiv_id or "t:" + key_of(listing)
        if key not in seen:
            seen.add(key)
            out.append(listing)
    return out, rejected
