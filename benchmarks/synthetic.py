"""Synthetic papers at any count, made of real text: each abstract is a word-trigram walk over real
abstracts (the ICLR 2021 set in ../shared/eval), each title joins halves of two real titles, so the
vocabulary, acronyms and term frequencies are those of real papers. Every 40th paper repeats an earlier
one's abstract less its last few words (a near-duplicate the ranker must collapse). Deterministic for a seed.

    .venv/bin/python benchmarks/synthetic.py 200000 > papers.jsonl
"""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = next((p for p in (ROOT.parent / "shared" / "eval" / "iclr2021_paperlist.tsv",
                         Path("/work/shared/eval/iclr2021_paperlist.tsv")) if p.exists()),
            ROOT.parent / "shared" / "eval" / "iclr2021_paperlist.tsv")


def real_rows() -> list[dict]:
    if not EVAL.exists():
        sys.exit(f"needs {EVAL} (the shared eval set) for real text")
    with EVAL.open(encoding="utf-8") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r.get("title") and r.get("abstract")]


def papers(n: int, seed: int = 7, when: str = "2026-11-30T08:00:00Z") -> Iterator[dict]:
    """n `file` source JSON Lines entries (id, title, abstract, keywords, upvotes, published_at)."""
    rows = real_rows()
    follows: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        words = ["", "", *r["abstract"].split()]
        for a, b, c in zip(words, words[1:], words[2:], strict=False):
            follows.setdefault((a, b), []).append(c)
    starts = [w for w in follows if w[0] == ""]
    titles = [r["title"].split() for r in rows]
    rng = random.Random(seed)
    recent: list[str] = []
    for i in range(n):
        if i % 40 == 39 and recent:
            words = rng.choice(recent).split()
            del words[rng.randrange(len(words)) :][:8]
            abstract = " ".join(words)
        else:
            abstract = _walk(follows, starts, rng, rng.randint(110, 220))
            recent = [*recent[-19:], abstract]
        a, b = rng.choice(titles), rng.choice(titles)
        title = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :])
        src = rows[i % len(rows)]
        yield {"id": f"{2400 + i // 100_000}.{i % 100_000:05d}", "title": title, "abstract": abstract,
               "keywords": src["keywords"], "upvotes": int(rng.paretovariate(1.3)) - 1, "published_at": when}


def _walk(follows: dict[tuple[str, str], list[str]], starts: list[tuple[str, str]], rng: random.Random,
          length: int) -> str:
    """A word-trigram walk over the real abstracts; one word in 30 is a made-up name (a method, a
    data set), as real abstracts name their own."""
    state = rng.choice(starts)
    out: list[str] = [state[1]]
    while len(out) < length:
        nxt = follows.get(state)
        if not nxt:
            state = rng.choice(starts)
            out.append(state[1])
            continue
        word = rng.choice(nxt)
        if rng.random() < 1 / 30:  # said in place of the walk's word, which the walk goes on from
            out.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 8))))
        else:
            out.append(word)
        state = (state[1], word)
    return " ".join(out)


if __name__ == "__main__":
    for p in papers(int(sys.argv[1])):
        sys.stdout.write(json.dumps(p) + "\n")
