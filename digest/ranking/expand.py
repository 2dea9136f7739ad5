"""Acronyms learned from the indexed papers themselves.

Authors define their acronyms: "graph neural networks (GNNs)", "automated machine learning (AutoML)".
We find those definitions with the Schwartz-Hearst rule (every letter of the short form appears, in
order, in the long form; the first letter starts a word; every content word lends a letter), per
paper and over the corpus. The index uses the acronyms the corpus agrees on to expand a query that
names one ("GNN" also looks for "graph neural network"); see index.Params.acronyms for the options
and evaluate.py / the report for what each measured.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from digest.ranking.sorting import unique
from digest.ranking.text import STOP_WORDS, stem, term_hash, tokens

_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{1,9})\s*\)")
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


def _long_form(short: str, before: str) -> str | None:
    """Schwartz-Hearst: the shortest tail of `before` that spells `short`, or None."""
    words = _WORD.findall(before)
    window = " ".join(words[-min(len(short) + 5, 2 * len(short)) :])
    s, i = len(short) - 1, len(window) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while i >= 0 and (window[i].lower() != c or (s == 0 and i > 0 and window[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    long = window[window.rfind(" ", 0, i + 1) + 1 :]
    words = [w for w in re.split(r"[\s\-]+", long.lower()) if w and w not in STOP_WORDS]
    if len(words) < 2 or words[0] == short.lower():
        return None
    if any(w[0] not in short.lower() for w in words):  # every content word lends a letter
        return None
    return long


def definitions(text: str, stem_word: Callable[[str], str] = stem) -> dict[str, str]:
    """Acronym stem -> long form, for the acronyms one text defines ("... networks (GNNs)")."""
    out: dict[str, str] = {}
    for m in _DEFINITION.finditer(text):
        short = m.group(1)
        if short.endswith("s") and short[:-1].isupper():
            short = short[:-1]
        letters = [c for c in short if c.isalpha()]
        if sum(c.isupper() for c in letters) < max(2, len(letters) / 2):  # GNN, AutoML; not ImageNet
            continue
        before = text[max(0, m.start() - 200) : m.start()]
        before = before[max(before.rfind("("), before.rfind(")")) + 1 :]
        long = _long_form(short, before)
        if long:
            out.setdefault(stem_word(short.lower()), long.lower())
    return out


@dataclass
class Acronyms:
    """What a corpus taught about its acronyms."""

    local: list[dict[str, str]]  # per text: the acronyms it defines itself
    common: dict[str, str]  # acronym -> long form, where the corpus agrees on one meaning

    def for_text(self, i: int) -> dict[str, str]:
        return {**self.common, **self.local[i]} if self.local[i] else self.common


@dataclass
class TextFacts:
    """What one text tells about acronyms: the ones it defines (acronym stem -> long form) and, when it
    defines some, how often it writes each word stem (`term_hash` of it) with capitals inside the word
    (`upper`) and without (`lower`)."""

    found: dict[str, str] = field(default_factory=dict)
    stems: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    lower: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    upper: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))


def text_facts(text: str, stem_word: Callable[[str], str] = stem,
               hash_term: Callable[[str], int] = term_hash) -> TextFacts:
    """The acronym facts of one text; `stem_word` and `hash_term` are `text.stem` and `text.term_hash`,
    or caches of them."""
    found = definitions(text, stem_word)
    if not found:
        return TextFacts()
    uses: dict[str, list[int]] = {}
    for w in _PLAIN_WORD.findall(text):
        tail = w[1:]  # ASCII letters and digits: capitals inside the word iff lower-casing changes it
        uses.setdefault(stem_word(w.lower()), [0, 0])[1 if tail != tail.lower() else 0] += 1
    counts = np.array(list(uses.values()), np.uint32).reshape(-1, 2)
    return TextFacts(found, np.fromiter(map(hash_term, uses), np.uint64, len(uses)), counts[:, 0].copy(),
                     counts[:, 1].copy())


def learn_acronyms(texts: Iterable[str], min_share: float = 0.8) -> Acronyms:
    """Definitions per text, and the acronyms whose meaning the corpus agrees on.

    An acronym is common when one long form has at least `min_share` of its definitions and it is
    written in capitals more often than as a plain lower-case word ("SAFE" vs "safe").
    """
    return acronyms_of((text_facts(t) for t in texts), min_share)


def acronyms_of(facts: Iterable[TextFacts], min_share: float = 0.8) -> Acronyms:
    """`learn_acronyms` from each text's `text_facts` (stored with a paper's terms, see stored_terms)."""
    learner = AcronymLearner()
    for f in facts:
        learner.add(f)
    return learner.result(min_share)


class AcronymLearner:
    """`acronyms_of`, one text at a time (memory: the corpus's stems, not its texts)."""

    def __init__(self) -> None:
        self.local: list[dict[str, str]] = []
        self.seen: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        self.surface: dict[tuple[str, ...], str] = {}
        self._uses: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending = 0  # stems in `_uses` since they were last summed

    def add(self, f: TextFacts) -> None:
        self.local.append(f.found)
        if not f.found:
            return
        self._uses.append((f.stems, f.lower, f.upper))
        self._pending += len(f.stems)
        # summed when the new uses outgrow the sums so far (and 4,096 texts in): each stem is summed
        # a bounded number of times, not once per 4,096 texts (linear in the texts)
        if len(self._uses) >= 4096 and self._pending >= len(self._uses[0][0]):
            self._uses, self._pending = [self._totals()], 0
        for short, long in f.found.items():
            key = tuple(s for seg in tokens(long) for s, _ in seg)
            if len(key) >= 2:
                self.seen[short][key] += 1
                self.surface.setdefault(key, long)

    def _totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each stem's lower- and upper-case uses summed over the texts added so far."""
        if not self._uses:
            return np.empty(0, np.uint64), np.empty(0, np.uint32), np.empty(0, np.uint32)
        stems, _, inverse = unique(np.concatenate([u[0] for u in self._uses]))
        return stems, *(np.bincount(inverse, np.concatenate([u[k] for u in self._uses]), len(stems))
                        .astype(np.uint32) for k in (1, 2))

    def result(self, min_share: float = 0.8) -> Acronyms:
        stems, lower, upper = self._totals()
        common: dict[str, str] = {}
        for short, forms in self.seen.items():
            (best, n), total = forms.most_common(1)[0], sum(forms.values())
            h = np.uint64(term_hash(short))
            i = int(np.searchsorted(stems, h))
            low, up = (int(lower[i]), int(upper[i])) if i < len(stems) and stems[i] == h else (0, 0)
            if n >= min_share * total and low <= up:
                common[short] = self.surface[best]
        return Acronyms(self.local, common)
