"""The `file` source parsers: daily_papers JSON, JSON Lines, Papers listing page text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digest.config import bundled_listings
from digest.sources.clean import clean_text, parse_arxiv_id, title_key
from digest.sources.file import ListingFileError, parse_bytes, parse_path

FIXTURES = Path(__file__).parent / "fixtures"


def test_bundled_daily_papers_json():
    listings, rejected = parse_path(FIXTURES / "hf_daily_papers_2024-10-25.json")
    assert (len(listings), rejected) == (29, 0)
    first = listings[0]
    assert first.arxiv_id == "2410.17243"
    assert first.title == "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"
    assert "\n" not in first.abstract and "  " not in first.abstract
    assert first.upvotes == 64 and first.num_comments == 3
    assert first.authors[:2] == ["Zesen Cheng", "Hang Zhang"]
    assert first.thumbnail_url.endswith("/2410.17243.png")
    assert first.published_at.year == 2024


def test_bundled_listing_pages_skip_chrome_and_dedupe():
    a, b = bundled_listings()[1:]
    pa, rej_a = parse_path(a)
    pb, rej_b = parse_path(b)
    assert rej_a == rej_b == 0
    titles = [x.title for x in pa]
    assert titles[0].startswith("The Z-loss")
    assert not {"new", "Subscribe", "Mar 11", "byAK and the research community"} & set(titles)
    assert all(len(x.abstract) > 200 for x in pa + pb)
    assert len(titles) == len({title_key(t) for t in titles})
    both = {title_key(x.title) for x in pa} & {title_key(x.title) for x in pb}
    assert "colide concomitant linear dag estimation" in both  # repeated across pages; ingest merges


PAGE = """new

Get trending papers in your email inbox!

Subscribe

byAK and the research community

Mar 11

A Paper About Things

We study things. This abstract is long enough to be an abstract, with more than twelve words in it.

42

A Paper About Things

We study things. This abstract is long enough to be an abstract, with more than twelve words in it.

A Title Whose Abstract Went Missing

Another Real Paper: With a Colon

Here is another abstract that easily passes the length and word count thresholds for prose text.

This paragraph has no title above it and is long enough to look like an abstract of some paper.

