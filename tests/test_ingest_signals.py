"""Signals during a large `digest ingest`: Ctrl-C (SIGINT to the whole process group, as a terminal
sends it, so the term workers get it too) or SIGTERM while a JSON Lines file is being read, on SQLite
and PostgreSQL.

The command must store the batch it is on and the terms of every paper it stored, say so in one line,
and exit 130 / 143 with no traceback and no process left behind; the next `digest ingest` reads the
rest, so every paper of the file is stored once, with its terms. A second signal ends it at once.
"""

from __future__ import annotations

import json
import os
import random
import signal

import pytest
from sqlalchemy import func, select

from digest.store.models import Paper, PaperTerms
from tests.test_signals import Command, assert_gone, descendants, wait_for

N = 8_000  # papers in the file: several batches, and the term workers start
WORDS = ("graph neural network diffusion model language transformer attention sparse robust kernel "
         "policy reward agent vision image token retrieval memory noise gradient convex bound").split()


@pytest.fixture
def install(db, db_url, tmp_path):
    """A working directory with a config naming one JSON Lines file of N distinct papers."""
    rng = random.Random(5)
    listing = tmp_path / "papers.jsonl"
    with listing.open("w", encoding="utf-8") as f:
        for i in range(N):
            title = f"{' '.join(rng.choices(WORDS, k=6)).capitalize()} number {i}"
            abstract = " ".join(rng.choices(WORDS, k=120)) + "."
            f.write(json.dumps({"id": f"2411.{i:05d}", "title": title, "abstract": abstract,
                                "published_at": "2026-11-30T08:00:00Z"}) + "\n")
    workdir = tmp_path / "install"
    workdir.mkdir()
    (workdir / "config.toml").write_text(
        f'[database]\nurl = "{db_url}"\n[digest]\nranker = "lexical"\n'
        f'[sources.bulk]\ntype = "file"\npaths = ["{listing}"]\n', encoding="utf-8")
    return workdir


def counts(db) -> tuple[int, int]:
    """(papers stored, papers stored with their terms)."""
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(Paper)),
                s.scalar(select(func.count(func.distinct(PaperTerms.paper_id)))))


def start_and_signal(db, workdir, signum: int, times: int = 1) -> Command:
    cmd = Command(workdir, "ingest", group=True)
    assert wait_for(lambda: counts(db)[0] > 0), cmd.log  # the first batch is stored
    for _ in range(times):
        assert cmd.proc.poll() is None, f"the ingest ended before the signal:\n{cmd.log}"
        os.killpg(cmd.proc.pid, signum)
        wait_for(lambda: cmd.saw(signal.Signals(signum).name), timeout=5)
    return cmd


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_stores_what_was_read_and_the_next_ingest_reads_the_rest(db, install, signum):
    cmd = start_and_signal(db, install, signum)
    code = cmd.wait(timeout=60)
    assert code == 128 + signum, f"exit {code}\n{cmd.log}"
    assert "Traceback" not in cmd.log and "Aborted" not in cmd.log, cmd.log
    assert f"stopped by {signum.name}: what was read is stored" in cmd.log, cmd.log
    assert_gone(cmd)
    stored, with_terms = counts(db)
    assert 0 < stored < N, cmd.log  # it stopped early...
    assert with_terms == stored  # ...with the terms of everything it stored

    rest = Command(install, "ingest", "--json")
    assert rest.wait(timeout=300) == 0, rest.log
    report = json.loads(rest.out)
    assert report["sources"][0]["new"] == N - stored
    assert counts(db) == (N, N)


@pytest.mark.sqlite_only
def test_a_second_sigint_stops_at_once_and_leaves_no_process(db, install):
    cmd = start_and_signal(db, install, signal.SIGINT, times=2)
    assert cmd.wait(timeout=30) == 130, cmd.log
    assert "SIGINT again: stopped at once" in cmd.log and "Traceback" not in cmd.log, cmd.log
    assert_gone(cmd)
    rest = Command(install, "ingest")
    assert rest.wait(timeout=300) == 0, rest.log
    assert counts(db)[0] == N


@pytest.mark.sqlite_only
def test_the_term_workers_end_with_their_parent_however_it_ends(db, install, tmp_path):
    """The term workers ignore signals and wait on a queue they hold both ends of: a parent gone
    without shutting them down (a second signal's exit at once, SIGKILL) must take them with it."""
    more, rng = 30_000, random.Random(6)
    # long enough to catch the pool at work
    with (tmp_path / "papers.jsonl").open("a", encoding="utf-8") as f:
        for i in range(N, N + more):
            f.write(json.dumps({"id": f"2412.{i:05d}", "title": f"{' '.join(rng.choices(WORDS, k=6))} {i}",
                                "abstract": " ".join(rng.choices(WORDS, k=120)) + ".",
                                "published_at": "2026-11-30T08:00:00Z"}) + "\n")
    cmd = Command(install, "ingest", group=True)
    # a batch analysed by a worker has been written: the pool's workers are at work
    assert wait_for(lambda: counts(db)[1] > 2_000 or cmd.proc.poll() is not None), cmd.log
    assert cmd.proc.poll() is None and len(descendants(cmd.proc.pid)) >= 2, cmd.log
    os.kill(cmd.proc.pid, signal.SIGKILL)
    cmd.wait(timeout=30)
    assert_gone(cmd)
    rest = Command(install, "ingest")
    assert rest.wait(timeout=300) == 0, rest.log
    assert counts(db)[0] == N + more
