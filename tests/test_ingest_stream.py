"""JSON Lines files stream (issue 25): read and stored a batch at a time, never whole, with the
whole-file rules kept (a file that is not UTF-8 text stores nothing; repeats keep the first entry)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from digest.sources import file as file_source
from digest.sources.file import is_json_lines, stream_json_lines
from digest.store.models import Paper, PaperTerms
from digest.usecases.ingesting import ingest


def entry(i: int, **extra) -> str:
    return json.dumps({"id": f"2412.{i:05d}", "title": f"Streaming paper number {i}",
                       "abstract": f"We stream papers; this is paper {i}, about graph neural networks.",
                       **extra})


def write(path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_a_json_lines_file_streams_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(file_source, "STREAM_BATCH", 40)
    lines = [entry(i) for i in range(175)]
    lines[10] = "{not json"
    lines[20] = entry(5, title="A repeat keeps the first")  # same arXiv id as entry 5
    lines[100] = entry(7, title="A repeat of an earlier batch's too")  # dropped from the third batch
    lines.insert(0, "\ufeff" + lines.pop(0))  # a BOM on the first line
    path = write(tmp_path / "papers.jsonl", lines)
    assert is_json_lines(path)
    batches = list(stream_json_lines(path))
    assert [len(b.listings) for b in batches] == [40, 40, 39, 40, 13]
    assert sum(b.rejected for b in batches) == 1
    titles = [x.title for b in batches for x in b.listings]
    assert "A repeat keeps the first" not in titles and titles[0] == "Streaming paper number 0"
    assert "A repeat of an earlier batch's too" not in titles and "Streaming paper number 7" in titles
    assert len(set(titles)) == len(titles) == 172


@pytest.mark.parametrize("name,data", [("pretty.json", b'{\n "papers": []\n}\n'),
                                       ("one.json", b'{"title": "One paper", "abstract": "Only one."}\n'),
                                       ("list.json", b'[{"title": "A"}]\n[1]\n')])
def test_other_files_are_read_whole(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    assert not is_json_lines(tmp_path / name)


def test_ingest_streams_a_file_larger_than_a_batch_and_stores_its_terms(db, settings_for, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(file_source, "STREAM_BATCH", 50)
    path = write(tmp_path / "papers.jsonl", [entry(i) for i in range(230)])
    settings = settings_for(db.url, sources={"files": {"type": "file", "paths": [path]}})
    report = ingest(db, settings)
    assert (report.new, report.skipped, report.errors) == (230, 0, [])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Paper)) == 230
        assert s.scalar(select(func.count()).select_from(PaperTerms)) == 230


@pytest.mark.parametrize("bad,message", [(b"\x00", "binary data (NUL bytes)"),
                                         (b"\xe9", "not UTF-8 text (byte 0xe9 at offset")])
def test_a_bad_byte_late_in_a_stream_stores_nothing(db, settings_for, tmp_path, monkeypatch, bad, message):
    monkeypatch.setattr(file_source, "STREAM_BATCH", 10)
    data = ("\n".join(entry(i) for i in range(100)) + "\n").encode() + b'{"title": "' + bad + b'"}\n'
    (tmp_path / "papers.jsonl").write_bytes(data)
    paths = [str(tmp_path / "papers.jsonl")]
    settings = settings_for(db.url, sources={"files": {"type": "file", "paths": paths}})
    report = ingest(db, settings)
    assert report.new == 0 and len(report.errors) == 1 and message in report.errors[0]
    assert "\n" not in report.errors[0]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Paper)) == 0