A Title Cut At The End"""


def test_page_text_repeats_fragments_and_counts():
    listings, rejected = parse_bytes(PAGE.encode(), ".txt")
    assert [x.title for x in listings] == ["A Paper About Things", "Another Real Paper: With a Colon"]
    # title without abstract, orphan paragraph, title cut at the end of the page
    assert rejected == 3


def test_json_lines_with_bad_lines():
    lines = [
        json.dumps({"id": "2410.00001v2", "title": "One", "abstract": "a", "authors": ["A", "B"]}),
        "{not json",
        json.dumps({"title": 7}),
        json.dumps(["not", "an", "object"]),
        "",
        json.dumps({"id": "astro-ph/0601001", "title": "Old <i>style</i> id",
                    "categories": "astro-ph gr-qc"}),
    ]
    listings, rejected = parse_bytes("\n".join(lines).encode(), ".jsonl")
    assert rejected == 3
    assert [(x.arxiv_id, x.version) for x in listings] == [("2410.00001", 2), ("astro-ph/0601001", None)]
    assert listings[1].title == "Old style id"
    assert listings[1].categories == ["astro-ph", "gr-qc"]


def test_json_sniffed_without_suffix_and_garbage(tmp_path):
    p = tmp_path / "listing"
    p.write_text(json.dumps([{"title": "Flat record", "abstract": "x"}, {"paper": "wrong type"}, 3]))
    assert [x.title for x in parse_path(p)[0]] == ["Flat record"]
    assert parse_path(p)[1] == 2
    for garbage in (b"[1, 2", b"\x00\xff\xfe binary"):
        with pytest.raises(ListingFileError):
            parse_bytes(garbage, ".json")


def test_clean_text_and_ids():
    nasty = "Deep\u202eLearning\x00 <b>bold</b>\n  title &amp; more<script>alert(1)</script>\u200b"
    assert clean_text(nasty, 500, markup=True) == "DeepLearning bold title & more"
    assert clean_text("P<NP and x>y", 500, markup=True) == "P<NP and x>y"
    assert clean_text("\ud800lone", 100) == "?lone"
    big = clean_text("word " * 1_000_000, 10_000)
    assert len(big) <= 10_000 and big.endswith("…")
    assert parse_arxiv_id("http://arxiv.org/abs/2104.12255v2") == ("2104.12255", 2)
    assert parse_arxiv_id("arXiv:astro-ph/0601001v1") == ("astro-ph/0601001", 1)
    assert parse_arxiv_id("math.GT/0309136") == ("math.GT/0309136", None)
    assert parse_arxiv_id("a" * 70 + "/1234567") is None  # would not fit the column
    assert parse_arxiv_id("https://arxiv.org/api/errors#incorrect_id_format_for_abc") is None
    assert parse_arxiv_id("abc") is None


UNREADABLE = {  # issue 13: each of these was "fetched 1 new 0 updated 0 skipped 1", exit 0, no error
    "truncated.json": (b'[{"title": "A paper", "abstract": "cut', "not valid JSON (Unterminated string"),
    "random.bin": (bytes(range(128, 256)) * 8, "not UTF-8 text (byte 0x80 at offset 0)"),
    "utf16-no-bom.json": ('[{"title": "T"}]'.encode("utf-16-le"), "binary data (NUL bytes)"),
    "empty.json": (b"", "empty file"),
    "blank.txt": (b"\n \n", "empty file"),
    "nul.txt": (b"Title\x00\n\nAn abstract", "binary data (NUL bytes)"),
    "deep.json": (b"[" * 100_000, "JSON nested too deeply"),
    "number": (b"42", "no papers found: not JSON, JSON Lines or the text of a Papers page"),
    "number.json": (b"42", "a JSON int, not a list of papers"),
    "object.json": (b'{"a": 1}', "no papers found: its only entry is not a paper"),
    "lines.jsonl": (b"{not json\n{nor this", "no papers found: none of its 2 entries is a paper"),
    "latin1.json": ('[{"title": "Café"}]'.encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 15)"),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_a_file_that_cannot_be_a_listing_is_one_named_error(name, tmp_path):
    data, message = UNREADABLE[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ListingFileError) as err:
        parse_path(tmp_path / name)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_utf16_with_a_bom_and_empty_lists_are_listings(tmp_path):
    for codec in ("utf-16", "utf-32", "utf-8-sig"):
        listings, rejected = parse_bytes(json.dumps([{"title": "Ça va", "abstract": "ok"}]).encode(codec),
                                         ".json")
        assert [x.title for x in listings] == ["Ça va"] and rejected == 0
    assert parse_bytes(b"[]", ".json") == ([], 0)  # a valid listing with nothing in it today
    assert parse_bytes(b'{"papers": []}', "") == ([], 0)
    listings, rejected = parse_bytes(b'[{"title": "Kept"}, 7, {"paper": 1}]', ".json")
    assert [x.title for x in listings] == ["Kept"] and rejected == 2  # bad entries are still skipped


def test_ingest_reports_each_unreadable_file_and_loads_the_others(db, settings_for, tmp_path):
    from digest.sources.ingest import ingest

    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "x1", "title": "A good paper", "abstract": "Fine."}) + "\n")
    bad = tmp_path / "bad.json"
    bad.write_bytes(UNREADABLE["latin1.json"][0])
    settings = settings_for(db.url, sources={"files": {"type": "file", "paths": [str(bad), str(good)]},
                                             "other": {"type": "file", "paths": [str(good)]}})
    report = ingest(db, settings)
    files, other = report.sources
    assert files.new == 1 and files.error == f"{bad}: " + UNREADABLE["latin1.json"][1] + (
        "; save it as UTF-8 (from Latin-1: iconv -f latin1 -t utf-8)")
    assert other.error is None
