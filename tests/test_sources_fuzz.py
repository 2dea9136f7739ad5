"""Property tests: whatever bytes or JSON the parsers are fed, they return clean listings and a count of
rejections (or, for a whole HTTP payload, a ValueError that the source reports), and nothing else."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.records import Listing
from digest.sources.arxiv import FeedPage, parse_feed
from digest.sources.clean import MAX_ABSTRACT, MAX_TITLE, clean_listing
from digest.sources.file import ListingFileError, listing_from_dict, parse_bytes
from digest.sources.hf_daily import listing_from_item, parse_payload

FIXTURES = Path(__file__).parent / "fixtures"
_ARXIV = next((FIXTURES / "arxiv").glob("q_testing_s0_m10_*.json"))
FEED = json.loads(_ARXIV.read_text())["body"].encode("latin-1")
DAILY = (FIXTURES / "hf_daily_papers_2024-10-25.json").read_bytes()
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
KEYS = ["id", "title", "summary", "abstract", "authors", "upvotes", "numComments", "publishedAt",
        "githubRepo",
        "githubStars", "ai_summary", "projectPage", "withdrawnAt", "thumbnail", "paper", "categories", "url"]
items = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=10)
hf_items = st.builds(lambda paper, outer: {**outer, "paper": paper}, items, items)


def check_listing(x: Listing) -> None:
    assert isinstance(x, Listing)
    assert x.title and len(x.title) <= MAX_TITLE and len(x.abstract) <= MAX_ABSTRACT
    for text in (x.title, x.abstract, *x.authors):
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text), repr(text)
        assert text == text.strip() and "  " not in text
    for url in (x.url, x.pdf_url, x.code_url, x.project_url, x.thumbnail_url):
        assert url is None or url.startswith(("http://", "https://"))
    for n in (x.upvotes, x.num_comments, x.github_stars):
        assert n is None or (type(n) is int and 0 <= n <= 2_000_000_000)
    assert clean_listing(x) == x  # cleaning is idempotent


def check_file(data: bytes, suffix: str) -> None:
    """A file is either listings (at least one, or an empty JSON list) or one line saying why not."""
    try:
        listings, rejected = parse_bytes(data, suffix)
    except ListingFileError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert listings or rejected == 0
    check_result((listings, rejected))


def check_result(result: tuple[list[Listing], int]) -> None:
    listings, rejected = result
    assert isinstance(rejected, int) and rejected >= 0
    for x in listings:
        check_listing(x)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["", ".json", ".jsonl", ".txt"]))
def test_file_parser_takes_any_bytes(data, suffix):
    check_file(data, suffix)


@FUZZ
@given(st.text(max_size=2000))
def test_file_parser_takes_any_text(text):
    check_file(text.encode("utf-8", "surrogatepass"), ".txt")


@FUZZ
@given(st.binary(max_size=2000))
def test_hf_payload_any_bytes(data):
    try:
        check_result(parse_payload(data))
    except ValueError:
        pass  # the whole page is unusable: the source reports it and keeps its watermark


@FUZZ
@given(st.lists(hf_items | json_values, max_size=5))
def test_hf_items_any_json(doc):
    check_result(parse_payload(json.dumps(doc).encode()))
    for item in doc:
        x = listing_from_item(item)
        assert x is None or check_listing(x) is None
        y = listing_from_dict(item)
        assert y is None or check_listing(y) is None


@FUZZ
@given(st.integers(0, len(DAILY)), st.binary(max_size=50))
def test_hf_payload_cut_or_spliced(at, junk):
    try:
        check_result(parse_payload(DAILY[:at] + junk))
    except ValueError:
        pass


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([200, 400, 500]))
def test_arxiv_feed_any_bytes(data, status):
    try:
        page = parse_feed(data, status)
    except ValueError:
        return
    assert isinstance(page, FeedPage)
    check_result((page.listings, page.rejected))


@FUZZ
@given(st.integers(0, len(FEED)), st.binary(max_size=80), st.text(max_size=80))
def test_arxiv_feed_cut_spliced_or_poisoned(at, junk, title):
    poisoned = FEED.replace(b"Testing Deep Learning Models", title.encode("utf-8", "surrogatepass"), 1)
    for data in (FEED[:at] + junk, poisoned):
        try:
            page = parse_feed(data)
        except ValueError:
            continue
        check_result((page.listings, page.rejected))


PIECES = [*"abcXYZ019 .,;-'\"()", "  ", "&amp;", "&", "<b>", "<", ">", "\t", "\n", "\r", "\x1b[31m", "\x0b",
          "\x1c", "\x7f", "\x00", "é", "e\u0301", "Å", "ﬁ", "—", "\u200b", "\u202e", " \u00a0", "\u2028"]
ascii_mostly = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@FUZZ
@given(ascii_mostly, st.booleans(), st.integers(1, 80))
def test_clean_text_shortcut_is_every_step(text, markup, limit):
    """Lines already clean (printable, NFC, single spaces) skip the cleaning steps (the ingest's speed):
    the result is theirs anyway."""
    from digest.sources.clean import cap, clean_text, cleaned

    assert clean_text(text, limit, markup=markup) == cap(cleaned(text[: limit * 4 + 64], markup), limit)
